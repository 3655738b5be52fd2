"""Draws the edge_of_stability figure from saved results (never runs the study).

  python paper_figures/edge_of_stability.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Cohen et al. (2021), Figure 1, plus two close-ups. Left column, one colour per step
size η (the first seed): (a) the training loss of full-batch GD against the step;
(b) the sharpness (top Hessian eigenvalue, Lanczos) against the step, with 2/η as a
dashed line of the same colour and a dot where it is first reached. Right column:
(c) the loss over a window after the largest η crossed 2/η, where it rises on some
steps and falls overall; (d) every run's sharpness divided by 2/η against the steps
since its crossing, with the ±band the summary counts as "at 2/η". The records come
from ``experiments/edge_of_stability/run.py``; by default the most recent run is drawn.
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

STUDY = "edge_of_stability"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
DPI = 110
# Steps shown in the close-up (c).
WINDOW = 200


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> dict:
  """The record of one run (`run_id`, or the last one)."""
  (record,) = studies.load_run(results_path, STUDY, run_id)[-1:]
  return record


def _array(values) -> np.ndarray:
  return np.array([np.nan if v is None else v for v in values], np.float64)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the four panels of one run; returns the file written."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  r = load(results_path, run_id)
  s = r["summary"]
  band = s["band"]
  first_seed = r["seeds"][0]
  runs = [run for run in r["runs"] if run["seed"] == first_seed]
  sharp_steps = np.asarray(r["sharpness_steps"])
  cmap = plt.get_cmap("viridis")
  colors = {run["eta"]: cmap(0.85 * i / max(1, len(runs) - 1)) for i, run in enumerate(runs)}
  fig, axes = plt.subplots(2, 2, figsize=(14, 8.5), gridspec_kw={"width_ratios": [1.6, 1]})

  ax_loss, ax_sharp = axes[0, 0], axes[1, 0]
  for run in runs:
    color, loss = colors[run["eta"]], _array(run["loss"])
    ax_loss.plot(np.arange(len(loss)), loss, color=color, lw=1.1, label=f"η = {run['eta']:g}")
    ax_sharp.plot(sharp_steps, _array(run["sharpness"]), color=color, lw=1.3,
                  label=f"η = {run['eta']:g}")
    ax_sharp.axhline(run["threshold"], color=color, ls="--", lw=1.1)
    if run["reached"]:
      first = run["first_step"]
      ax_loss.plot(first, loss[first], "o", color=color, ms=6, mec="black", mew=0.6)
      ax_sharp.plot(first, run["sharpness"][int(np.searchsorted(sharp_steps, first))], "o",
                    color=color, ms=6, mec="black", mew=0.6)
  ax_loss.set_yscale("log")
  ax_loss.set_ylabel("training loss (MSE)")
  ax_loss.set_title("(a) training loss of full-batch GD (dot: sharpness first reaches 2/η)",
                    fontsize=10)
  ax_loss.legend(fontsize=8.5)
  ax_sharp.plot([], [], "k--", lw=1.1, label="2/η")
  ax_sharp.set_ylabel("sharpness λ_max(∇²L)")
  ax_sharp.set_title(f"(b) sharpness rises to 2/η and hovers there: within ±{100 * band:.0f}% "
                     f"at {100 * s.get('mean_fraction_within_band', float('nan')):.0f}% of the "
                     f"measurements after the crossing (mean {s.get('mean_ratio_after', 0):.3f}"
                     " × 2/η)", fontsize=10)
  ax_sharp.legend(fontsize=8.5, loc="lower right", ncol=2)
  ax_sharp.set_ylim(0, 1.25 * max(run["threshold"] for run in runs if run["reached"])
                    if any(run["reached"] for run in runs) else None)
  for ax in (ax_loss, ax_sharp):
    ax.set_xlabel("step")
    ax.grid(alpha=0.3, which="both")

  ax = axes[0, 1]
  reached = [run for run in runs if run["reached"]]
  if reached:
    run = max(reached, key=lambda q: q["eta"])
    loss = _array(run["loss"])
    start = min(run["first_step"] + 100, max(0, len(loss) - 1 - WINDOW))
    steps = np.arange(start, min(len(loss), start + WINDOW + 1))
    window = loss[steps]
    up = np.diff(window) > 0
    ax.plot(steps, window, color=colors[run["eta"]], lw=1.2)
    ax.plot(steps[1:][up], window[1:][up], "^", color="tab:red", ms=3.5,
            label=f"L(θ_t+1) > L(θ_t): {int(up.sum())} of {len(up)} steps here")
    before = run["loss_increases_before"]
    ax.set_title(f"(c) η = {run['eta']:g} after the crossing: the loss rises on "
                 f"{run['loss_increases_after']} of {run['steps_after']} steps\n"
                 f"({'none' if before == 0 else before} before), yet falls: "
                 f"{run['loss_at_first']:.3f} at the crossing → {run['tail_mean_loss']:.3f} "
                 "(last 10%)", fontsize=10)
    ax.legend(fontsize=8.5)
  ax.set_xlabel("step")
  ax.set_ylabel("training loss (MSE)")
  ax.grid(alpha=0.3)

  ax = axes[1, 1]
  for run in reached:
    since = sharp_steps[sharp_steps >= run["first_step"]] - run["first_step"]
    ratio = _array(run["sharpness"])[sharp_steps >= run["first_step"]] / run["threshold"]
    ax.plot(since, ratio, color=colors[run["eta"]], lw=1.2,
            label=f"η = {run['eta']:g}: {100 * run['fraction_within_band']:.0f}% within")
  ax.axhspan(1 - band, 1 + band, color="0.85", zorder=0, label=f"±{100 * band:.0f}% of 2/η")
  ax.axhline(1.0, color="black", ls="--", lw=1)
  ax.set_ylim(1 - 3 * band, 1 + 3 * band)
  ax.set_xlabel("steps since the sharpness first reached 2/η")
  ax.set_ylabel("sharpness / (2/η)")
  late = ", ".join(f"{run['late_mean_ratio']:.3f}" for run in reached
                   if run.get("late_mean_ratio") is not None)
  ax.set_title("(d) sharpness / (2/η) after the crossing"
               + (f"\nmean over the last quarter of the steps: {late}" if late else ""),
               fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8.5, loc="lower right")

  cfg = r["config"]
  fig.suptitle(f"Edge of stability (Cohen et al. 2021, Fig. 1): {r['dataset_description']}\n"
               f"{r['model']}; {r['loss_name']}\n{r['optimizer']}, {cfg['steps']} steps; "
               f"sharpness every {cfg['sharpness_every']} steps ({cfg['lanczos_iterations']} "
               f"Lanczos steps); seed {first_seed} ({cfg['name']} mode)", fontsize=10)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
