"""Draws the adversarial_training figure from saved results (never runs the study).

  python paper_figures/adversarial_training.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Two panels: (a) test accuracy under an L∞ PGD attack against the radius ε for each model
(standard, Madry PGD training, TRADES for each β): the mean over seeds, with the range
across seeds shaded; ε = 0 is the clean accuracy and the dotted line marks the training ε.
(b) the trade-off at the training ε: clean against robust accuracy, one small marker per
seed and a large one per model (mean), TRADES' β values joined in order. The records come
from ``experiments/adversarial_training/run.py``; by default the most recent run is drawn.
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

STUDY = "adversarial_training"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
DPI = 110
COLORS = {"standard": "tab:gray", "madry": "tab:red"}
TRADES_COLORS = ("tab:cyan", "tab:blue", "tab:purple", "navy", "black")


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> dict:
  """The record of one run (`run_id`, or the last one)."""
  records = studies.load_run(results_path, STUDY, run_id)
  return records[-1]


def _label(run: dict) -> str:
  return run["method"] if run["method"] != "trades" else f"trades β={run['beta']:g}"


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws both panels of one run; returns the file written."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  r = load(results_path, run_id)
  s = r["summary"]
  eps = np.asarray(r["epsilons"], np.float64)
  column = s["train_epsilon_column"]
  labels = list(s["models"])
  trades = [label for label in labels if label.startswith("trades")]
  color = {**COLORS, **{t: TRADES_COLORS[i % len(TRADES_COLORS)] for i, t in enumerate(trades)}}
  fig, axes = plt.subplots(1, 2, figsize=(13, 5.0))

  ax = axes[0]
  for label in labels:
    m = s["models"][label]
    mean = 100 * np.asarray(m["curve_mean"])
    ax.plot(eps, mean, "o-", color=color[label], ms=4, lw=1.6,
            label=f"{label}: clean {100 * m['clean']:.1f}%, ε={r['train_epsilon']:g} "
                  f"{100 * m['robust']:.1f}%")
    ax.fill_between(eps, 100 * np.asarray(m["curve_min"]), 100 * np.asarray(m["curve_max"]),
                    color=color[label], alpha=0.18, lw=0)
  ax.axvline(r["train_epsilon"], color="black", ls=":", lw=1, label="training ε")
  ax.set_xlabel("L∞ attack radius ε (pixels in [0, 1])")
  ax.set_ylabel("test accuracy under PGD (%)")
  ax.set_ylim(-2, 102)
  ax.set_title(f"(a) accuracy vs ε ({r['eval_attack']}); mean over {len(r['seeds'])} seeds, "
               "range shaded", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7.5, loc="lower left")

  ax = axes[1]
  acc = 100 * np.asarray(r["accuracy"], np.float64)  # (run, ε)
  for label in labels:
    rows = [i for i, run in enumerate(r["runs"]) if _label(run) == label]
    ax.plot(acc[rows, 0], acc[rows, column], ".", color=color[label], ms=7, alpha=0.6)
    m = s["models"][label]
    ax.plot(100 * m["clean"], 100 * m["robust"], "o", color=color[label], ms=11, mec="black",
            mew=0.7, label=label)
  if len(trades) > 1:
    points = np.array([[s["models"][t]["clean"], s["models"][t]["robust"]] for t in trades])
    ax.plot(100 * points[:, 0], 100 * points[:, 1], "-", color="tab:blue", lw=1, alpha=0.7,
            label="TRADES, β increasing")
  ax.set_xlabel("clean test accuracy (%)")
  ax.set_ylabel(f"robust test accuracy at ε = {r['train_epsilon']:g} (%)")
  se = s.get("clean_binomial_standard_error")
  noise = f" (binomial s.e. {100 * se:.2f})" if se is not None else ""
  ax.set_title(f"(b) at the training ε: Madry +{100 * s['madry_robust_gain']:.1f} robust points "
               f"for {100 * s['madry_clean_cost']:.2f} clean points{noise}\n(dots: seeds; "
               f"large: means); robustness gained: {s['robustness_reproduced']}, clean cost "
               f"beyond noise: {s['clean_cost_reproduced']}", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7.5, loc="best")

  fig.suptitle(f"{r['dataset_description']}; train/test {r['sizes']['train']}/"
               f"{r['sizes']['test']}\n{r['model']}; {r['optimizer']}; training attack "
               f"{r['train_attack']} ({r['config']['name']} mode)", fontsize=9.5)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
