"""early_stopping_cv: early stopping and k-fold cross-validation in practice.

(a) Early stopping (Morgan & Bourlard 1990; Prechelt 1998): a wide MLP on a small,
label-noisy training set of sklearn digits overfits; ``optlab.train.fit`` with
``EarlyStopping(monitor="val_loss", patience, restore_best=True)`` stops it and keeps
the best epoch's weights. Claim: the early-stopped model's test loss and accuracy are
at least as good as the final-epoch model's, at a fraction of the epochs. The runs
without early stopping (the full budget, test evaluated every epoch) come from one
vectorized ``optlab.tune.sweep.sweep`` that gives the numbers ``fit`` gives.

(b) k-fold cross-validation (Stone 1974; Kohavi 1995): ``optlab.tune.cv.select``
scores every AdamW weight decay λ of a grid by stratified k-fold validation accuracy
on the training set; the same sweep as in (a) retrains every λ on the whole training
set and reports its test accuracy. Claim: the λ chosen by cross-validation lands
within noise of the test-best λ.

Usage:
  python experiments/early_stopping_cv/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure]
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from flax import nnx

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, models, optim, results  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.train import EarlyStopping, fit  # noqa: E402
from optlab.tune.cv import make_folds, select  # noqa: E402
from optlab.tune.sweep import sweep  # noqa: E402

STUDY = "early_stopping_cv"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
CURVES = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")

config = load_module("optlab_early_stopping_cv_config", HERE / "config.py")


class Workload(NamedTuple):
  """The arrays of the study and what they are."""

  description: str
  num_classes: int
  train: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray]
  test: tuple[np.ndarray, np.ndarray]
  noisy: np.ndarray  # which training labels were flipped

  @property
  def dim(self) -> int:
    return int(self.train[0].shape[1])

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train[1]), "validation": len(self.validation[1]),
            "test": len(self.test[1])}


def flip_labels(y: np.ndarray, fraction: float, num_classes: int, seed: int):
  """(labels, flipped mask): `fraction` of `y` replaced by a different class, uniformly."""
  if not 0.0 <= fraction < 1.0:
    raise ValueError(f"flip_labels: fraction must be in [0, 1), got {fraction}")
  rng = np.random.default_rng(seed)
  flipped = rng.permutation(len(y)) < round(fraction * len(y))
  noisy = np.array(y, np.int32, copy=True)
  noisy[flipped] = (noisy[flipped] + rng.integers(1, num_classes, flipped.sum())) % num_classes
  return noisy, flipped


def load_workload(cfg) -> Workload:
  """Digits: clean validation and test sets, a small stratified training subset with noisy
  labels, standardized with the training statistics."""
  splits = data.train_val_test_split(data.digits(flatten=True), cfg.val_fraction,
                                     cfg.test_fraction, cfg.data_seed)
  x, y = np.asarray(splits.train.x, np.float32), np.asarray(splits.train.y, np.int32)
  if cfg.train_size < len(y):
    keep = data.train_val_test_split((x, y), 0.0, 1.0 - cfg.train_size / len(y),
                                     cfg.data_seed).train
    x, y = np.asarray(keep.x, np.float32), np.asarray(keep.y, np.int32)
  num_classes = int(y.max()) + 1
  y, flipped = flip_labels(y, cfg.label_noise, num_classes, cfg.data_seed)
  scaler = data.Standardizer.fit(x)
  prep = lambda ds: (np.asarray(scaler.apply(np.asarray(ds.x, np.float32)), np.float32),  # noqa: E731
                     np.asarray(ds.y, np.int32))
  description = (f"sklearn digits, {len(y)} training images with {100 * cfg.label_noise:g}% "
                 "flipped labels (validation and test clean), standardized")
  return Workload(description, num_classes, (np.asarray(scaler.apply(x), np.float32), y),
                  prep(splits.validation), prep(splits.test), flipped)


def model_fn(cfg, workload: Workload):
  """rngs -> the study's MLP (what ``sweep``, ``select`` and ``fit`` build per seed)."""
  return lambda rngs: models.MLP(workload.dim, cfg.hidden_sizes, workload.num_classes, rngs=rngs)


