"""Draws the marginal_value figure from saved results (never runs the study).

  python paper_figures/marginal_value.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Three panels, for Wilson et al.'s (2017) least-squares construction:

(a) test error against p, per method: mean over datasets with the min–max range, and
    the two predictions, 0 (the minimum-norm solution of GD and heavy ball) and 1 − p
    (a solution that labels every point positive, where the adaptive methods go);
(b) why: the score −w₁ + w₂ + w₃ that a fresh negative point (−1, 1, 1, 0, …) gets;
    below 0 it is classified correctly;
(c) the training loss f(w_k)/f(0) against k for one p and one dataset: every method
    interpolates the training set; they differ in which interpolating w they find.

The records come from ``experiments/marginal_value/run.py``; by default the most recent
run in the file is drawn.
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

DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "marginal_value.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "marginal_value.png"
STUDY = "marginal_value"
DPI = 110
STYLE = {  # label, colour, marker, line style
  "gd": ("GD", "tab:blue", "o", "-"),
  "heavy_ball": ("heavy ball", "tab:cyan", "s", "-"),
  "adagrad": ("AdaGrad", "tab:orange", "^", "-"),
  "rmsprop": ("RMSProp, cosine α", "tab:red", "v", "-"),
  "rmsprop_const": ("RMSProp, constant α", "tab:red", "v", "--"),
  "adam": ("Adam", "tab:purple", "D", "-"),
}


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one (not an ablation)."""
  return studies.load_run(
      results_path, STUDY, run_id, default_from=lambda r: r.get("ablation") is None
  )


def _style(method: str) -> tuple[str, str, str, str]:
  return STYLE.get(method, (method, "tab:gray", "x", "-"))


def _methods(records: list[dict]) -> list[str]:
  return list(dict.fromkeys(r["method"] for r in records))


def _by_p(records: list[dict], method: str, field: str):
  """(p, mean, min, max) of `field` over the datasets, per p."""
  ps = sorted({r["p"] for r in records if r["method"] == method})
  rows = []
  for p in ps:
    values = [r[field] for r in records if r["method"] == method and r["p"] == p]
    rows.append((p, np.mean(values), np.min(values), np.max(values)))
  return np.array(rows).T


