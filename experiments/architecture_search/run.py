"""architecture_search: random search vs Bayesian optimization vs a REINFORCE controller.

Three searchers of ``optlab.structure.nas.search_architecture`` (random draws, Optuna's
TPE, an LSTM controller trained with REINFORCE as in Zoph & Le 2017) spend the same
budget of trials on an MLP space for sklearn digits; the score of a trial is the
architecture's best validation accuracy. As in NAS-Bench-101 (Ying et al. 2019), every
architecture of the space is trained once beforehand (``optlab.structure.supernet.
tabulate_mlp_space``: all of them in one vmapped program per activation, one
compilation), and the searchers query that table, so each can be run over many seeds;
a trial returns exactly what ``evaluate_architecture`` would (checked here by
re-training the table's optimum from scratch). The exhaustive optimum is known, so each
search is scored by its regret: optimum − best accuracy found, after each trial.

Usage:
  python experiments/architecture_search/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure] [--restart]

The table, each searcher's searches and the re-training are saved as soon as each is done:
a killed run, started again with the same arguments, resumes where it stopped (--restart
discards it instead).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import results  # noqa: E402
from optlab.structure import nas, supernet  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402

STUDY = "architecture_search"
LABELS = {"random": "random search", "bayesian": "TPE (Optuna)", "rl": "REINFORCE controller"}
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"


config = load_module("optlab_architecture_search_config", HERE / "config.py")


def make_space(cfg):
  """The MLP space of the study (no normalization, no dropout: exactly tabulable)."""
  return nas.mlp_space(cfg.max_depth, cfg.widths, cfg.activations, normalizations=(None,),
                       dropouts=(0.0,))


def tabulate(cfg, task) -> supernet.ArchitectureTable:
  """Every architecture of the space, trained once (one compiled program, chunked)."""
  return supernet.tabulate_mlp_space(
      make_space(cfg), task, epochs=cfg.epochs, batch_size=cfg.batch_size,
      optimizer=cfg.optimizer, learning_rate=cfg.learning_rate, seed=cfg.train_seed,
      check_init=cfg.check_init)


def search(cfg, table: supernet.ArchitectureTable, space, method: str, seed: int
           ) -> tuple[nas.NASResult, float]:
  """One search against the table; returns the result and its wall time."""
  start = time.perf_counter()
  result = nas.search_architecture(table.objective(), space, method=method, budget=cfg.budget,
                                   seed=seed)
  return result, time.perf_counter() - start


def regret_stats(regrets: np.ndarray) -> dict[str, float]:
  """Mean, standard error, quantiles of regrets at one budget (accuracy points / 100)."""
  n = len(regrets)
  return {"mean": float(regrets.mean()),
          "stderr": float(regrets.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
          "median": float(np.median(regrets)), "q25": float(np.quantile(regrets, 0.25)),
          "q75": float(np.quantile(regrets, 0.75)), "min": float(regrets.min()),
          "max": float(regrets.max()), "found_optimum": float(np.mean(regrets == 0.0))}


def summarize(table: supernet.ArchitectureTable, searches: dict[str, list[dict]]
              ) -> dict[str, Any]:
  """Per method: regret at the budget and at each trial, and where its final picks rank."""
  scores = table.scores
  optimum = table.best_score
  methods = {}
  for method, runs in searches.items():
    best = np.array([r["best_so_far"] for r in runs])  # (seeds, trials)
    regret = optimum - best
    finals = best[:, -1]
    # Fraction of the space strictly better than each final pick (0: the optimum).
    better = [float(np.mean(scores > f)) for f in finals]
    methods[method] = {
        "at_budget": regret_stats(regret[:, -1]),
        "mean_regret_per_trial": regret.mean(axis=0).tolist(),
        "fraction_better_than_pick": {"mean": float(np.mean(better)), "max": float(max(better))},
        "mean_seconds_per_search": float(np.mean([r["seconds"] for r in runs])),
    }
  random = methods.get("random", {}).get("at_budget")
  verdict = {}
  if random is not None:
    for method in ("bayesian", "rl"):
      if method in methods:
        other = methods[method]["at_budget"]
        gap = random["mean"] - other["mean"]
        se = float(np.hypot(random["stderr"], other["stderr"]))
        verdict[method] = {"regret_reduction_vs_random": gap, "stderr": se,
                           "better_on_average": bool(gap > 0),
                           "beyond_2_stderr": bool(gap > 2 * se)}
  return {"optimum": optimum, "num_architectures": len(table),
          "median_architecture": float(np.median(scores)),
          "within_half_point_of_optimum": int(np.sum(scores >= optimum - 0.005)),
          "methods": methods, "versus_random": verdict}


def verify(cfg, task, table: supernet.ArchitectureTable, count: int) -> list[dict[str, Any]]:
  """Re-trains `count` architectures (the optimum first, then spread over the ranking)."""
  if count < 1:
    return []
  order = np.argsort(-table.scores, kind="stable")
  picks = [int(order[round(q * (len(order) - 1))]) for q in np.linspace(0, 1, count)]
  checks = []
  for i in dict.fromkeys(picks):
    real = nas.evaluate_architecture(table.configs[i], task, epochs=cfg.epochs,
                                     batch_size=cfg.batch_size, optimizer=cfg.optimizer,
                                     learning_rate=cfg.learning_rate, seed=cfg.train_seed)
    curve = np.asarray(real.curve)
    checks.append({"index": i, "config": dict(table.configs[i]),
                   "table_score": float(table.scores[i]), "trained_score": real.score,
                   "max_curve_difference": float(np.max(np.abs(curve - table.curves[i]))),
                   "trained_seconds": real.seconds})
  return checks


def table_fields(cfg, task) -> dict[str, Any]:
  """`tabulate`'s table as its fields (``ArchitectureTable(**fields)`` rebuilds it)."""
  table = tabulate(cfg, task)
  return {f.name: getattr(table, f.name) for f in dataclasses.fields(table)}