def retrain_all(cfg, workload: Workload, seeds: Sequence[int]):
  """Every λ × seed on the whole training set for the full budget, as one ``sweep``.

  Returns ({key: (λ, seed, epoch) array}, timing): train loss and validation/test loss
  and accuracy after every epoch.
  """
  start = time.perf_counter()
  result = sweep(model_fn(cfg, workload), "adamw", workload.train,
                 hyperparams={"weight_decay": list(cfg.weight_decays)},
                 fixed={"learning_rate": cfg.learning_rate}, seeds=list(seeds),
                 validation=workload.validation, test=workload.test, epochs=cfg.epochs,
                 batch_size=cfg.batch_size)
  timing = {"compile_s": result.compile_seconds, "train_s": result.train_seconds,
            "wall_s": time.perf_counter() - start, "runs": len(cfg.weight_decays) * len(seeds)}
  return {k: result[k] for k in CURVES}, timing


def replay_early_stopping(val_loss: Sequence[float], patience: int) -> tuple[int, int, bool]:
  """(best epoch, last epoch run, stopped) of ``EarlyStopping("val_loss", patience=...)``
  fed one validation loss per epoch, exactly as ``fit`` feeds it.

  A run that is never stopped ends at the last epoch with its final weights (``fit``
  restores the best weights only when it stops early); its "best epoch" is then the
  last one.
  """
  callback = EarlyStopping("val_loss", patience=patience, restore_best=True)
  for epoch, value in enumerate(val_loss):
    if "stop" in callback.on_evaluation(epoch, {"val_loss": float(value)}):
      return int(callback.best_epoch), epoch, True
  last = len(val_loss) - 1
  return last, last, False


def early_stopped(cfg, workload: Workload, curves: dict[str, np.ndarray],
                  seed: int) -> dict[str, Any]:
  """Early stopping of one seed's full-budget run: where it stops and what it keeps.

  `curves` are that run's per-epoch values from the sweep; the stopping point comes from
  replaying ``EarlyStopping`` on its validation loss (see ``fit_early_stopped`` for the
  real thing).
  """
  best, stop, stopped = replay_early_stopping(curves["val_loss"], cfg.patience)
  return {
    "seed": seed,
    "stopped": stopped,
    "best_epoch": best,
    "stop_epoch": stop,
    "epochs_run": stop + 1,
    "test_loss": float(curves["test_loss"][best]),
    "test_accuracy": float(curves["test_accuracy"][best]),
  }


def fit_early_stopped(cfg, workload: Workload, seed: int) -> dict[str, Any]:
  """``optlab.train.fit`` with EarlyStopping(val_loss, patience, restore_best=True) at the
  smallest λ: the stopping point, and the restored model's test accuracy."""
  x_test, y_test = workload.test
  tx = optim.get("adamw", learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decays[0])
  start = time.perf_counter()
  result = fit(model_fn(cfg, workload)(nnx.Rngs(seed)), tx, workload.train,
               validation=workload.validation, test=workload.test, epochs=cfg.epochs,
               batch_size=cfg.batch_size, seed=seed, progress=False,
               callbacks=[EarlyStopping("val_loss", patience=cfg.patience, restore_best=True)])
  wall = time.perf_counter() - start
  stopped = result.status == "early_stopped"
  last = int(result.history[-1]["epoch"])
  best = int(result.best_epoch) if stopped else last
  logits = np.asarray(result.model(x_test))  # the model fit returned (restored if stopped)
  return {
    "seed": seed,
    "status": result.status,
    "message": result.message,
    "best_epoch": best,
    "stop_epoch": last,
    "val_loss": [h["val_loss"] for h in result.history],
    "test_accuracy": float(np.mean(np.argmax(logits, -1) == y_test)),
    "compile_s": result.compile_seconds,
    "train_s": result.train_seconds,
    "wall_s": wall,
  }


