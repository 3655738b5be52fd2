"""Draws the lr_batch_sensitivity figure from saved results (never runs the study).

  python paper_figures/lr_batch_sensitivity.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

One heatmap per optimizer of the final validation accuracy (mean over seeds) over the
batch size (x) × the learning rate (y, log), diverged cells crossed out, the learning
rates within the tolerance of each batch size's best outlined, and the best learning
rate per batch size (validation loss, parabola-refined) drawn as a line. A last panel
puts the best learning rates of all optimizers on log-log axes (relative to the
smallest batch size) with their fitted slopes and the linear (slope 1) and square-root
(slope ½) rules. The records come from ``experiments/lr_batch_sensitivity/run.py``;
by default the most recent run is drawn.
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

STUDY = "lr_batch_sensitivity"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
TITLES = {"sgd": "SGD", "momentum": "SGD + momentum 0.9", "adam": "Adam"}
COLORS = {"sgd": "tab:blue", "momentum": "tab:green", "adam": "tab:red"}
DPI = 110


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def mean_grid(record: dict, key: str = "val_accuracy") -> np.ndarray:
  """(lr, batch) mean over seeds; NaN where any seed diverged."""
  grid = np.array([[[np.nan if v is None else v for v in seeds] for seeds in row]
                   for row in record["grid"][key]], dtype=np.float64)
  diverged = np.asarray(record["diverged"], bool).any(axis=-1)
  with np.errstate(invalid="ignore"):
    mean = np.nanmean(np.where(np.isfinite(grid), grid, np.nan), axis=-1) if grid.size else grid
  return np.where(diverged, np.nan, mean)


def _label(value: float) -> str:
  return f"{value:.2g}"


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the heatmaps and the slope panel of one run; returns the file written."""
  import warnings

  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.patches import Rectangle

  records = load(results_path, run_id)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
    accuracies = [mean_grid(r) for r in records]
  best = max(float(np.nanmax(a)) for a in accuracies)
  low = best - 0.15  # keep the good region resolved; worse cells saturate
  n = len(records)
  fig, axes = plt.subplots(1, n + 1, figsize=(3.3 * n + 4.2, 5.6),
                           gridspec_kw={"width_ratios": [1] * n + [1.35]})
  cmap = matplotlib.colormaps["viridis"].with_extremes(bad="0.85")
  image = None
  for ax, record, acc in zip(axes[:n], records, accuracies, strict=True):
    lrs, batches, a = record["learning_rates"], record["batch_sizes"], record["analysis"]
    image = ax.imshow(acc, origin="lower", cmap=cmap, vmin=low, vmax=best, aspect="auto")
    good = [set(g) for g in a["good_lrs_per_batch"]]
    for i, lr in enumerate(lrs):
      for j in range(len(batches)):
        if not np.isfinite(acc[i, j]):
          ax.text(j, i, "×", ha="center", va="center", fontsize=9, color="0.35")
          continue
        ax.text(j, i, f"{100 * acc[i, j]:.1f}", ha="center", va="center", fontsize=6.5,
                color="black" if acc[i, j] > low + 0.55 * (best - low) else "white")
        if lr in good[j]:
          ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="white", lw=1.2))
    log_lr = np.log10(lrs)
    step = float(np.mean(np.diff(log_lr)))
    rows = [(np.log10(v) - log_lr[0]) / step for v in a["best_lr_per_batch"]]
    ax.plot(range(len(batches)), rows, "o-", color="red", lw=1.5, ms=4)
    ax.set_xticks(range(len(batches)), [str(b) for b in batches], fontsize=8)
    ax.set_yticks(range(len(lrs)), [_label(v) for v in lrs], fontsize=7)
    ax.set_xlabel("batch size")
    ax.set_ylabel("learning rate α (log)")
    slope = a["best_lr_slope"]
    ax.set_title(f"{TITLES.get(record['optimizer'], record['optimizer'])}\n"
                 f"best val acc {100 * a['best_val_accuracy']:.1f}%; α* slope "
                 f"{'—' if slope is None else f'{slope:+.2f}'}\ngood α: "
                 f"{a['mean_good_width_decades']:.2f} decades per batch, "
                 f"{a['shared_good_width_decades']:.2f} shared", fontsize=8.5)
  fig.colorbar(image, ax=axes[n - 1], fraction=0.08, pad=0.03,
               label=f"validation accuracy (clipped at {100 * low:.0f}%)")

  ax = axes[n]
  b0 = None
  for record in records:
    a, batches = record["analysis"], np.asarray(record["batch_sizes"], np.float64)
    best_lrs = np.asarray(a["best_lr_per_batch"], np.float64)
    b0 = batches[0]
    relative = best_lrs / best_lrs[0]
    color = COLORS.get(record["optimizer"])
    slope, intercept = a["best_lr_slope"], a["best_lr_intercept"]
    name = TITLES.get(record["optimizer"], record["optimizer"])
    ax.plot(batches, relative, "o", color=color, ms=6)
    edges = np.asarray(a["best_lr_at_edge"], bool)
    if edges.any():
      ax.plot(batches[edges], relative[edges], "o", mfc="none", mec="black", ms=10, mew=1)
    if slope is not None:
      fitted = 10 ** (intercept + slope * np.log10(batches)) / best_lrs[0]
      ax.plot(batches, fitted, "-", color=color, lw=1.3, label=f"{name}: slope {slope:+.2f}")
  span = np.array([b0, records[0]["batch_sizes"][-1]], np.float64)
  ax.plot(span, span / b0, ":", color="black", lw=1, label="linear rule (slope 1)")
  ax.plot(span, np.sqrt(span / b0), "--", color="0.5", lw=1, label="square-root rule (slope ½)")
  ax.set_xscale("log", base=2)
  ax.set_yscale("log")
  ax.set_xlabel("batch size")
  ax.set_ylabel(f"best α / best α at batch {int(b0)}")
  ax.set_title("best learning rate vs batch size (log-log)\nfitted least-squares slopes",
               fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7.5, loc="upper left")

  r0 = records[0]
  sizes = r0["sizes"]
  fig.suptitle(
    f"{r0['dataset_description']}, {r0['model']}, train/val {sizes['train']}/"
    f"{sizes['validation']}, {r0['epochs']} epochs at every batch size "
    f"({r0['config']['name']} mode, {len(r0['seeds'])} seeds)\nnumbers: validation accuracy in %"
    f" (mean over seeds); ×: diverged; white boxes: within {100 * r0['analysis']['tolerance']:g}"
    " point of the batch size's best accuracy\nred line: best α by validation loss "
    "(parabola-refined); open circle: best α on the grid's edge or next to divergence",
    fontsize=9)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
