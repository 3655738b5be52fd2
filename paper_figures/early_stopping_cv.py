"""Draws the early_stopping_cv figure from saved results (never runs the study).

  python paper_figures/early_stopping_cv.py [RESULTS.jsonl] [--out PNG] [--run-id ID]

Three panels: (a) the training and validation loss of the full-budget runs, one line
per seed, with where early stopping stopped (dotted) and the best epoch it restored
(star); (a) the test accuracy over the same runs, with the early-stopped and the
final-epoch models' test accuracies; (b) the k-fold validation curve of the weight
decay λ (folds faint, mean ± std across folds, as ``optlab.tune.cv.
plot_validation_curve`` draws it), CV's choice, and the test accuracy of every λ
retrained on the whole training set. The records come from
``experiments/early_stopping_cv/run.py``; by default the most recent run is drawn.
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

STUDY = "early_stopping_cv"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
DPI = 110


def load(results_path: str | pathlib.Path, run_id: str | None = None) -> dict[str, dict]:
  """The records of one run (`run_id`, or the last one), by part."""
  records = studies.load_run(results_path, STUDY, run_id)
  parts = {r["part"]: r for r in records}
  missing = {"early_stopping", "cross_validation"} - set(parts)
  if missing:
    raise ValueError(f"{results_path}: run {records[0]['run_id']} lacks parts {sorted(missing)}")
  return parts


def _array(values) -> np.ndarray:
  """Nested lists with None (non-finite) as a float array with NaN."""
  def convert(v):
    return [convert(u) for u in v] if isinstance(v, list) else (np.nan if v is None else v)
  return np.array(convert(values), dtype=np.float64)


def selection_from_record(record: dict):
  """The ``optlab.tune.cv.SelectionResult`` of a cross_validation record (for
  ``plot_validation_curve`` and friends)."""
  from optlab.tune.cv import SelectionResult

  return SelectionResult(configs=record["configs"], metric=record["metric"],
                         per_fold=_array(record["per_fold"]), maximize=record["maximize"],
                         best_config=record["best_config"], best_score=record["best_score"])


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

  parts = load(results_path, run_id)
  a, b = parts["early_stopping"], parts["cross_validation"]
  fig, axes = plt.subplots(1, 3, figsize=(17, 5.0))
  full = {k: _array(v) for k, v in a["full_budget"].items()}
  epochs = np.arange(1, full["val_loss"].shape[1] + 1)
  colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
  s = a["summary"]

  ax = axes[0]
  for i, run in enumerate(a["early_stopped"]):
    color = colors[i % len(colors)]
    ax.plot(epochs, full["train_loss"][i], "--", color=color, lw=1, alpha=0.7)
    ax.plot(epochs, full["val_loss"][i], "-", color=color, lw=1.4, label=f"seed {run['seed']}")
    best = run["best_epoch"]
    ax.plot(best + 1, full["val_loss"][i][best], "*", color=color, ms=13, mec="black", mew=0.6)
    if run["stopped"]:
      ax.axvline(run["stop_epoch"] + 1, color=color, ls=":", lw=1.2)
  ax.plot([], [], "k--", lw=1, label="training loss (noisy labels)")
  ax.plot([], [], "k-", lw=1.4, label="validation loss (clean)")
  ax.plot([], [], "k*", ms=10, label="best epoch (restored)")
  ax.plot([], [], "k:", label="early stopping stops")
  ax.set_yscale("log")
  ax.set_xlabel("epoch")
  ax.set_ylabel("cross-entropy")
  ax.set_title(f"(a) λ = {a['weight_decay']:g}: EarlyStopping(val_loss, patience "
               f"{a['patience']}, restore_best)\nstops after {s['mean_epochs_run']:.1f} of "
               f"{a['epochs']} epochs ({100 * s['epoch_fraction']:.0f}%), best epoch "
               f"{s['mean_best_epoch'] + 1:.1f} (means over seeds)", fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7.5, ncol=2)

  ax = axes[1]
  for i, run in enumerate(a["early_stopped"]):
    color = colors[i % len(colors)]
    ax.plot(epochs, 100 * full["test_accuracy"][i], "-", color=color, lw=1.2, alpha=0.8)
    ax.plot(run["best_epoch"] + 1, 100 * run["test_accuracy"], "*", color=color, ms=13,
            mec="black", mew=0.6)
    ax.plot(epochs[-1], 100 * full["test_accuracy"][i][-1], "o", color=color, ms=7, mec="black",
            mew=0.6)
  ax.plot([], [], "k*", ms=10, label="early-stopped model: "
          f"{100 * s['early_stopped_test_accuracy']:.2f}%, loss {s['early_stopped_test_loss']:.3f}")
  ax.plot([], [], "ko", ms=6, label=f"final-epoch model: {100 * s['final_test_accuracy']:.2f}%, "
          f"loss {s['final_test_loss']:.3f}")
  ax.set_xlabel("epoch")
  ax.set_ylabel("test accuracy (%)")
  top = np.nanmax(100 * full["test_accuracy"])
  ax.set_ylim(max(0.0, top - 25), min(100.0, top + 3))
  ax.set_title(f"(a) test accuracy of the same runs (means over {s['num_seeds']} seeds)\n"
               f"early stopping at least as good on {s['seeds_accuracy_at_least_as_good']}/"
               f"{s['num_seeds']} seeds (accuracy), {s['seeds_loss_at_least_as_good']}/"
               f"{s['num_seeds']} (loss)", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7.5, loc="lower right")

  ax = axes[2]
  lams = np.asarray(b["weight_decays"], np.float64)
  folds = 100 * _array(b["per_fold"])  # (λ, fold)
  mean, std = folds.mean(axis=1), folds.std(axis=1)
  for f in range(folds.shape[1]):
    ax.plot(lams, folds[:, f], color="tab:blue", alpha=0.25, lw=0.8,
            label="CV folds" if f == 0 else None)
  ax.plot(lams, mean, "o-", color="tab:blue", label=f"CV mean ± std ({b['k']} folds; noisy labels)")
  ax.fill_between(lams, mean - std, mean + std, color="tab:blue", alpha=0.2)
  test = 100 * _array(b["retrained_test_accuracy"])  # (λ, seed)
  ax.errorbar(lams, np.nanmean(test, axis=1), yerr=np.nanstd(test, axis=1), fmt="s-",
              color="tab:red", ms=5, capsize=3,
              label=f"retrained on all {b['sizes']['train']}: test accuracy (clean)")
  c = b["summary"]
  ax.axvline(c["chosen_weight_decay"], color="tab:blue", ls="--", lw=1.2,
             label=f"CV's choice λ = {c['chosen_weight_decay']:g}")
  ax.plot(c["test_best_weight_decay"], 100 * c["test_best_accuracy"], "*", color="tab:red",
          ms=15, mec="black", mew=0.6, label=f"test-best λ = {c['test_best_weight_decay']:g}")
  ax.set_xscale("log")
  ax.set_xlabel("weight decay λ (AdamW, per step)")
  ax.set_ylabel("accuracy (%)")
  ax.set_title(f"(b) {b['k']}-fold CV selection of λ: CV's choice is "
               f"{100 * c['gap']:.2f} points below the test-best\n(rank {c['chosen_test_rank']}"
               f" of {len(lams)}; noise {100 * c['noise']:.2f} points: "
               f"{'within' if c['within_noise'] else 'outside'} 2 s.e.)", fontsize=9)
  ax.grid(alpha=0.3, which="both")
  ax.legend(fontsize=7.5, loc="lower left")

  sizes = a["sizes"]
  fig.suptitle(f"{a['dataset_description']}; train/val/test {sizes['train']}/"
               f"{sizes['validation']}/{sizes['test']}\n{a['model']}; {a['optimizer']}; batch "
               f"{a['batch_size']}, {a['epochs']} epochs ({a['config']['name']} mode)",
               fontsize=9.5)
  return studies.save_figure(fig, out_path, DPI)


def main(argv: Sequence[str] | None = None) -> int:
  return studies.redraw_main(
      draw, f"Redraw the {STUDY} figure.", DEFAULT_RESULTS, DEFAULT_FIGURE, argv
  )


if __name__ == "__main__":
  sys.exit(main())
