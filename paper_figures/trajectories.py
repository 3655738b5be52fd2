"""Draws the trajectories figure from saved results (never runs the optimizers).

  python paper_figures/trajectories.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Top row, one panel per problem (Rosenbrock, Beale): log-spaced contour lines of
f − f* over the problem's plotting bounds, the path of each first-order method in its
own colour (its learning rate, picked from a grid, in the legend; a circle at its last
point), the common start (black square), the minimizer x* (star), optlab's Newton
(brown diamonds) and L-BFGS (cyan triangles) iterates, and scipy's BFGS iterates as a
black dashed line with dots. Bottom row: f(x_k) − f* against the iteration k (log-log;
k = 0 and exact zeros not shown), with the 1e-6 target dotted; the legend gives each
second-order method's evaluations to the target too.

The records come from ``experiments/trajectories/run.py``; by default the most recent
run in the file is drawn. The contour lines are f itself, evaluated on a grid from
``optlab.problems``: the analytic function, not a result.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Sequence

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[1]
try:
  from optlab import problems, studies
except ImportError:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
  from optlab import problems, studies

DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "trajectories.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "trajectories.png"
STUDY = "trajectories"
METHODS = ("gd", "heavy_ball", "nesterov", "adagrad", "rmsprop", "adam")
SECOND_ORDER = ("newton", "lbfgs")
LABELS = {"gd": "GD", "heavy_ball": "heavy ball", "nesterov": "Nesterov", "adagrad": "AdaGrad",
          "rmsprop": "RMSProp", "adam": "Adam", "bfgs": "BFGS (scipy)",
          "newton": "Newton (α=1, backtracking)", "lbfgs": "L-BFGS (m=10, zoom search)"}
# Second-order methods and the reference: (colour, line style, marker).
STYLES = {"newton": ("tab:brown", "-", "D"), "lbfgs": ("tab:cyan", "-", "^"),
          "bfgs": ("black", "--", ".")}
COLORS = {"gd": "tab:blue", "heavy_ball": "tab:red", "nesterov": "tab:green",
          "adagrad": "tab:orange", "rmsprop": "tab:pink", "adam": "tab:purple"}
TITLES = {"rosenbrock": "Rosenbrock", "beale": "Beale"}
DPI = 110
CONTOUR_POINTS = 300  # per axis


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def _array(values) -> np.ndarray:
  """A float array with None (non-finite values in the JSONL) as NaN."""
  return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def view_box(panel: list[dict], margin: float = 0.12):
  """The plotted window: the box around every path, the start and x*, plus `margin`
  of its size on each side, clipped to the problem's `bounds`.

  Rosenbrock's paths fill its bounds; Beale's stay within ~2.5 × 1.5 of its 9 × 9
  bounds, so there the window zooms in and the contours show the valley they follow.
  """
  (x_lo, x_hi), (y_lo, y_hi) = panel[0]["bounds"]
  xs = [_array(r["path"]["x"]) for r in panel] + [np.array([panel[0]["start"][0],
                                                             panel[0]["minimizer"][0]])]
  ys = [_array(r["path"]["y"]) for r in panel] + [np.array([panel[0]["start"][1],
                                                             panel[0]["minimizer"][1]])]
  xs = np.clip(np.concatenate(xs), x_lo, x_hi)
  ys = np.clip(np.concatenate(ys), y_lo, y_hi)
  box = []
  for values, lo, hi in ((xs, x_lo, x_hi), (ys, y_lo, y_hi)):
    a, b = np.nanmin(values), np.nanmax(values)
    pad = margin * max(b - a, 1e-3 * (hi - lo))
    box.append((max(lo, a - pad), min(hi, b + pad)))
  return tuple(box)


def _contours(ax, name: str, bounds, optimal_value: float) -> None:
  """Log-spaced contour lines of f − f* over `bounds`, three per decade from 1e-3 up."""
  import jax
  import matplotlib.colors as mcolors

  (x_lo, x_hi), (y_lo, y_hi) = bounds
  xs = np.linspace(x_lo, x_hi, CONTOUR_POINTS)
  ys = np.linspace(y_lo, y_hi, CONTOUR_POINTS)
  grid_x, grid_y = np.meshgrid(xs, ys)
  with jax.enable_x64(True):
    value = jax.jit(jax.vmap(problems.get(name).value))
    points = np.stack([grid_x.ravel(), grid_y.ravel()], axis=1)
    gap = np.asarray(value(points)).reshape(grid_x.shape) - optimal_value
  gap = np.maximum(gap, 1e-12)
  low = max(np.floor(np.log10(gap.min())), -3.0)
  high = np.ceil(np.log10(gap.max()))
  levels = 10.0 ** np.arange(low, high + 0.2, 1 / 3)
  ax.contour(grid_x, grid_y, gap, levels=levels, norm=mcolors.LogNorm(levels[0], levels[-1]),
             cmap="Greys_r", linewidths=0.6, alpha=0.5)


def _label(record: dict) -> str:
  method = record["method"]
  hits = record["iterations_to_target"]
  reach = "not reached" if hits is None else f"{hits} it."
  if method == "newton" and hits is not None:
    return (f"{LABELS[method]}: {reach} ({record['hessian_evaluations_to_target']} ∇f+∇²f, "
            f"{record['value_evaluations_to_target']} f)")
  if method in ("bfgs", "lbfgs") and hits is not None:
    return f"{LABELS[method]}: {reach} ({record['gradient_evaluations_to_target']} f+∇f)"
  if method in STYLES:
    return f"{LABELS[method]}: {reach}"
  edge = " (grid edge)" if record["selection"]["at_grid_edge"] else ""
  return f"{LABELS[method]}, α={record['learning_rate']:.3g}{edge}: {reach}"


def _paths_panel(ax, panel: list[dict]) -> None:
  r0 = panel[0]
  bounds = view_box(panel)
  _contours(ax, r0["problem"], bounds, r0["optimal_value"])
  for method in METHODS:
    for r in (r for r in panel if r["method"] == method):
      x, y = _array(r["path"]["x"]), _array(r["path"]["y"])
      ax.plot(x, y, color=COLORS[method], lw=1.4, alpha=0.85, zorder=3)
      finite = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
      if finite.size:
        ax.plot(x[finite[-1]], y[finite[-1]], "o", color=COLORS[method], ms=6, mec="black",
                mew=0.6, zorder=5)
  for method, (color, style, marker) in STYLES.items():
    for r in (r for r in panel if r["method"] == method):
      short = LABELS[method].split(" (")[0]
      ax.plot(_array(r["path"]["x"]), _array(r["path"]["y"]), style, color=color, lw=1.2,
              marker=marker, ms=5 if marker == "." else 3.5, label=f"{short} iterates",
              zorder=4)
  ax.plot([], [], "o", color="white", mec="black", mew=0.6, ms=6,
          label="last iterate (method's colour)")
  start, minimizer = r0["start"], r0["minimizer"]
  ax.plot(*start, "s", color="black", ms=7, label=f"start ({start[0]:g}, {start[1]:g})",
          zorder=6)
  ax.plot(*minimizer, "*", color="gold", mec="black", ms=16, mew=0.8,
          label=f"minimizer x* = ({minimizer[0]:g}, {minimizer[1]:g})", zorder=6)
  ax.set_xlim(*bounds[0])
  ax.set_ylim(*bounds[1])
  ax.set_xlabel("x")
  ax.set_ylabel("y")
  first_order = [r["num_steps"] for r in panel if r["method"] in METHODS]
  ax.set_title(f"{TITLES.get(r0['problem'], r0['problem'])}: paths after "
               f"{max(first_order, default=0):,} steps")


def _gaps_panel(ax, panel: list[dict]) -> None:
  for r in panel:
    k = np.asarray(r["path"]["iterations"], dtype=np.float64)
    gap = _array(r["path"]["gap"])
    gap = np.where(gap > 0, gap, np.nan)
    keep = k >= 1
    if r["method"] in STYLES:
      color, style, marker = STYLES[r["method"]]
      ax.loglog(k[keep], gap[keep], style, color=color, marker=marker,
                ms=5 if marker == "." else 3.5, lw=1.2, zorder=4, label=_label(r))
    else:
      ax.loglog(k[keep], gap[keep], color=COLORS[r["method"]], lw=1.4, alpha=0.85,
                label=_label(r))
  target = panel[0]["target"]
  ax.axhline(target, color="black", lw=0.8, ls=":")
  ax.text(1.1, target, f" target {target:g}", va="bottom", fontsize=8)
  ax.set_xlabel("iteration k (log scale)")
  ax.set_ylabel(r"$f(x_k) - f^\star$")
  ax.grid(True, which="major", alpha=0.3)
  ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2,
            framealpha=0.9, title=f"learning rate α: iterations to stay < {target:g}",
            title_fontsize=8)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the figure of one run from `results_path`; returns the file written.

  Args:
    results_path: the JSONL file written by ``experiments/trajectories/run.py``.
    out_path: the PNG to write.
    run_id: which run to draw; by default the last one in the file.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = load(results_path, run_id)
  names = list(dict.fromkeys(r["problem"] for r in records))
  fig, axes = plt.subplots(2, len(names), figsize=(6.6 * len(names), 13.0), squeeze=False,
                           gridspec_kw={"height_ratios": [1.25, 1.0]})
  for column, name in enumerate(names):
    panel = [r for r in records if r["problem"] == name]
    _paths_panel(axes[0, column], panel)
    _gaps_panel(axes[1, column], panel)
    axes[0, column].legend(fontsize=8, loc="best", framealpha=0.9)
  r0 = records[0]
  fig.suptitle(
    f"Optimizer paths from the standard starts ({r0['dtype']}) over contours of f − f* (three "
    "per decade); each first-order method's learning rate is the best of one log-spaced grid\n"
    f"(lowest final f − f*); legend: iterations after which f − f* stays below "
    f"{r0['target']:g}; Newton and L-BFGS: optlab's registry defaults; BFGS (scipy, black, "
    "dashed) is the reference",
    fontsize=10,
  )
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, "Redraw the trajectories figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
