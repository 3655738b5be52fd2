"""Draws the pruning figure from saved results (never runs the study).

  python paper_figures/pruning.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Two panels: (a) test accuracy against the fraction of kernel weights kept, for one-shot
pruning with brief fine-tuning, gradual (Zhu & Gupta) pruning and lottery-ticket
rewinding, mean ± std over seeds (seeds as dots), with the dense model's accuracy and
the tolerance band; (b) the sparsity each arm imposes over training steps, the cubic
schedule drawn from the recorded schedule parameters. The records come from
``experiments/pruning/run.py``; by default the most recent run is drawn.
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

STUDY = "pruning"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
DPI = 110
STYLE = {"one_shot": ("tab:red", "o", "one-shot + brief fine-tuning"),
         "iterative": ("tab:blue", "s", "gradual (Zhu & Gupta schedule)"),
         "rewind": ("tab:green", "^", "one-shot masks, rewound weights, retrained")}


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> dict:
  """The record of one run (`run_id`, or the last one)."""
  return studies.load_run(results_path, STUDY, run_id)[-1]


def schedule(total_steps: int, s_f: float, begin: int, end: int, frequency: int,
             power: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
  """Zhu & Gupta's s_t at every step (held between pruning steps; 0 before `begin`)."""
  t = np.arange(total_steps + 1)
  last = np.where(t >= end, end, begin + (t - begin) // frequency * frequency)
  progress = np.clip((last - begin) / max(end - begin, 1), 0.0, 1.0)
  s = np.where(t >= end, s_f, s_f * (1.0 - (1.0 - progress) ** power))
  return t, np.where(t < begin, 0.0, s)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the two panels of one run; returns the file written."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  r = load(results_path, run_id)
  s, cfg = r["summary"], r["config"]
  levels = np.asarray(s["sparsities"], np.float64)
  fig, axes = plt.subplots(1, 2, figsize=(13, 5.0))

  ax = axes[0]
  kept = 100 * (1 - levels)
  dense = 100 * s["dense_accuracy"]
  ax.axhline(dense, color="black", lw=1.2, label=f"dense: {dense:.2f}%")
  ax.axhspan(dense - 100 * s["tolerance"], dense, color="gray", alpha=0.15,
             label=f"within {100 * s['tolerance']:g} point of dense")
  for arm, mean in s["mean"].items():
    color, marker, label = STYLE[arm]
    held = s["held"][arm]
    ax.errorbar(kept, 100 * np.asarray(mean), yerr=100 * np.asarray(s["std"][arm]),
                fmt=marker + "-", color=color, capsize=3, ms=6,
                label=f"{label}: holds to {100 * held:g}%" if held else f"{label}")
    pts = [(100 * (1 - x["sparsity"]), 100 * x["test_accuracy"]) for x in r["runs"]
           if x["arm"] == arm]
    ax.plot(*zip(*pts, strict=True), marker, color=color, alpha=0.3, ms=4)
  ax.set_xscale("log")
  ax.invert_xaxis()
  ax.set_xticks(kept)
  ax.set_xticklabels([f"{k:g}%\n({100 * lv:g}%)" for k, lv in zip(kept, levels, strict=True)],
                     fontsize=8)
  ax.set_xlabel("kernel weights kept (sparsity)")
  ax.set_ylabel("test accuracy (%)")
  ax.set_ylim(max(0.0, min(ax.get_ylim()[0], dense - 20)), 100)
  ax.set_title(f"(a) accuracy against sparsity ({cfg['scope']} magnitude pruning), mean ± std "
               f"over {len(r['seeds'])} seeds\niterative − one-shot at "
               f"{100 * levels[-2]:g}%: {100 * s['iterative_minus_one_shot'][-2]:+.1f} points; "
               f"claim reproduced: {s['reproduced']}", fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7.5, loc="lower left")

  ax = axes[1]
  sched, spe = r["schedule"], r["steps_per_epoch"]
  total = sched["total_steps"]
  cmap = plt.get_cmap("Blues")
  for i, s_f in enumerate(levels):
    t, st = schedule(total, s_f, sched["begin_step"], sched["end_step"], sched["frequency"],
                     sched["power"])
    ax.plot(t, 100 * st, color=cmap(0.4 + 0.6 * i / max(len(levels) - 1, 1)), lw=1.4,
            label=f"gradual to {100 * s_f:g}%" if i in (0, len(levels) - 1) else None)
    ax.plot([cfg["train_epochs"] * spe, total], [100 * s_f] * 2, color="tab:red", lw=1,
            alpha=0.5, ls="--", label="one-shot (then fine-tuning)" if i == 0 else None)
  ax.axvline(cfg["train_epochs"] * spe, color="tab:red", ls=":", lw=1)
  ax.set_xlabel(f"training step ({spe} per epoch; same total budget for both)")
  ax.set_ylabel("sparsity (%)")
  ax.set_title("(b) sparsity during training: s_t = s_f (1 − (t − t₀)/(nΔt))³ "
               f"(t₀ = {sched['begin_step']}, nΔt = {sched['end_step'] - sched['begin_step']},"
               f" Δt = {sched['frequency']})", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7.5, loc="upper left")

  fig.suptitle(f"{r['dataset_description']}; train/test {r['sizes']['train']}/"
               f"{r['sizes']['test']}; {r['model']}; {r['optimizer']}; batch "
               f"{cfg['batch_size']} ({cfg['name']} mode)", fontsize=9.5)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
