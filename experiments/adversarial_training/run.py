"""adversarial_training: clean and robust accuracy against ε, standard vs adversarial training.

An MLP on sklearn digits (pixels in [0, 1]) is trained three ways with the same optimizer,
budget and seeds: standard cross-entropy, PGD adversarial training (Madry et al. 2018:
cross-entropy at an L∞ PGD example of radius ε_train) and TRADES (Zhang et al. 2019:
cross-entropy + β · KL between the clean and the adversarial prediction, for each β of a
grid). Every model is then attacked on the test set with a stronger PGD at every ε of a
grid (ε = 0 is the clean accuracy). Claim (Madry et al. 2018; Tsipras et al. 2019):
adversarial training raises robust accuracy at the cost of some clean accuracy; TRADES'
β moves along that trade-off.

Every training run goes through ``optlab.strategies.adversarial.make_adversarial_train_step``
(or ``optlab.train.steps.make_train_step`` for the standard model) and
``optlab.train.steps.make_scan_epoch``; each method's seeds (× β) are one vmapped,
compiled program, and the evaluation is one more.

Usage:
  python experiments/adversarial_training/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure]
"""

from __future__ import annotations

import importlib.util
import itertools
import pathlib
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, models, optim, results  # noqa: E402
from optlab.strategies import adversarial as adv  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.train import steps as steps_lib  # noqa: E402
from optlab.train.state import TrainState, split_model  # noqa: E402

STUDY = "adversarial_training"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
BOUNDS = (0.0, 1.0)

config = load_module("optlab_adversarial_training_config", HERE / "config.py")


def load_workload(cfg) -> dict[str, np.ndarray]:
  """Digits with pixels in [0, 1], split (stratified) into train and test."""
  splits = data.train_val_test_split(data.digits(flatten=True), 0.0, cfg.test_fraction,
                                     cfg.data_seed)
  prep = lambda ds: (np.asarray(ds.x, np.float32) / 16.0, np.asarray(ds.y, np.int32))  # noqa: E731
  (x, y), (xt, yt) = prep(splits.train), prep(splits.test)
  return {"x": x, "y": y, "x_test": xt, "y_test": yt}


def init_models(cfg, seeds: Sequence[int]):
  """(train graphdef, eval graphdef, params stacked over seeds, rest stacked over seeds)."""
  split = [split_model(models.MLP(64, cfg.hidden_sizes, 10, rngs=nnx.Rngs(s))) for s in seeds]
  stack = lambda *leaves: jnp.stack(leaves)  # noqa: E731
  params = jax.tree.map(stack, *[s[2] for s in split])
  rest = jax.tree.map(stack, *[s[3] for s in split])
  return split[0][0], split[0][1], params, rest


