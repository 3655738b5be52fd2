"""Draws the transfer_learning figure from saved results (never runs the study).

  python paper_figures/transfer_learning.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Two panels: (a) target test accuracy against the number of target training examples
(log x) for the linear probe, full fine-tuning, per-layer learning rates and training from
scratch, mean ± std over seeds; (b) each transfer strategy's gain over scratch, in
accuracy points, with one binomial standard error of the test set shaded. The records
come from ``experiments/transfer_learning/run.py``; by default the most recent run is drawn.
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

STUDY = "transfer_learning"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
DPI = 110
STYLE = {  # strategy: (label, color, marker)
  "linear_probe": ("linear probe (backbone frozen)", "tab:blue", "o"),
  "fine_tune": ("full fine-tuning", "tab:orange", "s"),
  "per_layer_lr": ("per-layer learning rates", "tab:green", "^"),
  "scratch": ("from scratch", "tab:gray", "x"),
}


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> dict:
  """The record of one run (`run_id`, or the last one)."""
  return studies.load_run(results_path, STUDY, run_id)[-1]


def draw(results_path: str | pathlib.Path, out_path: str | pathlib.Path = DEFAULT_FIGURE, *,
         run_id: str | None = None) -> pathlib.Path:
  """Draws the figure of one run into `out_path` and returns the path."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  r = load(results_path, run_id)
  cfg = r["config"]
  classes = r["num_target_classes"]
  examples = classes * np.asarray(r["sizes_per_class"], np.float64)
  fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))

  ax = axes[0]
  for k, (label, color, marker) in STYLE.items():
    acc = 100 * np.asarray(r["accuracy"][k], np.float64)  # (size, seed)
    mean, std = acc.mean(axis=1), acc.std(axis=1)
    ax.plot(examples, mean, marker=marker, color=color, label=label)
    ax.fill_between(examples, mean - std, mean + std, color=color, alpha=0.15)
  ax.set_xscale("log")
  ax.set_xticks(examples, [f"{int(e)}\n({int(e) // classes}/cl.)" for e in examples],
                fontsize=7.5)
  ax.minorticks_off()
  ax.set_xlabel("target training examples (per class)")
  ax.set_ylabel("target test accuracy (%)")
  s = r["summary"]
  ax.set_title(f"(a) mean ± std over {len(r['seeds'])} seeds; best at "
               f"{r['sizes_per_class'][0]}/class: {STYLE[s['best_strategy'][0]][0]}, at "
               f"{r['sizes_per_class'][-1]}/class: {STYLE[s['best_strategy'][-1]][0]}",
               fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8, loc="lower right")

  ax = axes[1]
  scratch = 100 * np.asarray(r["accuracy"]["scratch"], np.float64).mean(axis=1)
  for k in ("linear_probe", "fine_tune", "per_layer_lr"):
    label, color, marker = STYLE[k]
    gain = 100 * np.asarray(r["accuracy"][k], np.float64).mean(axis=1) - scratch
    ax.plot(examples, gain, marker=marker, color=color, label=label)
  p = np.mean(r["accuracy"]["scratch"][-1])
  se = 100 * math.sqrt(max(p * (1 - p), 1e-12) / r["test_size"])
  ax.axhspan(-se, se, color="tab:gray", alpha=0.2,
             label=f"± 1 binomial s.e. at {100 * p:.0f}% ({r['test_size']} test images)")
  ax.axhline(0.0, color="black", lw=0.8)
  ax.set_xscale("log")
  ax.set_xticks(examples, [str(int(e)) for e in examples], fontsize=7.5)
  ax.minorticks_off()
  ax.set_xlabel("target training examples")
  ax.set_ylabel("accuracy − scratch accuracy (points)")
  ax.set_title(f"(b) gain of transfer over scratch (means); transfer beats scratch at "
               f"{r['sizes_per_class'][0]}/class: {s['transfer_beats_scratch_smallest']}\n"
               f"fine-tuning catches up with the probe: {s['fine_tuning_catches_up']}, "
               f"overtakes it: {s['fine_tuning_overtakes']}", fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=8, loc="lower right")

  fig.suptitle(
      f"{r['dataset_description']}\n{r['model']}, pretrained {cfg['pretrain_steps']} steps "
      f"(held-out source accuracy {100 * np.mean(r['source_val_accuracy']):.1f}%)\ntarget: Adam,"
      f" {cfg['target_steps']} steps of batch {cfg['batch_size']}; lr probe "
      f"{cfg['probe_learning_rate']:g}, fine-tune {cfg['finetune_learning_rate']:g}, per-layer "
      f"head {cfg['head_learning_rate']:g} / backbone {cfg['backbone_learning_rate']:g}, "
      f"scratch {cfg['scratch_learning_rate']:g} ({cfg['name']} mode)", fontsize=8.5)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
