"""Draws the modern_optimizers figure from saved results (never runs the study).

  python paper_figures/modern_optimizers.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

One row per workload (Fashion-MNIST CNN, character-level Transformer LM). Left: the
validation loss against the step for each optimizer (mean over seeds, band min-max),
with the target (dashed). Middle: steps to that target (median over seeds; dots: each
seed; a hollow bar: not reached by the end). Right: the cost of one training step
relative to AdamW's, timed in the same run on the same model and batch. The records
come from ``experiments/modern_optimizers/run.py``; by default the most recent run is
drawn.
"""

from __future__ import annotations

import math
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

DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "modern_optimizers.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "modern_optimizers.png"
STUDY = "modern_optimizers"
WORKLOADS = ("fashion_cnn", "char_lm")
TITLES = {"fashion_cnn": "Fashion-MNIST CNN", "char_lm": "Character-level Transformer LM"}
# One colour per optimizer, the same in every panel; the recent preconditioned methods
# (Shampoo, SOAP, Muon) in strong colours, AdamW in black.
COLORS = {
  "adamw": "black", "shampoo": "tab:blue", "soap": "tab:red", "muon": "tab:green",
  "mars": "tab:orange", "cautious_adamw": "tab:purple", "adam_mini": "tab:brown",
  "optax.contrib.schedule_free_adamw": "tab:pink", "optax.lion": "tab:olive",
}
DPI = 110
BASELINE = "adamw"


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def median_steps(hits: Sequence[int | None]) -> float:
  """The median over seeds of the steps (or seconds) to target; a miss counts as inf."""
  return float(np.median([math.inf if h is None else h for h in hits]))


def summarize(records: list[dict]) -> list[dict]:
  """One row per workload and optimizer: final loss, time to target, speed-up, step cost."""
  rows = []
  for wr in (r for r in records if r.get("kind") == "workload"):
    group = [r for r in records if r.get("kind") == "optimizer" and r["workload"] == wr["workload"]]
    base = next((r for r in group if r["optimizer"] == BASELINE), None)
    base_steps = median_steps(base["steps_to_target"]) if base else math.nan
    for r in group:
      final = np.array([v[-1] for v in r["val_loss"]], np.float64)
      steps = median_steps(r["steps_to_target"])
      seconds = median_steps(r["seconds_to_target"])
      rows.append({
        "workload": r["workload"], "optimizer": r["optimizer"], "label": r["label"],
        "learning_rate": r["learning_rate"], "at_grid_edge": r["tuning"]["at_grid_edge"],
        "final_val_loss": float(np.mean(final)), "final_val_loss_std": float(np.std(final)),
        "test_loss": float(np.mean(r["test_loss"])),
        "reached": sum(h is not None for h in r["steps_to_target"]),
        "seeds": len(r["seeds"]), "median_steps": steps, "median_seconds": seconds,
        "speedup_steps": base_steps / steps if 0 < steps < math.inf else math.nan,
        "step_ms": r["step_ms"], "relative_step_cost": r["relative_step_cost"],
        "target": r["target"],
      })
  return rows


def table(records: list[dict]) -> str:
  """The printed summary of one run: per workload, one line per optimizer."""
  lines = []
  rows = summarize(records)
  for wr in (r for r in records if r.get("kind") == "workload"):
    s = wr["sizes"]
    lines.append(f"{wr['workload']}: {wr['description']}; {wr['num_params']:,} parameters; "
                 f"train/val/test {s['train']}/{s['validation']}/{s['test']}, "
                 f"{wr['total_steps']} steps of batch {wr['batch_size']}")
    lines.append(f"  target: validation loss ≤ {wr['target']:.4f} ({wr['target_rule']})")
    lines.append(f"  {'optimizer':<20}{'lr':>8}  {'final val loss':>16}  {'test':>7}  "
                 f"{'steps→target':>13}  {'×AdamW':>7}  {'s→target':>8}  {'ms/step':>8}  "
                 f"{'cost':>6}")
    for r in (r for r in rows if r["workload"] == wr["workload"]):
      edge = "*" if r["at_grid_edge"] else " "
      steps = ("—" if math.isinf(r["median_steps"]) else f"{r['median_steps']:.0f}")
      steps += f" ({r['reached']}/{r['seeds']})"
      seconds = "—" if math.isinf(r["median_seconds"]) else f"{r['median_seconds']:.2f}"
      speed = "—" if not np.isfinite(r["speedup_steps"]) else f"{r['speedup_steps']:.2f}"
      lines.append(
        f"  {r['label']:<20}{r['learning_rate']:>7.0e}{edge}  {r['final_val_loss']:>8.4f} ± "
        f"{r['final_val_loss_std']:.4f}  {r['test_loss']:>7.4f}  {steps:>13}  {speed:>7}  "
        f"{seconds:>8}  {r['step_ms']:>8.2f}  {r['relative_step_cost']:>5.2f}×")
    lines.append("")
  lines.append("final val loss: mean ± std over seeds; steps→target: median over seeds (seeds that "
               "reached it); ×AdamW: AdamW's median steps / this one's; cost: ms/step ÷ AdamW's; "
               "* rate at the edge of its grid")
  return "\n".join(lines)


def _curves(record: dict, key: str = "val_loss") -> np.ndarray:
  return np.array([[np.nan if v is None else v for v in row] for row in record[key]],
                  dtype=np.float64)