def make_program(cfg, graphdef, eval_graphdef):
  """``run(params, rest, key, method, epsilon, beta, x, y, x_test, y_test) -> (params, losses,
  accuracy)``: one model trained, then attacked at every evaluation ε.

  Training: ``lax.scan`` over epochs of ``make_scan_epoch`` over
  ``make_adversarial_train_step``: ``method`` 0 is ``"madry"``, 1 is ``"trades"``, picked by
  ``lax.switch`` (under ``vmap`` both run and one is selected, so every (model, seed)
  trains in one compiled program). ε and β are traced. The standard model is ``"madry"``
  at ε = 0: PGD then returns x itself (zero start, zero step), so its loss is exactly the
  clean cross-entropy (``tests/test_adversarial.py`` checks the update equals
  ``make_train_step``'s). Evaluation: ``robust_accuracy`` under PGD (``cfg.eval_steps``
  steps, random start) at every ε of ``cfg.eval_epsilons`` (ε = 0: clean accuracy).
  """
  tx = optim.get("adam", learning_rate=cfg.learning_rate)
  eval_epsilons = jnp.asarray(cfg.eval_epsilons, jnp.float32)

  def run(params, rest, key, method, epsilon, beta, x, y, x_test, y_test):
    attack_key, eval_key = jax.random.split(jax.random.fold_in(key, 2**31))
    common = {"epsilon": epsilon, "steps": cfg.train_steps, "norm": cfg.norm, "bounds": BOUNDS,
              "key": attack_key, "attack_graphdef": eval_graphdef,
              "skip_nonfinite": False}
    branches = [adv.make_adversarial_train_step(graphdef, tx, method="madry", **common),
                adv.make_adversarial_train_step(graphdef, tx, method="trades", beta=beta,
                                                **common)]

    def step(state, xb, yb):
      return jax.lax.switch(method, branches, state, xb, yb)

    epoch = steps_lib.make_scan_epoch(step, cfg.batch_size)
    state = TrainState(step=jnp.zeros([], jnp.int32), params=params, model_state=rest,
                       opt_state=tx.init(params), skipped=jnp.zeros([], jnp.int32))

    def body(state, e):
      state, losses = epoch(state, x, y, jax.random.fold_in(key, e))
      return state, jnp.mean(losses)

    state, losses = jax.lax.scan(body, state, jnp.arange(cfg.epochs))
    model = nnx.merge(eval_graphdef, state.params, state.model_state)

    def attacked(epsilon):
      attack = adv.make_attack("pgd", epsilon=epsilon, steps=cfg.eval_steps, norm=cfg.norm,
                               bounds=BOUNDS)
      return adv.robust_accuracy(model, x_test, y_test, attack, eval_key)

    return state.params, losses, jax.vmap(attacked)(eval_epsilons)

  return run