def summarize_early_stopping(runs: Sequence[dict], final_test_loss: Sequence[float],
                             final_test_accuracy: Sequence[float], epochs: int) -> dict[str, Any]:
  """Early-stopped vs final-epoch test metrics over seeds (means, differences, wins).

  Args:
    runs: ``early_stopped`` results, one per seed.
    final_test_loss, final_test_accuracy: the same seeds' models after the full budget.
    epochs: the full budget.
  """
  es_loss = np.array([r["test_loss"] for r in runs], np.float64)
  es_acc = np.array([r["test_accuracy"] for r in runs], np.float64)
  final_loss = np.asarray(final_test_loss, np.float64)
  final_acc = np.asarray(final_test_accuracy, np.float64)
  epochs_run = np.array([r["epochs_run"] for r in runs], np.float64)
  return {
    "early_stopped_test_loss": float(es_loss.mean()),
    "final_test_loss": float(final_loss.mean()),
    "early_stopped_test_accuracy": float(es_acc.mean()),
    "final_test_accuracy": float(final_acc.mean()),
    "accuracy_gain": float((es_acc - final_acc).mean()),
    "loss_gain": float((final_loss - es_loss).mean()),
    "seeds_accuracy_at_least_as_good": int(np.sum(es_acc >= final_acc)),
    "seeds_loss_at_least_as_good": int(np.sum(es_loss <= final_loss)),
    "num_seeds": len(runs),
    "mean_best_epoch": float(np.mean([r["best_epoch"] for r in runs])),
    "mean_epochs_run": float(epochs_run.mean()),
    "epoch_fraction": float(epochs_run.mean() / epochs),
    "held": bool(es_acc.mean() >= final_acc.mean() and es_loss.mean() <= final_loss.mean()),
  }


