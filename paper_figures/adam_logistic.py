"""Draws the adam_logistic figure from saved results (never runs the study).

  python paper_figures/adam_logistic.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

One panel per dataset (MNIST-5k, Fashion-MNIST, synthetic sparse features), as in
Kingma & Ba (2015), Fig. 1: the training cost (the L2-regularized objective on the
whole training split, evaluated once per epoch) against the iteration, log scale,
for Adam, SGD with Nesterov momentum and AdaGrad at the step size α each chose on
the validation split. Lines are the mean over seeds, bands the min-max; the dotted
line is the time-to-target level. The records come from
``experiments/adam_logistic/run.py``; by default the most recent run is drawn.
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

DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "adam_logistic.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "adam_logistic.png"
STUDY = "adam_logistic"
DATASETS = ("mnist_5k", "fashion_mnist", "sparse")
TITLES = {"mnist_5k": "MNIST-5k", "fashion_mnist": "Fashion-MNIST",
          "sparse": "sparse Zipf features (IMDB stand-in)"}
LABELS = {"adam": "Adam", "nesterov": "SGD-Nesterov", "adagrad": "AdaGrad",
          "adagrad_sqrt": "AdaGrad"}
STYLES = {"adam": ("tab:purple", "-"), "nesterov": ("tab:green", "-"),
          "adagrad": ("tab:orange", "-"), "adagrad_sqrt": ("tab:orange", "--")}
DPI = 110


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def _curves(runs: list[dict]) -> tuple[np.ndarray, np.ndarray]:
  """(iterations, costs (seed, point)); missing values (divergence) become NaN."""
  k = np.asarray(runs[0]["curve"]["iterations"], dtype=np.float64)
  costs = np.array([[np.nan if v is None else v for v in r["curve"]["train_cost"]]
                    for r in runs], dtype=np.float64)
  return k, costs


def _label(runs: list[dict], final: float) -> str:
  hyper = runs[0]["hyperparameters"]
  rule = "α/√t" if hyper["schedule"] != "constant" else "constant α"
  edge = ", grid edge" if runs[0]["selection"]["at_grid_edge"] else ""
  name = LABELS.get(runs[0]["method"], runs[0]["method"])
  return f"{name}, {rule} (α={hyper['learning_rate']:g}{edge}): final {final:.4f}"


def _panel(ax, records: list[dict], dataset: str) -> None:
  group = [r for r in records if r["dataset"] == dataset]
  r0 = group[0]
  top = 0.0
  for method in dict.fromkeys(r["method"] for r in group):
    runs = [r for r in group if r["method"] == method]
    k, costs = _curves(runs)
    mean = np.nanmean(costs, axis=0)
    color, style = STYLES.get(method, (None, "-"))
    line, = ax.semilogy(k, mean, color=color, ls=style, lw=1.6, label=_label(runs, mean[-1]),
                        zorder=3 if method == "adam" else 2)  # Adam over AdaGrad where equal
    ax.fill_between(k, np.nanmin(costs, axis=0), np.nanmax(costs, axis=0),
                    color=line.get_color(), alpha=0.2, lw=0)
    top = max(top, float(np.nanmax(mean)))
  ax.axhline(r0["target"], color="black", lw=0.8, ls=":",
             label=f"time-to-target level {r0['target']:.4f}")
  start = r0["curve"]["train_cost"][0]
  low = min(r["final_train_cost"] for r in group)
  ax.set_ylim(0.85 * low, 1.25 * min(top, 4 * start))  # early blow-ups shown, within reason
  ax.set_xlim(0, r0["curve"]["iterations"][-1])
  sizes = r0["sizes"]
  subtitle = f"n_train={sizes['train']}, d={r0['dim']}, {r0['num_classes']} classes"
  if r0.get("feature_dropout"):
    subtitle += f", {r0['feature_dropout']:.0%} feature dropout"
  ax.set_title(f"{TITLES.get(dataset, dataset)}\n{subtitle}", fontsize=10)
  ax.set_xlabel(f"iteration (minibatch {r0['batch_size']}; {r0['steps_per_epoch']} per epoch)")
  ax.grid(True, which="both", alpha=0.25)
  ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), frameon=False)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the figure of one run from `results_path`; returns the file written.

  Args:
    results_path: the JSONL file written by ``experiments/adam_logistic/run.py``.
    out_path: the PNG to write.
    run_id: which run to draw; by default the last one in the file.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = load(results_path, run_id)
  datasets = [d for d in DATASETS if any(r["dataset"] == d for r in records)]
  fig, axes = plt.subplots(1, len(datasets), figsize=(5.4 * len(datasets), 5.6), squeeze=False)
  for ax, dataset in zip(axes[0], datasets, strict=True):
    _panel(ax, records, dataset)
  axes[0][0].set_ylabel("training cost (regularized objective on the training split)")
  r0 = records[0]
  seeds = sorted({r["seed"] for r in records})
  fig.suptitle(
    f"L2-regularized multinomial logistic regression (λ={r0['l2']:g}), minibatch "
    f"{r0['batch_size']}, {r0['epochs']} epochs ({r0['config']['name']} mode): mean over "
    f"{len(seeds)} seeds, band min-max\neach α chosen by validation loss on seed "
    f"{r0['tuning_seed']}; dotted: time-to-target level = {r0['target_rule']}",
    fontsize=10,
  )
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, "Redraw the adam_logistic figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