def _loss_panel(ax, group: list[dict], workload: dict) -> None:
  lows, starts = [], []
  for r in group:
    steps = np.asarray(r["steps"], np.float64)
    values = _curves(r)
    with np.errstate(all="ignore"):
      mean = np.nanmean(values, axis=0)
    color = COLORS.get(r["optimizer"], None)
    width = 2.2 if r["optimizer"] == "adamw" else 1.4
    ax.plot(steps, mean, color=color, lw=width, label=r["label"])
    ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color,
                    alpha=0.12, lw=0)
    lows.append(np.nanmin(mean))
    starts.append(mean[0])
  target = workload["target"]
  ax.axhline(target, color="0.3", ls="--", lw=1.0)
  ax.text(0.99, target, f"target {target:.3f}", transform=ax.get_yaxis_transform(), ha="right",
          va="bottom", fontsize=8, color="0.3")
  low, start = np.nanmin(lows), np.nanmax(starts)
  ax.set_ylim(low - 0.05 * (start - low), start + 0.02 * (start - low))
  ax.set_xlim(0, workload["total_steps"])
  ax.set_xlabel("step")
  ax.set_ylabel("validation loss (nats)")
  ax.grid(True, alpha=0.25)


def _bars(ax, group: list[dict], values: list[float], texts: list[str], missing: list[bool],
          cap: float, dots: list[list[float]] | None = None) -> None:
  """Horizontal bars, top to bottom in `group` order, each with its text at the right."""
  y = np.arange(len(group))[::-1]
  for yi, r, v, miss, text in zip(y, group, values, missing, texts, strict=True):
    color = COLORS.get(r["optimizer"], "0.5")
    if miss:
      ax.barh(yi, cap, color="none", edgecolor=color, hatch="//", lw=1.0)
    else:
      ax.barh(yi, v, color=color, alpha=0.75)
    ax.annotate(text, (1.0, yi), xycoords=("axes fraction", "data"), xytext=(4, 0),
                textcoords="offset points", va="center", fontsize=8)
  if dots is not None:
    for yi, d in zip(y, dots, strict=True):
      ax.plot(d, [yi] * len(d), "k.", ms=4, zorder=3)
  ax.set_yticks(y, [r["label"] for r in group])
  ax.grid(True, axis="x", alpha=0.25)


def _steps_panel(ax, group: list[dict], workload: dict) -> None:
  total = workload["total_steps"]
  medians, missing, dots = [], [], []
  for r in group:
    m = median_steps(r["steps_to_target"])
    medians.append(m)
    missing.append(math.isinf(m))
    dots.append([h for h in r["steps_to_target"] if h is not None])
  base = medians[[r["optimizer"] for r in group].index(BASELINE)]
  texts = [("not reached" if miss else f"{m:.0f}  ({base / m:.2f}×)")
           + f"\nlr {r['learning_rate']:g}" for r, m, miss in zip(group, medians, missing,
                                                                 strict=True)]
  _bars(ax, group, medians, texts, missing, total, dots)
  ax.axvline(base, color="black", lw=1.0, ls=":")
  ax.set_xlim(0, total * 1.02)
  ax.set_xlabel("steps to target: median (bar), seeds (dots), not reached (hatched);\n"
                "right: steps (AdamW's ÷ this), chosen learning rate")


def _cost_panel(ax, group: list[dict]) -> None:
  rel = [r["relative_step_cost"] for r in group]
  texts = [f"{r['relative_step_cost']:.2f}×\n{r['step_ms']:.2f} ms" for r in group]
  _bars(ax, group, rel, texts, [False] * len(group), 1.0)
  ax.axvline(1.0, color="black", lw=1.0, ls=":")
  ax.set_xscale("log")
  low, high = min(0.5, 0.8 * min(rel)), max(2.0, 1.3 * max(rel))
  ax.set_xlim(low, high)
  ticks = [t for t in (0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200) if low <= t <= high]
  ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
  ax.minorticks_off()
  ax.set_xlabel("time per training step ÷ AdamW's (log scale);\nright: ratio, ms per step")


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the figure of one run from `results_path`; returns the file written.

  Args:
    results_path: the JSONL file written by ``experiments/modern_optimizers/run.py``.
    out_path: the PNG to write.
    run_id: which run to draw; by default the last one in the file.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = load(results_path, run_id)
  workloads = {r["workload"]: r for r in records if r.get("kind") == "workload"}
  names = [w for w in WORKLOADS if w in workloads] + [w for w in workloads if w not in WORKLOADS]
  fig, axes = plt.subplots(len(names), 3, figsize=(17.5, 5.2 * len(names)), squeeze=False,
                           gridspec_kw={"width_ratios": [1.4, 1.0, 0.9]})
  for row, name in zip(axes, names, strict=True):
    w = workloads[name]
    group = [r for r in records if r.get("kind") == "optimizer" and r["workload"] == name]
    _loss_panel(row[0], group, w)
    _steps_panel(row[1], group, w)
    _cost_panel(row[2], group)
    seeds = len(group[0]["seeds"])
    row[0].set_title(f"{TITLES.get(name, name)}: validation loss, mean of {seeds} seeds "
                     "(band min-max)", fontsize=10)
    row[1].set_title(f"steps to validation loss ≤ {w['target']:.3f}", fontsize=10)
    row[2].set_title(f"per-step cost ({w['total_steps']} steps, batch {w['batch_size']})",
                     fontsize=10)
    row[0].legend(fontsize=7.5, loc="best", framealpha=0.8)
    row[0].annotate(w["description"], (0.0, -0.16), xycoords="axes fraction", fontsize=7.5,
                    color="0.35", va="top")
  r0 = records[0]
  fig.suptitle(
    f"Modern optimizers vs AdamW ({r0['mode']} mode): each tuned over its own learning-rate "
    "grid on seed 0's final validation loss; target = the loss every AdamW seed reaches; "
    "schedule-free evaluated at x", fontsize=10.5)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, "Redraw the modern_optimizers figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