def summarize_selection(weight_decays: Sequence[float], cv_mean: np.ndarray,
                        test_accuracy: np.ndarray, n_test: int) -> dict[str, Any]:
  """CV's choice against the test-best λ.

  Args:
    weight_decays: the grid.
    cv_mean: (λ,) mean validation accuracy over folds (NaN: diverged).
    test_accuracy: (λ, seed) final test accuracy after retraining on the whole training set.
    n_test: test-set size, for the binomial standard error.

  Returns:
    The chosen and the test-best λ, their test accuracies, the gap, and the noise it
    is judged against: the larger of the seed-to-seed standard error of the difference
    and the binomial standard error of one accuracy on `n_test` images.
  """
  chosen = int(np.nanargmax(cv_mean))
  mean = np.nanmean(test_accuracy, axis=1)
  best = int(np.nanargmax(mean))
  diff = test_accuracy[best] - test_accuracy[chosen]
  seeds = test_accuracy.shape[1]
  seed_se = float(np.std(diff, ddof=1) / math.sqrt(seeds)) if seeds > 1 else 0.0
  p = float(mean[best])
  binomial_se = math.sqrt(max(p * (1 - p), 1e-12) / n_test)
  noise = max(seed_se, binomial_se)
  rank = int(np.sum(mean > mean[chosen])) + 1
  return {
    "chosen_index": chosen,
    "chosen_weight_decay": float(weight_decays[chosen]),
    "chosen_test_accuracy": float(mean[chosen]),
    "test_best_index": best,
    "test_best_weight_decay": float(weight_decays[best]),
    "test_best_accuracy": float(mean[best]),
    "gap": float(mean[best] - mean[chosen]),
    "chosen_test_rank": rank,
    "seed_standard_error": seed_se,
    "binomial_standard_error": binomial_se,
    "noise": noise,
    "within_noise": bool(mean[best] - mean[chosen] <= 2 * noise),
    "test_accuracy_mean": mean.tolist(),
  }


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0) -> list[dict]:
  """Runs both parts; appends one record per part and returns them."""
  workload = load_workload(cfg)
  seeds = [seed + i for i in range(cfg.num_seeds)]
  common = {"study": STUDY, "run_id": uuid.uuid4().hex[:12], "config": cfg._asdict(),
            "provenance": results.provenance(), "dataset_description": workload.description,
            "sizes": workload.sizes(), "noisy_labels": int(workload.noisy.sum()),
            "model": "MLP " + "-".join(map(str, (workload.dim, *cfg.hidden_sizes,
                                                   workload.num_classes))) + ", ReLU",
            "optimizer": f"adamw(learning_rate={cfg.learning_rate:g}, weight_decay=λ, paper "
                         "convention)", "seeds": seeds, "epochs": cfg.epochs,
            "batch_size": cfg.batch_size}
  curves, sweep_timing = retrain_all(cfg, workload, seeds)
  # (a) Early stopping at the smallest λ; the full-budget runs are that row of the sweep.
  full = {k: v[0] for k, v in curves.items()}  # (seed, epoch)
  runs = [early_stopped(cfg, workload, {k: v[i] for k, v in full.items()}, s)
          for i, s in enumerate(seeds)]
  checks = []
  for i, s in enumerate(seeds[:cfg.fit_seeds]):
    check = fit_early_stopped(cfg, workload, s)
    n = len(check["val_loss"])
    check["agrees_with_sweep"] = bool(
        check["best_epoch"] == runs[i]["best_epoch"]
        and check["stop_epoch"] == runs[i]["stop_epoch"]
        and abs(check["test_accuracy"] - runs[i]["test_accuracy"]) < 1.5 / len(workload.test[1]))
    check["max_abs_val_loss_difference"] = float(np.max(np.abs(
        np.asarray(check["val_loss"]) - full["val_loss"][i, :n])))
    checks.append(check)
  summary = summarize_early_stopping(runs, full["test_loss"][:, -1], full["test_accuracy"][:, -1],
                                     cfg.epochs)
  part_a = {**common, "part": "early_stopping", "weight_decay": cfg.weight_decays[0],
            "patience": cfg.patience, "monitor": "val_loss",
            "full_budget": {k: v.tolist() for k, v in full.items()},  # (seed, epoch)
            "early_stopped": runs, "fit_checks": checks, "summary": summary,
            "timing": {"compile_s": sum(c["compile_s"] for c in checks),
                       "train_s": sum(c["train_s"] for c in checks),
                       "wall_s": sum(c["wall_s"] for c in checks)}}
  # (b) k-fold selection of λ, then every λ retrained on the whole training set (the sweep).
  start = time.perf_counter()
  selection = select(model_fn(cfg, workload), "adamw", workload.train,
                     {"learning_rate": [cfg.learning_rate],
                      "weight_decay": list(cfg.weight_decays)},
                     k=cfg.folds, metric="accuracy", seed=cfg.data_seed, epochs=cfg.epochs,
                     batch_size=cfg.batch_size)
  cv_wall = time.perf_counter() - start
  test_final = curves["test_accuracy"][:, :, -1]  # (λ, seed)
  chosen = summarize_selection(cfg.weight_decays, selection.mean, test_final,
                               len(workload.test[1]))
  assert chosen["chosen_weight_decay"] == selection.best_config["weight_decay"]
  cv_sweep = selection.sweep
  part_b = {**common, "part": "cross_validation", "k": cfg.folds,
            "metric": selection.metric, "maximize": selection.maximize,
            "configs": selection.configs,
            "weight_decays": list(cfg.weight_decays),
            "per_fold": selection.per_fold,  # (λ, fold) validation accuracy
            "per_fold_loss": (cv_sweep["val_loss"][:, 0, :, -1] if cv_sweep is not None
                              else None),
            "cv_mean": selection.mean, "cv_std": selection.std,
            "best_config": selection.best_config, "best_score": selection.best_score,
            # select's folds (the same seed); each training part truncated to the shortest.
            "fold_sizes": [[len(t), len(v)] for t, v in
                           make_folds(workload.train[1], cfg.folds, seed=cfg.data_seed)],
            "retrained_test_accuracy": test_final,  # (λ, seed)
            "retrained_test_loss": curves["test_loss"][:, :, -1],
            "summary": chosen,
            "timing": {"cv_compile_s": cv_sweep.compile_seconds if cv_sweep else None,
                       "cv_train_s": cv_sweep.train_seconds if cv_sweep else None,
                       "cv_wall_s": cv_wall,
                       "retrain_compile_s": sweep_timing["compile_s"],
                       "retrain_train_s": sweep_timing["train_s"],
                       "retrain_wall_s": sweep_timing["wall_s"],
                       "compile_s": (cv_sweep.compile_seconds if cv_sweep else 0.0)
                       + sweep_timing["compile_s"]}}
  records = [results.to_jsonable(part_a), results.to_jsonable(part_b)]
  if results_path is not None:
    results.append_records(results_path, records)
  return records