def _per_p_panel(ax, records, field, offsets):
  for method in _methods(records):
    label, color, marker, ls = _style(method)
    p, mean, low, high = _by_p(records, method, field)
    x = p + offsets[method]
    del ls  # markers only: the x offsets would make connecting lines cross the references
    ax.errorbar(x, mean, yerr=[mean - low, high - mean], color=color, marker=marker, ls="none",
                elinewidth=1.2, ms=5.5, capsize=2.5, label=label,
                mfc="white" if method == "rmsprop_const" else color)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the figure of one run from `results_path` into `out_path`; returns the path.

  Args:
    results_path: the JSONL file written by ``experiments/marginal_value/run.py``.
    out_path: the PNG to write.
    run_id: which run to draw; by default the last one in the file.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = load(results_path, run_id)
  out_path = pathlib.Path(out_path)
  methods = _methods(records)
  ps = np.array(sorted({r["p"] for r in records}))
  step = np.min(np.diff(ps)) if len(ps) > 1 else 0.1
  spread = 0.5 * step  # markers of one p spread over half the gap to the next p
  offsets = {m: spread * (i / max(len(methods) - 1, 1) - 0.5) for i, m in enumerate(methods)}
  r0 = records[0]
  seeds = sorted({r["seed"] for r in records})
  fig, axes = plt.subplots(1, 3, figsize=(16.5, 5.4),
                           gridspec_kw={"width_ratios": [1.15, 1.0, 1.0]})

  # (a) Test error against p, with the two predictions.
  ax = axes[0]
  line_p = np.array([ps[0] - 0.6 * step, ps[-1] + 0.6 * step])
  ax.plot(line_p, 1 - line_p, color="0.75", lw=0.8, ls="--", zorder=0)
  for i, p in enumerate(ps):  # level across the markers of p (they are spread in x)
    ax.hlines(1 - p, p - 0.6 * spread, p + 0.6 * spread, color="black", lw=1.6, zorder=3,
              label="1 − p: every point labelled +1" if i == 0 else None)
  ax.axhline(0.0, color="black", lw=1.0, ls=":", zorder=0, label="0: the minimum-norm solution")
  _per_p_panel(ax, records, "test_error", offsets)
  ax.set_xlim(*line_p)
  ax.set_ylim(-0.03, max(0.5, 1.05 * (1 - ps[0])))
  ax.set_xticks(ps)
  ax.set_xlabel("p = P(y = +1)")
  ax.set_ylabel("test error (fresh points)")
  ax.set_title(f"(a) test error: mean and range over {len(seeds)} datasets")
  ax.grid(True, alpha=0.3)
  ax.legend(fontsize=8, loc="upper right", framealpha=0.9)

  # (b) The score of a fresh negative point: the mechanism.
  ax = axes[1]
  ax.axhline(0.0, color="black", lw=1.0, ls=":", zorder=0)
  _per_p_panel(ax, records, "score_negative_point", offsets)
  ax.axhline(0.25, color="gray", lw=0.8, ls="--", zorder=0)
  ax.text(line_p[1] - 0.05 * step, 0.29, "w = sign(Xᵀy)/4 scores (y + 2)/4: ¼ for y = −1",
          fontsize=8, color="gray", ha="right")
  ax.text(ps[0] - 0.5 * step, 0.02, "above 0: labelled +1 (wrong)", fontsize=8)
  ax.text(ps[0] - 0.5 * step, -0.07, "below 0: labelled −1 (right)", fontsize=8)
  ax.set_xlim(*line_p)
  ax.set_xticks(ps)
  ax.set_xlabel("p = P(y = +1)")
  ax.set_ylabel(r"score of a fresh negative point, $-w_1 + w_2 + w_3$")
  ax.set_title("(b) why: the shared weights decide every fresh point")
  ax.grid(True, alpha=0.3)

  # (c) Training loss against iteration, one p, one dataset.
  ax = axes[2]
  curve_p = r0["config"].get("curve_p", ps[len(ps) // 2])
  curve_p = min(ps, key=lambda p: abs(p - curve_p))
  floor = r0["config"].get("loss_floor", 1e-30)
  for method in methods:
    label, color, _, ls = _style(method)
    for r in records:
      if r["method"] != method or r["p"] != curve_p or r["seed"] != seeds[0]:
        continue
      k = np.asarray(r["curve"]["iterations"], dtype=np.float64)
      f = np.array([np.nan if v is None else v for v in r["curve"]["losses"]], dtype=np.float64)
      f = np.where(f > 0, f, np.nan)  # exactly 0 (interpolated to the last bit): not drawn
      alpha = r["hyperparameters"]["learning_rate"]
      alpha = f"{alpha * r['n']:.3g}/n" if r["selection"]["grid_in_units_of_1_over_n"] else (
        f"{alpha:.3g}")
      ax.loglog(k + 1, f, color=color, ls=ls, lw=1.5, label=f"{label} (α = {alpha})")
  ax.axhline(floor, color="gray", lw=0.8, ls=":")
  ax.text(1.2, floor * 3, "float64 rounding", fontsize=8, color="gray")
  ax.set_ylim(floor / 10, 10)
  ax.set_xlabel("iteration k + 1")
  ax.set_ylabel(r"training loss $f(w_k)/f(0)$, $f = \frac{1}{2}\|Xw - y\|^2$")
  ax.set_title(f"(c) all of them interpolate (p = {curve_p:g}, dataset {seeds[0]})")
  ax.grid(True, which="major", alpha=0.3)
  ax.legend(fontsize=8, loc="lower left", framealpha=0.9)

  fig.suptitle(
    f"Wilson et al. (2017), Sec. 3.3: least squares with n = {r0['n']} points in d = {r0['dim']}, "
    f"started at w = 0 ({r0['iterations']} iterations, {r0['test_size']} test points per "
    "dataset). GD and heavy ball find the minimum-norm solution and classify every fresh point "
    "correctly;\nAdaGrad, RMSProp and Adam find sign(Xᵀy)/4, which labels every fresh point "
    "positive: test error = fraction of negatives ≈ 1 − p",
    fontsize=10,
  )
  fig.tight_layout()
  out_path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out_path, dpi=DPI)
  plt.close(fig)
  return out_path


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, "Redraw the marginal_value figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