def train_and_attack(cfg, workload, seeds: Sequence[int]):
  """Trains and attacks every (model, seed) as one vmapped, compiled program.

  Returns (runs, accuracy (run, ε), timing); each run dict has its model, seed and
  per-epoch training loss.
  """
  # (label, method index, ε, β): standard = Madry at ε = 0 (see `make_program`).
  models_ = ([("standard", 0, 0.0, 0.0), ("madry", 0, cfg.train_epsilon, 0.0)]
             + [("trades", 1, cfg.train_epsilon, b) for b in cfg.trades_betas])
  graphdef, eval_graphdef, params0, rest0 = init_models(cfg, seeds)
  n = len(models_)
  tile = lambda t: jax.tree.map(lambda a: jnp.concatenate([a] * n), t)  # noqa: E731
  column = lambda i, dtype: jnp.repeat(jnp.asarray([m[i] for m in models_], dtype),  # noqa: E731
                                       len(seeds))
  keys = jnp.stack([jax.random.key(s) for s in seeds] * n)
  data_ = tuple(jnp.asarray(workload[k]) for k in ("x", "y", "x_test", "y_test"))
  args = (tile(params0), tile(rest0), keys, column(1, jnp.int32), column(2, jnp.float32),
          column(3, jnp.float32), *data_)
  program = jax.jit(jax.vmap(make_program(cfg, graphdef, eval_graphdef),
                             in_axes=(0, 0, 0, 0, 0, 0, None, None, None, None)))
  start = time.perf_counter()
  compiled = program.lower(*args).compile()
  timing = {"compile_s": time.perf_counter() - start}
  start = time.perf_counter()
  _, losses, accuracy = compiled(*args)
  losses, accuracy = np.asarray(losses), np.asarray(accuracy, np.float64)
  timing["train_and_eval_s"] = time.perf_counter() - start
  runs = []
  for i in range(n * len(seeds)):
    label, _, epsilon, beta = models_[i // len(seeds)]
    runs.append({"method": label, "beta": beta if label == "trades" else None,
                 "train_epsilon": epsilon, "seed": int(seeds[i % len(seeds)]),
                 "train_loss": losses[i].tolist()})
  return runs, accuracy, timing


def model_label(run: dict) -> str:
  """'standard', 'madry' or 'trades β=6'."""
  return run["method"] if run["method"] != "trades" else f"trades β={run['beta']:g}"


def summarize(runs: list[dict], accuracy: np.ndarray, epsilons: Sequence[float],
              train_epsilon: float, n_test: int | None = None) -> dict[str, Any]:
  """Per model (mean and spread over seeds) and the claims' verdicts.

  Args:
    runs: one dict per run with "method" and "beta" (the rows of `accuracy`).
    accuracy: (run, ε) test accuracy; column 0 is ε = 0 (clean).
    epsilons: the ε grid (its first value 0).
    train_epsilon: the training radius, which must be in the grid.
    n_test: test-set size; gives the binomial standard error √(p(1−p)/n) of the standard
      model's clean accuracy, the noise the clean cost is judged against.

  Returns:
    {"models": {label: {clean, robust (at ε_train), curve mean/min/max}}, and the verdicts:
    madry_more_robust, madry_costs_clean, trades_beta_monotone (larger β: clean not
    higher and robust not lower, comparing the means), clean_cost_significant (cost > 2
    binomial s.e.), robustness_reproduced, clean_cost_reproduced, held (all three parts)}.
  """
  column = int(np.argmin(np.abs(np.asarray(epsilons) - train_epsilon)))
  if abs(epsilons[column] - train_epsilon) > 1e-9 or epsilons[0] != 0.0:
    raise ValueError("summarize: the ε grid must start at 0 and contain the training ε, got "
                     f"{list(epsilons)} and {train_epsilon}")
  models_: dict[str, dict] = {}
  for label in dict.fromkeys(model_label(r) for r in runs):
    rows = accuracy[[i for i, r in enumerate(runs) if model_label(r) == label]]
    models_[label] = {"clean": float(rows[:, 0].mean()), "robust": float(rows[:, column].mean()),
                      "clean_spread": float(rows[:, 0].max() - rows[:, 0].min()),
                      "robust_spread": float(rows[:, column].max() - rows[:, column].min()),
                      "curve_mean": rows.mean(axis=0).tolist(),
                      "curve_min": rows.min(axis=0).tolist(),
                      "curve_max": rows.max(axis=0).tolist(), "seeds": len(rows)}
  std, madry = models_["standard"], models_["madry"]
  trades = sorted((r["beta"], model_label(r)) for r in runs if r["method"] == "trades")
  trades = [models_[label] for _, label in dict.fromkeys(trades)]
  monotone = all(a["clean"] >= b["clean"] and a["robust"] <= b["robust"]
                 for a, b in itertools.pairwise(trades))
  verdict = {
      "train_epsilon_column": column,
      "madry_robust_gain": madry["robust"] - std["robust"],
      "madry_clean_cost": std["clean"] - madry["clean"],
      "madry_more_robust": bool(madry["robust"] > std["robust"] + 0.05),
      "madry_costs_clean": bool(madry["clean"] < std["clean"]),
      "trades_more_robust": bool(all(t["robust"] > std["robust"] + 0.05 for t in trades)),
      "trades_beta_monotone": bool(monotone) if len(trades) > 1 else None,
  }
  if n_test:
    se = float(np.sqrt(max(std["clean"] * (1 - std["clean"]), 1e-12) / n_test))
    verdict["clean_binomial_standard_error"] = se
    verdict["clean_cost_significant"] = bool(verdict["madry_clean_cost"] > 2 * se)
  # The three parts of the claim: robustness gained, clean accuracy paid (beyond noise when
  # n_test is known), β moving along the trade-off.
  verdict["robustness_reproduced"] = bool(verdict["madry_more_robust"]
                                          and verdict["trades_more_robust"])
  verdict["clean_cost_reproduced"] = bool(verdict.get("clean_cost_significant",
                                                      verdict["madry_costs_clean"]))
  verdict["held"] = bool(verdict["robustness_reproduced"] and verdict["clean_cost_reproduced"]
                         and verdict["trades_beta_monotone"] is not False)
  return {"models": models_, **verdict}


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0) -> list[dict]:
  """Trains and attacks every model; appends one record and returns it (in a list)."""
  workload = load_workload(cfg)
  seeds = [seed + i for i in range(cfg.num_seeds)]
  start = time.perf_counter()
  runs, accuracy, timing = train_and_attack(cfg, workload, seeds)
  timing["wall_s"] = time.perf_counter() - start
  for r, row in zip(runs, accuracy, strict=True):
    r["accuracy"] = row.tolist()
  record = {
      "study": STUDY, "part": "accuracy_vs_epsilon", "run_id": uuid.uuid4().hex[:12],
      "config": cfg._asdict(), "provenance": results.provenance(), "seeds": seeds,
      "dataset_description": "sklearn digits 8x8, pixels scaled to [0, 1], stratified "
                             f"{100 * (1 - cfg.test_fraction):g}/{100 * cfg.test_fraction:g} "
                             "train/test split",
      "sizes": {"train": len(workload["y"]), "test": len(workload["y_test"])},
      "model": "MLP " + "-".join(map(str, (64, *cfg.hidden_sizes, 10))) + ", ReLU",
      "optimizer": f"adam(learning_rate={cfg.learning_rate:g}), batch {cfg.batch_size}, "
                   f"{cfg.epochs} epochs",
      "train_attack": f"PGD {cfg.norm}, ε = {cfg.train_epsilon:g}, {cfg.train_steps} steps of "
                      "2.5ε/steps, random start",
      "eval_attack": f"PGD {cfg.norm}, {cfg.eval_steps} steps of 2.5ε/steps, random start",
      "epsilons": list(cfg.eval_epsilons), "train_epsilon": cfg.train_epsilon,
      "runs": runs, "accuracy": accuracy,  # (run, ε)
      "summary": summarize(runs, accuracy, cfg.eval_epsilons, cfg.train_epsilon,
                           len(workload["y_test"])),
      "timing": timing,
  }
  records = [results.to_jsonable(record)]
  if results_path is not None:
    results.append_records(results_path, records)
  return records