def table(records: list[dict]) -> str:
  """The two parts' numbers, as text."""
  a, b = records
  s, c = a["summary"], b["summary"]
  sizes = a["sizes"]
  lines = [f"{a['dataset_description']}; train/val/test {sizes['train']}/{sizes['validation']}/"
           f"{sizes['test']}; {a['model']}; {a['optimizer']}; batch {a['batch_size']}, "
           f"{a['epochs']} epochs; {len(a['seeds'])} seed(s)",
           f"(a) early stopping (val_loss, patience {a['patience']}, restore best), λ = "
           f"{a['weight_decay']:g} (epochs counted from 1):",
           f"  {'seed':>6}{'best ep':>9}{'stopped':>9}{'ES test acc':>13}{'final acc':>11}"
           f"{'ES test loss':>14}{'final loss':>12}"]
  for i, r in enumerate(a["early_stopped"]):
    lines.append(f"  {r['seed']:>6}{r['best_epoch'] + 1:>9}{r['stop_epoch'] + 1:>9}"
                 f"{100 * r['test_accuracy']:>12.2f}%"
                 f"{100 * a['full_budget']['test_accuracy'][i][-1]:>10.2f}%"
                 f"{r['test_loss']:>14.4f}{a['full_budget']['test_loss'][i][-1]:>12.4f}")
  lines.append(f"  mean: early-stopped {100 * s['early_stopped_test_accuracy']:.2f}% / "
               f"{s['early_stopped_test_loss']:.4f} vs final {100 * s['final_test_accuracy']:.2f}%"
               f" / {s['final_test_loss']:.4f}; at least as good on "
               f"{s['seeds_accuracy_at_least_as_good']}/{s['num_seeds']} seeds (accuracy), "
               f"{s['seeds_loss_at_least_as_good']}/"
               f"{s['num_seeds']} (loss); {s['mean_epochs_run']:.1f} of {a['epochs']} epochs "
               f"({100 * s['epoch_fraction']:.0f}%)")
  for c_ in a["fit_checks"]:
    lines.append(f"  fit(..., callbacks=[EarlyStopping]) seed {c_['seed']}: {c_['status']}, best "
                 f"epoch {c_['best_epoch'] + 1}, stopped after {c_['stop_epoch'] + 1}, restored "
                 "model test "
                 f"acc {100 * c_['test_accuracy']:.2f}%; agrees with the replay on the sweep: "
                 f"{c_['agrees_with_sweep']} (max |Δ val loss| "
                 f"{c_['max_abs_val_loss_difference']:.1e})")
  lines.append(f"(b) {b['k']}-fold CV of λ (validation accuracy on the noisy training labels), "
               "then retrained on the whole training set (test accuracy, mean over seeds):")
  lines.append(f"  {'λ':>8}{'CV acc':>9}{'± std':>8}{'test acc':>10}")
  for i, lam in enumerate(b["weight_decays"]):
    mark = (" <- CV's choice" if i == c["chosen_index"] else "") + (
        " <- test-best" if i == c["test_best_index"] else "")
    lines.append(f"  {lam:>8.0e}{100 * b['cv_mean'][i]:>8.2f}%{100 * b['cv_std'][i]:>7.2f}"
                 f"{100 * c['test_accuracy_mean'][i]:>9.2f}%{mark}")
  lines.append(f"  gap to the test-best: {100 * c['gap']:.2f} points (rank {c['chosen_test_rank']}"
               f" of {len(b['weight_decays'])}); noise: {100 * c['noise']:.2f} points "
               f"(seed s.e. {100 * c['seed_standard_error']:.2f}, binomial s.e. "
               f"{100 * c['binomial_standard_error']:.2f}); within 2 s.e.: {c['within_noise']}")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  start = time.perf_counter()
  records = run(cfg, args.results, seed=args.seed)
  elapsed = time.perf_counter() - start
  print(table(records))
  compile_s = records[0]["timing"]["compile_s"] + records[1]["timing"]["compile_s"]
  print(f"\n{len(records)} records appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s, "
        f"of which ~{compile_s:.1f} s compiling)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
