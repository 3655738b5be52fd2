"""Draws the adam_networks figure from saved results (never runs the study).

  python paper_figures/adam_networks.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Kingma & Ba (2015), Fig. 2-4 style. Top row: the training loss (minibatch
cross-entropy, dropout on, smoothed over a few steps) against the iteration for the
MLP with dropout and for the CNN, one line per optimizer at the α it chose on the
validation split (mean over seeds, band min-max). Bottom row: the bias-correction
ablation, the training loss after a fixed number of steps against log10 α, one color
per β2, solid = with bias correction, dashed = without; one panel per β1. Records
come from ``experiments/adam_networks/run.py``; by default the most recent run.
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

DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "adam_networks.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "adam_networks.png"
STUDY = "adam_networks"
TITLES = {"mlp": "MLP with dropout", "cnn": "CNN"}
LABELS = {"sgd": "SGD", "nesterov": "SGD-Nesterov", "adagrad": "AdaGrad",
          "rmsprop": "RMSProp", "adadelta": "AdaDelta", "adam": "Adam"}
COLORS = {"sgd": "tab:gray", "nesterov": "tab:green", "adagrad": "tab:orange",
          "rmsprop": "tab:blue", "adadelta": "tab:brown", "adam": "tab:purple"}
B2_COLORS = ("tab:blue", "tab:orange", "tab:red", "tab:green")
LOSS_CAP = 1e3  # where a non-finite (diverged) loss is drawn
DPI = 110


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
  """A trailing moving average along the last axis (NaN-aware, same length)."""
  if window <= 1:
    return values
  finite = np.isfinite(values)
  filled = np.where(finite, values, 0.0)
  kernel = np.ones(window)
  total = np.apply_along_axis(lambda v: np.convolve(v, kernel)[: len(v)], -1, filled)
  count = np.apply_along_axis(lambda v: np.convolve(v, kernel)[: len(v)], -1, finite * 1.0)
  with np.errstate(invalid="ignore", divide="ignore"):
    return total / count


def _comparison_panel(ax, records: list[dict], network: str) -> None:
  group = [r for r in records if r.get("kind") == "comparison" and r["network"] == network]
  r0 = group[0]
  window = max(1, r0["steps_per_epoch"] // 8)
  for optimizer in dict.fromkeys(r["optimizer"] for r in group):
    runs = [r for r in group if r["optimizer"] == optimizer]
    k = np.asarray(runs[0]["curve"]["iterations"], np.float64)
    losses = np.array([[np.nan if v is None else v for v in r["curve"]["train_loss"]]
                       for r in runs], np.float64)
    smooth = _smooth(losses, window)
    final = np.mean([r["final_train_loss"] for r in runs])
    edge = ", edge" if runs[0]["selection"]["at_grid_edge"] else ""
    alpha = runs[0]["hyperparameters"]["learning_rate"]
    label = f"{LABELS.get(optimizer, optimizer)} (α={alpha:g}{edge}): {final:.3f}"
    line, = ax.semilogy(k, np.nanmean(smooth, axis=0), color=COLORS.get(optimizer), lw=1.5,
                        label=label, zorder=3 if optimizer == "adam" else 2)
    ax.fill_between(k, np.nanmin(smooth, axis=0), np.nanmax(smooth, axis=0),
                    color=line.get_color(), alpha=0.2, lw=0)
  s = r0["sizes"]
  ax.set_title(f"{TITLES.get(network, network)}: {r0['dataset_description']}\n"
               f"train {s['train']}, {r0['epochs']} epochs, {len({r['seed'] for r in group})}"
               " seeds (mean, band min-max)", fontsize=9)
  ax.set_xlabel(f"iteration (minibatch {r0['batch_size']}; {r0['steps_per_epoch']} per epoch)")
  ax.set_ylabel(f"training loss (moving average of {window} steps)")
  ax.grid(True, which="both", alpha=0.25)
  ax.legend(fontsize=7, title="optimizer (chosen α): final-epoch loss", title_fontsize=7)


def _bias_panel(ax, records: list[dict], b1: float) -> None:
  group = [r for r in records if r.get("kind") == "bias_correction" and r["b1"] == b1]
  b2s = sorted({r["b2"] for r in group})
  for color, b2 in zip(B2_COLORS, b2s, strict=False):
    for corrected, style in ((True, "-"), (False, "--")):
      runs = sorted((r for r in group if r["b2"] == b2 and r["bias_correction"] == corrected),
                    key=lambda r: r["learning_rate"])
      alphas = np.log10([r["learning_rate"] for r in runs])
      loss = np.array([LOSS_CAP if r["final_train_loss"] is None else r["final_train_loss"]
                       for r in runs])
      ax.semilogy(alphas, loss, color=color, ls=style, marker="o", ms=3,
                  label=f"β2={b2:g}, {'corrected' if corrected else 'uncorrected'}")
  r0 = group[0]
  ax.set_title(f"bias correction, β1={b1:g}: loss after {r0['steps']} steps\n"
               f"MLP {r0['config']['bc_hidden']} on {r0['train_size']} examples, minibatch "
               f"{r0['batch_size']}; solid = corrected, dashed = not", fontsize=9)
  ax.set_xlabel("log10 α")
  ax.set_ylabel("training loss")
  ax.grid(True, which="both", alpha=0.25)
  ax.legend(fontsize=7)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the figure of one run from `results_path`; returns the file written.

  Args:
    results_path: the JSONL file written by ``experiments/adam_networks/run.py``.
    out_path: the PNG to write.
    run_id: which run to draw; by default the last one in the file.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = load(results_path, run_id)
  networks = [n for n in ("mlp", "cnn")
              if any(r.get("kind") == "comparison" and r["network"] == n for r in records)]
  b1s = sorted({r["b1"] for r in records if r.get("kind") == "bias_correction"})
  cols = max(len(networks), len(b1s), 1)
  rows = int(bool(networks)) + int(bool(b1s))
  fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.8 * rows), squeeze=False)
  row = 0
  if networks:
    for ax, network in zip(axes[row], networks, strict=False):
      _comparison_panel(ax, records, network)
    row += 1
  if b1s:
    for ax, b1 in zip(axes[row], b1s, strict=False):
      _bias_panel(ax, records, b1)
  for ax in axes.ravel():
    if not ax.has_data():
      ax.set_visible(False)
  r0 = records[0]
  fig.suptitle(f"Kingma & Ba (2015) Sec. 6.2-6.4 on Fashion-MNIST ({r0['config']['name']} "
               "mode): α of each optimizer chosen by validation loss on the first seed",
               fontsize=10)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, "Redraw the adam_networks figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