def table(records: list[dict]) -> str:
  """The numbers, as text."""
  (r,) = records
  s = r["summary"]
  eps = r["epsilons"]
  lines = [f"{r['dataset_description']}; train/test {r['sizes']['train']}/{r['sizes']['test']};"
           f" {r['model']}; {r['optimizer']}; {len(r['seeds'])} seed(s)",
           f"training attack: {r['train_attack']}; evaluation: {r['eval_attack']}",
           "test accuracy (%) under PGD, mean over seeds:",
           f"  {'model':<14}" + "".join(f"{'ε=' + format(e, 'g'):>9}" for e in eps)]
  for label, m in s["models"].items():
    lines.append(f"  {label:<14}" + "".join(f"{100 * v:>9.2f}" for v in m["curve_mean"]))
  lines.append(f"  at ε_train = {r['train_epsilon']:g}: Madry robust "
               f"+{100 * s['madry_robust_gain']:.2f} points over standard "
               f"({s['madry_more_robust']}), "
               f"clean cost {100 * s['madry_clean_cost']:.2f} points ({s['madry_costs_clean']}; "
               f"binomial s.e. {100 * s.get('clean_binomial_standard_error', 0.0):.2f}); TRADES β "
               f"monotone trade-off: {s['trades_beta_monotone']}\n  robustness gained: "
               f"{s['robustness_reproduced']}; clean accuracy paid beyond noise: "
               f"{s['clean_cost_reproduced']}; whole claim held: {s['held']}")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  start = time.perf_counter()
  records = run(cfg, args.results, seed=args.seed)
  elapsed = time.perf_counter() - start
  print(table(records))
  print(f"\n{len(records)} record appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s, "
        f"of which ~{records[0]['timing']['compile_s']:.1f} s compiling)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
