"""Draws the distillation figure from saved results (never runs the study).

  python paper_figures/distillation.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Three panels: (a) the final test accuracy of the distilled student against the
temperature T, one line per teacher (mean ± standard error over seeds), with the student
trained alone (band) and the teachers' own accuracies; (b) the paired gain over the
student alone, seed by seed, at every T; (c) one training image's soft targets from the
teacher at three temperatures (the "dark knowledge" a higher T exposes). The records come
from ``experiments/distillation/run.py``; by default the most recent run is drawn.
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

STUDY = "distillation"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
DPI = 110
LABELS = {"same_data": "teacher trained on the student's images",
          "more_data": "teacher trained on the whole training part"}
SHORT = {"same_data": "same images", "more_data": "whole training part"}
COLORS = {"same_data": "tab:blue", "more_data": "tab:red"}


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> dict:
  """The record of one run (`run_id`, or the last one)."""
  return studies.load_run(results_path, STUDY, run_id)[-1]


def soft(logits: Sequence[float], temperature: float) -> np.ndarray:
  """softmax(logits / T), in float64."""
  z = np.asarray(logits, np.float64) / temperature
  e = np.exp(z - z.max())
  return e / e.sum()


def _temperature_axis(ax, record: dict) -> None:
  from matplotlib.ticker import NullFormatter

  temps = sorted({g["temperature"] for g in record["settings"] if g["teacher"]})
  ax.set_xscale("log", base=2)
  ax.set_xticks(temps, [f"{t:g}" for t in temps])
  ax.xaxis.set_minor_formatter(NullFormatter())
  ax.set_xlabel("temperature T")


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the three panels of one run; returns the file written."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  r = load(results_path, run_id)
  final = 100 * np.asarray(r["final_test_accuracy"], np.float64)  # (setting, seed)
  seeds = final.shape[1]
  se = lambda a: a.std(axis=-1, ddof=1) / np.sqrt(seeds) if seeds > 1 else 0 * a.mean(-1)  # noqa: E731
  alone = final[0]
  fig, axes = plt.subplots(1, 3, figsize=(17, 5.0))

  ax = axes[0]
  ax.axhspan(alone.mean() - se(alone), alone.mean() + se(alone), color="gray", alpha=0.3)
  ax.axhline(alone.mean(), color="gray", lw=1.5,
             label=f"student alone (α = 0): {alone.mean():.2f}%")
  for which, s in r["summary"].items():
    rows = [i for i, g in enumerate(r["settings"]) if g["teacher"] == which]
    temps = [r["settings"][i]["temperature"] for i in rows]
    acc = final[rows]
    ax.errorbar(temps, acc.mean(axis=1), yerr=se(acc), fmt="o-", color=COLORS.get(which),
                capsize=3, label=f"distilled, {LABELS.get(which, which)} "
                f"(teacher {100 * s['teacher_accuracy']:.2f}%)")
  _temperature_axis(ax, r)
  ax.set_ylabel("student test accuracy (%)")
  ax.set_title(f"(a) final test accuracy, mean ± s.e. over {seeds} seeds\n"
               f"α = {r['config']['alpha']:g} (weight of the T²-scaled soft term)", fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7.5, loc="lower right")

  ax = axes[1]
  width = 0.08
  for k, (which, s) in enumerate(r["summary"].items()):
    rows = [i for i, g in enumerate(r["settings"]) if g["teacher"] == which]
    temps = np.asarray([r["settings"][i]["temperature"] for i in rows])
    gains = final[rows] - alone  # (T, seed)
    shift = 2 ** ((k - 0.5) * width)
    for j, t in enumerate(temps):
      ax.plot(np.full(seeds, t * shift), gains[j], ".", color=COLORS.get(which), alpha=0.4)
    ax.plot(temps * shift, gains.mean(axis=1), "s-", color=COLORS.get(which), ms=5,
            label=f"teacher on the {SHORT.get(which, which)}: best T = "
            f"{s['best_temperature']:g}, {100 * s['gain']:+.2f} ± "
            f"{100 * s['gain_standard_error']:.2f} points,\nbetter on "
            f"{s['seeds_distilled_better']}/{s['num_seeds']} seeds")
  ax.axhline(0, color="black", lw=0.8)
  _temperature_axis(ax, r)
  ax.set_ylabel("gain over the student alone (points, same seed)")
  ax.set_title("(b) paired gains, seed by seed (dots) and their mean", fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7.5, loc="upper left")

  ax = axes[2]
  ex = r["example"]
  classes = np.arange(len(ex["teacher_logits"]))
  shown = [1.0, 4.0, 16.0]
  for k, t in enumerate(shown):
    ax.bar(classes + (k - 1) * 0.27, soft(ex["teacher_logits"], t), width=0.27,
           label=f"T = {t:g}")
  ax.set_yscale("log")
  ax.set_ylim(1e-6, 1.5)
  ax.set_xticks(classes)
  ax.set_xlabel("class")
  ax.set_ylabel("teacher's soft target softmax(z / T)")
  ax.set_title(f"(c) soft targets of one training image (label {ex['label']}),\n"
               f"{LABELS.get(ex['teacher'], ex['teacher'])}", fontsize=9)
  ax.grid(alpha=0.3, axis="y")
  ax.legend(fontsize=8)

  sizes = r["sizes"]
  fig.suptitle(f"{r['dataset_description']}; test {sizes['test']}\nstudent {r['student_model']} "
               f"({r['student_params']} weights); teachers {r['teacher_model']}; "
               f"{r['optimizer']}; {r['config']['student_epochs']} student epochs "
               f"({r['config']['name']} mode)", fontsize=9.5)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