def method_searches(cfg, table: supernet.ArchitectureTable, space, method: str,
                    seeds: Sequence[int]) -> list[dict[str, Any]]:
  """Every seed's search of `method` against the table: one record each (without the
  fields `run` adds). Independent of the other methods."""
  records = []
  for s in seeds:
    result, seconds = search(cfg, table, space, method, s)
    records.append({"kind": "search", "method": method, "seed": s,
                    "table_index": [table.index(c) for c, _ in result.history],
                    "scores": result.scores().tolist(),
                    "best_so_far": result.best_so_far().tolist(),
                    "repeats": int(sum(result.cached)), "best_config": result.best_config,
                    "regret": table.best_score - result.best_score, "seconds": seconds})
  return records


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Tabulates the space, runs every searcher over the seeds; appends and returns records.

  The table, each method's searches and the re-training are saved as soon as each is done
  (optlab.study_progress): a killed run started again with the same config and seed goes
  on from there, with the same run_id (`restart` discards it instead).
  """
  for method in cfg.methods:
    if method not in nas.METHODS:
      raise ValueError(f"run: unknown method {method!r}; expected some of {nas.METHODS}")
  if cfg.budget < 1 or cfg.num_seeds < 1:
    raise ValueError(f"run: budget and num_seeds must be ≥ 1, got {cfg.budget}, {cfg.num_seeds}")
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  start = time.perf_counter()
  task = nas.load_task(cfg.dataset, seed=cfg.data_seed)
  space = make_space(cfg)
  table = supernet.ArchitectureTable(**progress.unit("table", table_fields, cfg, task))
  tabulate_s = time.perf_counter() - start
  common = {"study": STUDY, "run_id": progress.run_id, "config": cfg._asdict(),
            "provenance": results.provenance()}
  seeds = [seed + i for i in range(cfg.num_seeds)]
  records, searches = [], {}
  for method in cfg.methods:
    searches[method] = [{**common, **r} for r in progress.unit(
        f"search/{method}", method_searches, cfg, table, space, method, seeds)]
    records += searches[method]
  search_s = time.perf_counter() - start - tabulate_s
  checks = progress.unit("verify", verify, cfg, task, table, cfg.verify) if cfg.verify else []
  summary = summarize(table, searches)
  table_record = {
      **common, "kind": "table", "dataset": cfg.dataset,
      "sizes": {"train": len(task.train.y), "validation": len(task.validation.y)},
      "configs": [dict(c) for c in table.configs], "scores": table.scores.tolist(),
      "num_params": table.num_params.tolist(), "status": list(table.status),
      "curves": np.round(table.curves, 6).tolist(), "optimum": table.best_score,
      "best_config": table.best_config, "settings": table.settings}
  summary_record = {
      **common, "kind": "summary", "seeds": seeds, "budget": cfg.budget, **summary,
      "verification": checks,
      "timing": {"tabulate_s": tabulate_s, "table_compile_s":
                 table.settings["total_compile_seconds"], "table_train_s":
                 table.settings["train_wall_seconds"], "table_chunk_s":
                 table.settings["total_train_seconds"], "search_s": search_s,
                 "verify_s": float(sum(c["trained_seconds"] for c in checks)),
                 "total_s": time.perf_counter() - start}}
  records = [table_record, *records, summary_record]
  progress.finish(records)
  return records


def table_text(records: list[dict]) -> str:
  """The table optimum, then one line per searcher: regret at the budget with spread."""
  table = next(r for r in records if r["kind"] == "table")
  summary = next(r for r in records if r["kind"] == "summary")
  s = table["settings"]
  lines = [f"{table['dataset']} ({table['sizes']['train']} train / {table['sizes']['validation']} "
           f"validation), {summary['num_architectures']} MLPs (depth ≤ {s['max_depth']}, width ≤ "
           f"{s['max_width']}, {len(s['activations'])} activations), {s['optimizer']} lr "
           f"{s['learning_rate']:g}, {s['epochs']} epochs; score = best validation accuracy",
           f"  optimum {100 * summary['optimum']:.2f}% {table['best_config']}; median "
           f"architecture {100 * summary['median_architecture']:.2f}%; "
           f"{summary['within_half_point_of_optimum']} within 0.5 point of the optimum",
           f"  budget {summary['budget']} trials, {len(summary['seeds'])} seeds; regret = optimum "
           "− best found, in accuracy points",
           f"  {'method':<22}{'mean ± se':>14}{'median':>8}{'q25–q75':>13}{'max':>7}"
           f"{'optimum':>9}{'better':>8}{'s/search':>10}"]
  for method, m in summary["methods"].items():
    a = m["at_budget"]
    lines.append(f"  {LABELS.get(method, method):<22}{100 * a['mean']:>8.2f} ± "
                 f"{100 * a['stderr']:.2f}{100 * a['median']:>8.2f}"
                 f"{100 * a['q25']:>7.2f}–{100 * a['q75']:.2f}{100 * a['max']:>7.2f}"
                 f"{a['found_optimum']:>9.0%}{m['fraction_better_than_pick']['mean']:>8.1%}"
                 f"{m['mean_seconds_per_search']:>10.3f}")
  lines.append("  optimum: fraction of seeds that found the table's optimum; better: mean fraction "
               "of architectures strictly better than the final pick")
  for method, v in summary["versus_random"].items():
    lines.append(f"  {LABELS.get(method, method)} vs random: regret lower by "
                 f"{100 * v['regret_reduction_vs_random']:+.2f} ± {100 * v['stderr']:.2f} points "
                 f"({'better' if v['better_on_average'] else 'not better'} on average"
                 f"{', beyond 2 se' if v['beyond_2_stderr'] else ', within 2 se'})")
  for c in summary["verification"]:
    lines.append(f"  re-trained {c['config']}: table {100 * c['table_score']:.2f}%, "
                 f"evaluate_architecture {100 * c['trained_score']:.2f}% (curves differ by ≤ "
                 f"{c['max_curve_difference']:.1e})")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  try:  # Optuna logs every trial at INFO
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
  except ImportError:
    pass
  records = run(cfg, args.results, seed=args.seed, restart=args.restart)
  print(table_text(records))
  t = records[-1]["timing"]
  print(f"\n{len(records)} records appended to {args.results} ({cfg.name} mode, "
        f"{t['total_s']:.1f} s: table {t['tabulate_s']:.1f} s of which compiling "
        f"{t['table_compile_s']:.1f} s and training {t['table_train_s']:.1f} s, searches "
        f"{t['search_s']:.1f} s, re-training {t['verify_s']:.1f} s)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
