"""Draws the decoupled_weight_decay figure from saved results (never runs the study).

  python paper_figures/decoupled_weight_decay.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Loshchilov & Hutter (2019), Fig. 2 style: one heatmap per method of the final test
error (mean over seeds) over log α (x) × log λ (y), on one shared colour scale. The
best cell (chosen by validation error) is boxed; dots mark λ*(α), the best λ of each
α column. The records come from ``experiments/decoupled_weight_decay/run.py``; by
default the most recent run is drawn.
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

STUDY = "decoupled_weight_decay"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
TITLES = {
  "adam_l2": "Adam + L2 (decay in the gradient)",
  "adamw_lr": "AdamW, decay × α (torch/optax)",
  "adamw_paper": "AdamW, paper: decay × η_t, not × α",
  "sgd_l2": "SGD-momentum + L2",
  "sgdw": "SGDW, paper: decay × η_t, not × α",
}
Y_LABELS = {
  "adam_l2": "L2 coefficient λ",
  "adamw_lr": "λ (per-step decay α·η_t·λ)",
  "adamw_paper": "λ (per-step decay η_t·λ)",
  "sgd_l2": "L2 coefficient λ",
  "sgdw": "λ (per-step decay η_t·λ)",
}
DPI = 110


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def _mean_error(record: dict, key: str = "test_error") -> np.ndarray:
  """(α, λ) mean over seeds; None (divergence) becomes NaN."""
  grid = np.array([[[np.nan if v is None else v for v in seeds] for seeds in row]
                   for row in record["grid"][key]], dtype=np.float64)
  return np.nanmean(grid, axis=-1)


def _label(value: float) -> str:
  return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the heatmaps of one run from `results_path`; returns the file written."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib.patches import Rectangle

  records = load(results_path, run_id)
  errors = [_mean_error(r) for r in records]
  finite = np.concatenate([e[np.isfinite(e)] for e in errors])
  low = float(finite.min())
  high = float(min(finite.max(), low + 0.15))  # keep the good region resolved
  fig, axes = plt.subplots(1, len(records), figsize=(4.1 * len(records), 4.6), squeeze=False)
  image = None
  for ax, record, error in zip(axes[0], records, errors, strict=True):
    alphas, lams = record["learning_rates"], record["weight_decays"]
    image = ax.imshow(error.T, origin="lower", cmap="viridis_r", vmin=low, vmax=high,
                      aspect="auto")
    for i in range(len(alphas)):
      for j in range(len(lams)):
        if np.isfinite(error[i, j]):
          ax.text(i, j + 0.28, f"{100 * error[i, j]:.1f}", ha="center", va="center", fontsize=6.5,
                  color="white" if error[i, j] > low + 0.6 * (high - low) else "black")
    a = record["analysis"]
    bi, bj = a["best_index"]
    ax.add_patch(Rectangle((bi - 0.5, bj - 0.5), 1, 1, fill=False, ec="red", lw=2.2))
    stars = [lams.index(v) for v in a["lambda_star_per_alpha"]]
    ax.plot(range(len(alphas)), stars, "o-", color="red", ms=3, lw=0.8, alpha=0.6)
    edges = [lams.index(v) for v in a["lambda_max_per_alpha"]]
    ax.plot(range(len(alphas)), edges, "^--", color="white", mec="black", ms=4, lw=0.8,
            alpha=0.7)
    ax.set_xticks(range(len(alphas)), [_label(v) for v in alphas], fontsize=7)
    ax.set_yticks(range(len(lams)), [_label(v) for v in lams], fontsize=7)
    ax.set_xlabel("learning rate α (log)")
    ax.set_ylabel(Y_LABELS.get(record["method"], "λ") + " (log)", fontsize=8)
    corr, corr_max, slope, slope_max = (("—" if c is None else f"{c:+.2f}") for c in
                                        (a["lambda_star_correlation"],
                                         a["lambda_max_correlation"], a["lambda_star_slope"],
                                         a["lambda_max_slope"]))
    ax.set_title(f"{TITLES.get(record['method'], record['method'])}\nbest test err "
                 f"{100 * a['best_test_error']:.2f}%; λ*(α) slope {slope} (r {corr})\n"
                 f"λmax(α) slope {slope_max} (r {corr_max})", fontsize=8.5)
  r0 = records[0]
  sizes = r0["sizes"]
  fig.colorbar(image, ax=axes[0].tolist(), fraction=0.02, pad=0.01,
               label=f"final test error (clipped at {100 * high:.1f}%)")
  fig.suptitle(
    f"{r0['dataset_description']}, {r0['model']}, train/val/test {sizes['train']}/"
    f"{sizes['validation']}/{sizes['test']}, {r0['epochs']} epochs, batch {r0['batch_size']}, "
    f"{r0['schedule']} η_t ({r0['config']['name']} mode, {len(r0['seeds'])} seed(s))\nnumbers: "
    "test error in %; red box: best cell by validation error; red dots: λ*(α), the best λ of "
    "each α (validation); white triangles: λmax(α), the largest λ within "
    f"{100 * r0['analysis']['tolerance']:g} point of each α's best (validation)", fontsize=9,
    y=1.13)
  out_path = pathlib.Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out_path, dpi=DPI, bbox_inches="tight")
  plt.close(fig)
  return out_path


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
