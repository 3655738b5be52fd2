"""Draws the multitask figure from saved results (never runs the study).

  python paper_figures/multitask.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Six panels: (a) the final test accuracy of each task per method (bars: mean over seeds,
error bars: standard deviation, dots: seeds); (b, c) the test accuracy of the digit and
coarse tasks over training, mean ± std over seeds; (d) the training losses; (e) the
effective task weights ∂objective/∂L_i of uncertainty weighting and GradNorm; (f) the
cosine similarity of the two tasks' gradients and the fraction of steps in which they
conflict (cos < 0, what PCGrad projects away). The records come from
``experiments/multitask/run.py``; by default the most recent run is drawn.
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

STUDY = "multitask"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
DPI = 110
COLORS = {"single_digit": "black", "single_coarse": "black", "fixed": "tab:blue",
          "uncertainty": "tab:orange", "gradnorm": "tab:green", "pcgrad": "tab:red"}


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> dict:
  """The record of one run (`run_id`, or the last one)."""
  return studies.load_run(results_path, STUDY, run_id)[-1]


def _array(values) -> np.ndarray:
  """Nested lists with None (non-finite) as a float array with NaN."""
  def convert(v):
    return [convert(u) for u in v] if isinstance(v, list) else (np.nan if v is None else v)
  return np.array(convert(values), dtype=np.float64)


def _band(ax, epochs, values, color, label, style="-"):
  mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
  ax.plot(epochs, mean, style, color=color, lw=1.5, label=label)
  ax.fill_between(epochs, mean - std, mean + std, color=color, alpha=0.15)


def draw(
  results_path: str | pathlib.Path = DEFAULT_RESULTS,
  out_path: str | pathlib.Path = DEFAULT_FIGURE,
  *,
  run_id: str | None = None,
) -> pathlib.Path:
  """Draws the six panels of one run; returns the file written."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  r = load(results_path, run_id)
  tasks = r["tasks"]
  methods = r["methods"]
  multi = [m for m in methods if not m.startswith("single_")]
  fig, axes = plt.subplots(2, 3, figsize=(17, 9.5))
  epochs = np.arange(1, r["epochs"] + 1)
  s = r["summary"]

  ax = axes[0, 0]
  width = 0.8 / (1 + len(multi))
  for k, task in enumerate(tasks):
    names = [f"single_{task}", *multi]
    for j, name in enumerate(names):
      acc = 100 * np.asarray(r["final_test_accuracy"][name][task], np.float64)
      pos = k + (j - len(multi) / 2) * width
      ax.bar(pos, acc.mean(), width * 0.9, yerr=acc.std(), capsize=3, color=COLORS[name],
             alpha=0.75)
      ax.plot(np.full(acc.shape, pos), acc, "k.", ms=4)
  from matplotlib.patches import Patch

  handles = [Patch(color=COLORS[name], alpha=0.75, label=methods[name]["label"])
             for name in ["single_digit", *multi]]
  ax.set_xticks(range(len(tasks)),
                [f"{t}\n(multi − single: " + ", ".join(
                    f"{100 * v['difference']:+.1f}" for v in s["tasks"][t]["methods"].values())
                 + ")" for t in tasks], fontsize=8)
  low = min(100 * min(min(v) for v in d.values()) for d in r["final_test_accuracy"].values())
  ax.set_ylim(max(0.0, low - 4), 100)
  ax.set_ylabel("final test accuracy (%)")
  ax.set_title(f"(a) final test accuracy, mean ± std over {len(r['seeds'])} seeds\n"
               f"multi-task matches or beats single-task: "
               f"{s['multi_task_matches_or_beats_single']}; methods differ little: "
               f"{s['methods_differ_little']}", fontsize=9)
  ax.legend(handles=handles, fontsize=7.5, loc="lower right")
  ax.grid(alpha=0.3, axis="y")

  for k, task in enumerate(tasks):
    ax = axes[0, 1 + k]
    for name in [f"single_{task}", *multi]:
      i = tasks.index(task)
      values = 100 * _array(methods[name]["curves"]["test_accuracy"])[:, :, i]
      _band(ax, epochs, values, COLORS[name], methods[name]["label"])
    final = [100 * s["tasks"][task]["single"]] + [
        100 * s["tasks"][task]["methods"][m]["mean"] for m in multi]
    ax.set_ylim(min(final) - 6, min(100.0, max(final) + 2))
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    e = s["tasks"][task]
    ax.set_title(f"({'bc'[k]}) {task} task: test accuracy during training\nspread across "
                 f"multi-task methods {100 * e['spread']:.2f} points (noise "
                 f"{100 * e['spread_noise']:.2f})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="lower right")

  ax = axes[1, 0]
  for name in ["single_digit", "single_coarse", "fixed", "uncertainty", "gradnorm"]:
    loss = _array(methods[name]["curves"]["train_loss"])
    for task in methods[name]["tasks"]:
      i = tasks.index(task)
      _band(ax, epochs, loss[:, :, i], COLORS[name], f"{methods[name]['label']}: {task}",
            "-" if task == "digit" else "--")
  ax.set_yscale("log")
  ax.set_xlabel("epoch")
  ax.set_ylabel("training cross-entropy (epoch mean)")
  ax.set_title("(d) training loss per task (solid: digit, dashed: coarse)", fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7, ncol=2)

  ax = axes[1, 1]
  for name in ("uncertainty", "gradnorm"):
    weights = _array(methods[name]["curves"]["weights"])
    for i, task in enumerate(tasks):
      _band(ax, epochs, weights[:, :, i], COLORS[name], f"{methods[name]['label']}: {task}",
            "-" if task == "digit" else "--")
  ax.axhline(1.0, color=COLORS["fixed"], lw=1, label="sum (fixed): 1, 1")
  ax.set_xlabel("epoch")
  ax.set_ylabel("effective weight w_i = ∂objective/∂L_i")
  ax.set_title(f"(e) task weights (solid: digit, dashed: coarse)\nuncertainty: "
               f"{r['config']['uncertainty_convention']} form; GradNorm α = "
               f"{r['config']['gradnorm_alpha']:g} (weights sum to 2)", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7.5)

  ax = axes[1, 2]
  for name in multi:
    _band(ax, epochs, _array(methods[name]["curves"]["cosine"]), COLORS[name],
          f"{methods[name]['label']}: cosine")
  ax.axhline(0.0, color="gray", lw=0.8)
  ax.set_xlabel("epoch")
  ax.set_ylabel("cos(∇L_digit, ∇L_coarse), epoch mean")
  twin = ax.twinx()
  conflict = 100 * _array(methods["pcgrad"]["curves"]["conflict_fraction"])
  twin.plot(epochs, np.nanmean(conflict, axis=0), ":", color=COLORS["pcgrad"], lw=1.5)
  twin.set_ylabel("steps with conflicting gradients, PCGrad run (%, dotted)")
  twin.set_ylim(0, 100)
  ax.set_title("(f) do the tasks' gradients conflict?\n(all parameters; the heads' parts "
               "are orthogonal, so this is the trunk's agreement)", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7.5, loc="upper left")

  sizes = r["sizes"]
  fig.suptitle(f"{r['dataset_description']}; train/test {sizes['train']}/{sizes['test']}\n"
               f"{r['model']}; {r['optimizer']}, batch {r['batch_size']}, {r['epochs']} "
               f"epochs ({r['config']['name']} mode)", fontsize=9.5)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
