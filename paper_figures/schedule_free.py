"""Draws the schedule_free figure from saved results (never runs the study).

  python paper_figures/schedule_free.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

One panel per workload (Fashion-MNIST MLP, character GRU language model), after
Defazio et al. (2024), "The Road Less Scheduled": the test loss against the step for
ONE schedule-free AdamW run (evaluated at its averaged iterate x) and three AdamW runs
with warmup + cosine decay to zero at T/4, T/2 and T, each drawn up to its own stop,
where a marker shows its endpoint. Lines are the mean over seeds, bands the min-max.
The records come from ``experiments/schedule_free/run.py``; by default the most recent
run is drawn.
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

DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "schedule_free.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "schedule_free.png"
STUDY = "schedule_free"
WORKLOADS = ("fashion_mlp", "char_lm")
TITLES = {"fashion_mlp": "Fashion-MNIST, MLP", "char_lm": "KJV Bible, character GRU LM"}
COSINE_COLORS = ("tab:orange", "tab:green", "tab:purple", "tab:brown")
DPI = 110


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> list[dict]:
  """The records of one run of the study: `run_id`, or the last one in the file."""
  return studies.load_run(results_path, STUDY, run_id)


def _curves(runs: list[dict], key: str = "test_loss") -> tuple[np.ndarray, np.ndarray]:
  """(steps, values (seed, point)); missing values (divergence) become NaN."""
  steps = np.asarray(runs[0]["curve"]["steps"], dtype=np.float64)
  values = np.array([[np.nan if v is None else v for v in r["curve"][key]] for r in runs],
                    dtype=np.float64)
  return steps, values


def _band(ax, runs: list[dict], color: str, label: str, **line) -> tuple[np.ndarray, np.ndarray]:
  steps, values = _curves(runs)
  mean = np.nanmean(values, axis=0)
  ax.plot(steps, mean, color=color, label=label, **line)
  ax.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=color,
                  alpha=0.2, lw=0)
  return steps, mean


def _panel(ax, records: list[dict], workload: str) -> None:
  group = [r for r in records if r["workload"] == workload]
  r0 = group[0]
  total = r0["total_steps"]
  sf = [r for r in group if r["method"] == "schedule_free"]
  steps, sf_mean = _band(ax, sf, "tab:blue", "schedule-free AdamW (one run, at x)", lw=2.0,
                         zorder=3)
  lows = [np.nanmin(sf_mean)]
  horizons = sorted({r["horizon"] for r in group if r["method"] == "cosine"})
  for color, h in zip(COSINE_COLORS, horizons, strict=False):
    runs = [r for r in group if r["method"] == "cosine" and r["horizon"] == h]
    _, c_mean = _band(ax, runs, color, "", lw=1.4)
    sf_there = sf_mean[list(steps).index(h)]
    ax.plot([h], [c_mean[-1]], "o", color=color, ms=7, zorder=4,
            label=f"AdamW cosine → 0 at T·{h / total:g} = {h}: {c_mean[-1]:.4f} "
                  f"(SF there {sf_there:.4f})")
    ax.axvline(h, color=color, lw=0.6, ls=":")
    lows.append(np.nanmin(c_mean))
  start = float(sf_mean[0])
  low = min(lows)
  ax.set_ylim(0.95 * low, min(start * 1.02, low + 4 * (np.nanmax(sf_mean[1:]) - low) + 1e-3))
  ax.set_xlim(0, total * 1.02)
  hp = r0["hyperparameters"]
  sizes = r0["sizes"]
  ax.set_title(f"{TITLES.get(workload, workload)}\nn_train={sizes['train']}, batch "
               f"{r0['batch_size']}, lr={hp['learning_rate']:g} (both), warmup "
               f"{hp['warmup_steps']} steps", fontsize=10)
  ax.set_xlabel("step")
  ax.grid(True, alpha=0.25)
  ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), frameon=False)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the figure of one run from `results_path`; returns the file written.

  Args:
    results_path: the JSONL file written by ``experiments/schedule_free/run.py``.
    out_path: the PNG to write.
    run_id: which run to draw; by default the last one in the file.
  """
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  records = load(results_path, run_id)
  workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in records)]
  workloads += [w for w in dict.fromkeys(r["workload"] for r in records) if w not in workloads]
  fig, axes = plt.subplots(1, len(workloads), figsize=(6.0 * len(workloads), 5.6),
                           squeeze=False)
  for ax, workload in zip(axes[0], workloads, strict=True):
    _panel(ax, records, workload)
  axes[0][0].set_ylabel("test loss (cross-entropy, nats)")
  r0 = records[0]
  seeds = sorted({r["seed"] for r in records})
  fig.suptitle(
    f"Schedule-free AdamW vs AdamW + cosine stopped at T/4, T/2, T ({r0['mode']} mode): mean "
    f"over {len(seeds)} seeds, band min-max\nlearning rate shared by both methods, chosen by "
    f"validation loss on seed {r0['tuning_seed']}; markers: each cosine run's endpoint",
    fontsize=10,
  )
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, "Redraw the schedule_free figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
