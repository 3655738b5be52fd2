"""Draws the architecture_search figure from saved results (never runs the study).

  python paper_figures/architecture_search.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Three panels: (a) best validation accuracy found against the number of trials, the
median over searcher seeds with the 25–75% band, for random search, TPE and the
REINFORCE controller, the table's exhaustive optimum as a dashed line; (b) the mean
regret (optimum − best found) on a log axis; (c) every architecture of the space
(validation accuracy against parameters) with each search's final pick. The records
come from ``experiments/architecture_search/run.py``; by default the most recent run
is drawn.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
try:
  from optlab import studies
except ImportError:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
  from optlab import studies

STUDY = "architecture_search"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
LABELS = {"random": "random search", "bayesian": "TPE (Optuna)", "rl": "REINFORCE controller"}
COLORS = {"random": "tab:gray", "bayesian": "tab:blue", "rl": "tab:red"}
MARKERS = {"random": "s", "bayesian": "o", "rl": "^"}
DPI = 110


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the three panels of one run from `results_path`; returns the file written."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = load(results_path, run_id)
  table = next(r for r in records if r["kind"] == "table")
  summary = next(r for r in records if r["kind"] == "summary")
  searches = [r for r in records if r["kind"] == "search"]
  methods = list(dict.fromkeys(r["method"] for r in searches))
  optimum = 100 * table["optimum"]
  scores = 100 * np.asarray(table["scores"], np.float64)
  params = np.asarray(table["num_params"], np.float64)
  n_val = table["sizes"]["validation"]

  fig, (ax_best, ax_regret, ax_space) = plt.subplots(1, 3, figsize=(16, 4.9))
  for method in methods:
    best = 100 * np.array([r["best_so_far"] for r in searches if r["method"] == method])
    trials = np.arange(1, best.shape[1] + 1)
    color = COLORS.get(method)
    a = summary["methods"][method]["at_budget"]
    label = (f"{LABELS.get(method, method)}: regret {100 * a['mean']:.2f} ± "
             f"{100 * a['stderr']:.2f} pt")
    ax_best.plot(trials, np.median(best, axis=0), color=color, lw=2, label=label)
    ax_best.fill_between(trials, np.quantile(best, 0.25, axis=0), np.quantile(best, 0.75, axis=0),
                         color=color, alpha=0.18, lw=0)
    regret = optimum - best
    mean = regret.mean(axis=0)
    se = regret.std(axis=0, ddof=1) / np.sqrt(len(regret)) if len(regret) > 1 else 0 * mean
    floor = 100 / n_val / 4
    ax_regret.plot(trials, np.maximum(mean, floor), color=color, lw=2,
                   label=LABELS.get(method, method))
    ax_regret.fill_between(trials, np.maximum(mean - se, floor), np.maximum(mean + se, floor),
                           color=color, alpha=0.18, lw=0)
  low = max(np.quantile(scores, 0.5), optimum - 8)
  ax_best.axhline(optimum, color="black", ls="--", lw=1, label=f"table optimum {optimum:.2f}%")
  ax_best.set_ylim(low, optimum + 0.6)
  ax_best.set_xlabel("trials")
  ax_best.set_ylabel("best validation accuracy so far (%)")
  ax_best.set_title("(a) best found: median over seeds, 25–75% band")
  ax_best.legend(fontsize=8, loc="lower right")
  ax_regret.axhline(100 / n_val, color="black", ls=":", lw=1,
                    label=f"one validation image ({100 / n_val:.2f} pt)")
  ax_regret.set_yscale("log")
  ax_regret.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(
      [0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 30, 50]))
  ax_regret.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
  ax_regret.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax_regret.set_xlabel("trials")
  ax_regret.set_ylabel("regret: optimum − best found (accuracy points)")
  ax_regret.set_title("(b) mean regret over seeds (± 1 standard error)")
  ax_regret.legend(fontsize=8, loc="upper right")

  ax_space.scatter(params, scores, s=9, color="0.75", lw=0,
                   label=f"all {len(scores)} architectures")
  rng = np.random.default_rng(0)
  for k, method in enumerate(methods):
    picks = [r["table_index"][int(np.argmax(r["scores"]))] for r in searches
             if r["method"] == method]
    idx, counts = np.unique(picks, return_counts=True)
    shift = 1 + 0.06 * (k - (len(methods) - 1) / 2)  # side by side on the log axis
    ax_space.scatter(params[idx] * shift, scores[idx] + rng.uniform(-0.03, 0.03, len(idx)),
                     s=30 + 25 * counts, facecolors="none", edgecolors=COLORS.get(method),
                     marker=MARKERS.get(method, "o"), lw=1.4,
                     label=f"{LABELS.get(method, method)} final picks")
  ax_space.axhline(optimum, color="black", ls="--", lw=1)
  ax_space.set_xscale("log")
  ax_space.set_ylim(low - 2, optimum + 0.8)
  ax_space.set_xlabel("parameters")
  ax_space.set_ylabel("best validation accuracy (%)")
  ax_space.set_title("(c) every architecture; final picks (size: seeds)")
  ax_space.legend(fontsize=8, loc="upper left")

  s = table["settings"]
  cfg = table["config"]
  fig.suptitle(
      f"Architecture search on {table['dataset']} ({table['sizes']['train']} train / {n_val} "
      f"validation): {len(scores)} MLPs (depth ≤ {s['max_depth']}, widths "
      f"{cfg['widths']}, {', '.join(s['activations'])}), each trained once ({s['optimizer']} "
      f"lr {s['learning_rate']:g}, {s['epochs']} epochs) into a table;\nevery search queries the "
      f"table (score: best validation accuracy); budget "
      f"{summary['budget']} trials, {len(summary['seeds'])} seeds per searcher "
      f"({cfg['name']} mode)", fontsize=10)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
