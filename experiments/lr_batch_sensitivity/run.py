"""lr_batch_sensitivity: learning rate × batch size heatmaps for SGD, momentum and Adam.

At a fixed budget in epochs, how does the best learning rate move with the batch
size, and how wide is the range of good learning rates? Goyal et al. (2017) scale
SGD's learning rate linearly with the batch size; Smith & Le (2018) explain it by
the noise scale g ≈ εN/B of SGD, which the best runs keep constant. Adaptive methods
such as Adam are reputed to be less sensitive to the learning rate.

Workload: a one-hidden-layer MLP (optlab.models.MLP) on standardized sklearn digits,
a fixed number of epochs. One ``optlab.tune.sweep.sweep(..., batch_sizes=...)`` trains
every optimizer × learning rate × batch size × seed (the optimizer is ``sgd_or_adam``,
whose α, μ and SGD/Adam switch are injected and vmapped; each batch size is one
compiled program). The best learning rate of each batch size is located on the
validation loss (refined by a parabola in log α through the best grid point and its
neighbours); its log-log slope against the batch size tests the linear rule (slope
1). The width (in decades) of the learning rates within 1 point of each batch size's
best validation accuracy measures the sensitivity.

Usage:
  python experiments/lr_batch_sensitivity/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure]
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys
import time
import uuid
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, models, optim, results  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.tune.sweep import sweep  # noqa: E402

STUDY = "lr_batch_sensitivity"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
KEYS = ("train_loss", "val_loss", "val_accuracy")

config = load_module("optlab_lr_batch_sensitivity_config", HERE / "config.py")


class Workload(NamedTuple):
  """The arrays of the study and what they are."""

  description: str
  num_classes: int
  train: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray]

  @property
  def dim(self) -> int:
    return int(self.train[0].shape[1])

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train[1]), "validation": len(self.validation[1])}


def load_workload(cfg) -> Workload:
  """sklearn digits, a stratified train/validation split, standardized with training statistics."""
  # No test set: the study measures where the good learning rates are, not a final score.
  splits = data.train_val_test_split(data.digits(flatten=True), 0.0, cfg.val_fraction,
                                     cfg.data_seed)
  scaler = data.Standardizer.fit(np.asarray(splits.train.x, np.float32))
  prep = lambda ds: (np.asarray(scaler.apply(np.asarray(ds.x, np.float32)), np.float32),  # noqa: E731
                     np.asarray(ds.y, np.int32))
  train = prep(splits.train)
  return Workload("sklearn digits (64 pixels, standardized)", int(train[1].max()) + 1, train,
                  prep(splits.test))


def sgd_or_adam(learning_rate, momentum, adaptive) -> optax.GradientTransformation:
  """``optim.sgd(α, μ)`` where `adaptive` < ½, else ``optim.adam(α)`` (default β, ε).

  Both updates are computed and one is selected per run (``jnp.where``, so the other
  never leaks in, not even a NaN), which lets ``sweep`` vmap SGD, momentum and Adam
  runs in one program per batch size: the study's runtime is compilation, and this
  halves it. Neither state depends on α, so the unused one is harmless.

  Args:
    learning_rate: α (a number or, inside the sweep, a traced array).
    momentum: SGD's μ (torch form: b ← μb + g, θ ← θ − αb).
    adaptive: 0 for SGD, 1 for Adam.

  Returns:
    An ``optax.GradientTransformation`` whose state is (SGD's state, Adam's state).
  """
  sgd, adam = optim.sgd(learning_rate, momentum), optim.adam(learning_rate)

  def init(params):
    return sgd.init(params), adam.init(params)

  def update(grads, state, params=None):
    sgd_updates, sgd_state = sgd.update(grads, state[0], params)
    adam_updates, adam_state = adam.update(grads, state[1], params)
    use_adam = jnp.asarray(adaptive) > 0.5
    updates = jax.tree.map(lambda a, b: jnp.where(use_adam, b, a), sgd_updates, adam_updates)
    return updates, (sgd_state, adam_state)

  return optax.GradientTransformation(init, update)


def sweep_all(cfg, workload: Workload, seeds: Sequence[int]):
  """Every (optimizer, learning rate, batch size, seed) of `cfg`, as one ``sweep``.

  Returns ``{optimizer: ({key: (lr, batch, seed) array}, status (lr, batch, seed))}``
  and the timing; a diverged run's values are NaN.
  """
  configs, rows = [], {}
  for optimizer in cfg.optimizers:
    lrs = cfg.learning_rates(optimizer)
    rows[optimizer] = slice(len(configs), len(configs) + len(lrs))
    configs += [{"learning_rate": float(lr), **cfg.hyperparameters(optimizer)} for lr in lrs]
  batch_sizes, start = cfg.batch_sizes, time.perf_counter()
  result = sweep(
      lambda rngs: models.MLP(workload.dim, cfg.hidden_sizes, workload.num_classes, rngs=rngs),
      sgd_or_adam, workload.train, hyperparams=configs, seeds=list(seeds),
      validation=workload.validation, epochs=cfg.epochs, eval_every=cfg.epochs,
      batch_sizes=batch_sizes, skip_nonfinite=cfg.skip_nonfinite,
      chunk_size=len(configs) * len(seeds))
  wall = time.perf_counter() - start
  # The sweep's configurations: ours × batch sizes, the batch size the inner axis.
  shape = (len(configs), len(batch_sizes), len(seeds))
  values = {k: result[k][..., -1].reshape(shape) for k in KEYS}
  status = result.status.reshape(shape)
  out = {o: ({k: v[rows[o]] for k, v in values.items()}, status[rows[o]])
         for o in cfg.optimizers}
  timing = {"compile_s": result.compile_seconds, "train_s": result.train_seconds,
            "wall_s": wall, "programs": len(batch_sizes), "num_chunks": result.num_chunks,
            "runs": math.prod(shape)}
  return out, timing


def refine_minimum(log_x: np.ndarray, y: np.ndarray) -> tuple[float, int, bool]:
  """(refined log x of the minimum, grid index, on the edge) of a curve with NaN gaps.

  The grid minimum is refined by the vertex of the parabola through it and its two
  neighbours (clipped to them); at the grid's edge, or next to a NaN (a diverged
  learning rate), the grid value is kept and flagged.
  """
  y = np.asarray(y, np.float64)
  if not np.any(np.isfinite(y)):
    raise ValueError("refine_minimum: every value is NaN (all diverged)")
  i = int(np.nanargmin(y))
  if i == 0 or i == len(y) - 1 or not (np.isfinite(y[i - 1]) and np.isfinite(y[i + 1])):
    return float(log_x[i]), i, True
  (x0, x1, x2), (y0, y1, y2) = log_x[i - 1:i + 2], y[i - 1:i + 2]
  denominator = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
  if denominator == 0:
    return float(x1), i, False
  vertex = x1 - 0.5 * ((x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)) / denominator
  return float(np.clip(vertex, x0, x2)), i, False


def fit_line(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None,
                                                              float | None]:
  """(slope, intercept, Pearson r) of the least-squares line y ≈ slope·x + intercept."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if len(x) < 2 or np.ptp(x) == 0:
    return None, None, None
  slope, intercept = np.polyfit(x, y, 1)
  r = None if np.ptp(y) == 0 else float(np.corrcoef(x, y)[0, 1])
  return float(slope), float(intercept), r


def analyze(learning_rates: Sequence[float], batch_sizes: Sequence[int], val_loss: np.ndarray,
            val_accuracy: np.ndarray, tolerance: float = 0.01) -> dict[str, Any]:
  """Best learning rate per batch size, its log-log slope, and the width of good rates.

  Args:
    learning_rates, batch_sizes: the grid axes.
    val_loss, val_accuracy: (lr, batch) means over seeds; NaN where a
      seed diverged.
    tolerance: a learning rate is good for a batch size when its validation accuracy is
      within this of that batch size's best.

  Returns:
    A dict of plain numbers and lists (stored in the record).
  """
  log_lr = np.log10(np.asarray(learning_rates, np.float64))
  log_b = np.log10(np.asarray(batch_sizes, np.float64))
  step = float(np.mean(np.diff(log_lr))) if len(log_lr) > 1 else 1.0
  refined, grid_best, edge, acc_best, widths, good = [], [], [], [], [], []
  for j in range(len(batch_sizes)):
    value, i, on_edge = refine_minimum(log_lr, val_loss[:, j])
    refined.append(10 ** value)
    grid_best.append(float(learning_rates[i]))
    edge.append(on_edge)
    acc = np.where(np.isfinite(val_accuracy[:, j]), val_accuracy[:, j], -np.inf)
    acc_best.append(float(learning_rates[int(np.argmax(acc))]))
    ok = acc >= acc.max() - tolerance
    good.append(ok)
    widths.append(float(ok.sum() * step))
  slope, intercept, r = fit_line(log_b, np.log10(refined))
  inner = ~np.asarray(edge, bool)  # best α not pinned by the grid's edge or by divergence
  inner_slope, _, inner_r = fit_line(log_b[inner], np.log10(refined)[inner])
  acc_slope, _, acc_r = fit_line(log_b, np.log10(acc_best))
  shared = np.all(good, axis=0)
  accuracy = np.where(np.isfinite(val_accuracy), val_accuracy, -np.inf)
  bi, bj = np.unravel_index(int(np.argmax(accuracy)), accuracy.shape)
  return {
    "best_lr_per_batch": refined,
    "best_lr_grid_per_batch": grid_best,
    "best_lr_at_edge": edge,
    "best_lr_slope": slope,
    "best_lr_intercept": intercept,
    "best_lr_correlation": r,
    "interior_slope": inner_slope,
    "interior_correlation": inner_r,
    "interior_batch_sizes": [int(b) for b, k in zip(batch_sizes, inner, strict=True) if k],
    "best_acc_lr_per_batch": acc_best,
    "best_acc_lr_slope": acc_slope,
    "best_acc_lr_correlation": acc_r,
    "tolerance": tolerance,
    "good_width_decades": widths,
    "mean_good_width_decades": float(np.mean(widths)),
    "good_lrs_per_batch": [[float(v) for v, g in zip(learning_rates, ok, strict=True) if g]
                           for ok in good],
    "shared_good_width_decades": float(shared.sum() * step),
    "best_index": [int(bi), int(bj)],
    "best_val_accuracy": float(val_accuracy[bi, bj]),
    "best_learning_rate": float(learning_rates[bi]),
    "best_batch_size": int(batch_sizes[bj]),
  }


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0) -> list[dict]:
  """Sweeps every optimizer of `cfg`, appends one record per optimizer, returns them."""
  workload = load_workload(cfg)
  seeds = [seed + i for i in range(cfg.num_seeds)]
  common = {"study": STUDY, "run_id": uuid.uuid4().hex[:12], "config": cfg._asdict(),
            "provenance": results.provenance()}
  swept, timing = sweep_all(cfg, workload, seeds)
  records = []
  for optimizer in cfg.optimizers:
    lrs = cfg.learning_rates(optimizer)
    out, status = swept[optimizer]
    diverged = status == "diverged"
    mean = {}
    with warnings.catch_warnings():
      warnings.simplefilter("ignore", RuntimeWarning)
      for k, v in out.items():  # a cell where any seed diverged counts as diverged
        mean[k] = np.where(diverged.any(axis=-1), np.nan, np.nanmean(v, axis=-1))
    records.append({
      **common,
      "optimizer": optimizer,
      "hyperparameters": cfg.hyperparameters(optimizer),
      "dataset_description": workload.description,
      "sizes": workload.sizes(),
      "model": "MLP " + "-".join(map(str, (workload.dim, *cfg.hidden_sizes,
                                             workload.num_classes))) + ", ReLU",
      "seeds": seeds,
      "epochs": cfg.epochs,
      "learning_rates": list(lrs),
      "batch_sizes": list(cfg.batch_sizes),
      "steps_per_epoch": [len(workload.train[1]) // b for b in cfg.batch_sizes],
      # (lr, batch, seed) final values; a diverged run's are None.
      "grid": out,
      "diverged": diverged.tolist(),
      "analysis": analyze(lrs, cfg.batch_sizes, mean["val_loss"], mean["val_accuracy"],
                          cfg.tolerance),
      # The timing of the one sweep that trained every optimizer.
      "timing": timing,
    })
  if results_path is not None:
    results.append_records(results_path, records)
  return records


def _fmt(value: float | None, spec: str = "+.2f") -> str:
  return "—" if value is None else format(value, spec)


def table(records: list[dict]) -> str:
  """One line per optimizer: best cell, slope of the best learning rate, good widths."""
  r0 = records[0]
  sizes = r0["sizes"]
  lines = [f"{r0['dataset_description']}, train/val {sizes['train']}/{sizes['validation']}; "
           f"{r0['model']}; {r0['epochs']} epochs; {len(r0['seeds'])} seed(s); "
           f"batch sizes {r0['batch_sizes']}",
           f"  {'optimizer':<11}{'val acc':>8}{'at lr':>8}{'batch':>6}"
           f"{'slope':>7}{'r':>7}{'interior':>9}{'acc slope':>10}{'width':>7}{'shared':>7}"
           "  best lr per batch"]
  for r in records:
    a = r["analysis"]
    best = " ".join(f"{v:.2g}{'*' if e else ''}" for v, e in
                    zip(a["best_lr_per_batch"], a["best_lr_at_edge"], strict=True))
    lines.append(f"  {r['optimizer']:<11}{100 * a['best_val_accuracy']:>7.2f}%"
                 f"{a['best_learning_rate']:>8.2g}"
                 f"{a['best_batch_size']:>6}{_fmt(a['best_lr_slope']):>7}"
                 f"{_fmt(a['best_lr_correlation']):>7}{_fmt(a['interior_slope']):>9}"
                 f"{_fmt(a['best_acc_lr_slope']):>10}"
                 f"{a['mean_good_width_decades']:>7.2f}{a['shared_good_width_decades']:>7.2f}"
                 f"  {best}")
  lines.append("best cell by mean validation accuracy; slope: log10 of the best learning rate "
               "(validation loss, parabola-refined; * on the grid's edge or next to divergence) "
               "against log10 batch size, 1 = linear scaling; interior: the same without the * "
               "points; acc slope: the same with the grid "
               "argmax of validation accuracy; width: decades of learning rates within "
               f"{100 * r0['analysis']['tolerance']:g} point of each batch size's best accuracy "
               "(mean over batch sizes); shared: decades good at every batch size")
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
  compile_s = records[0]["timing"]["compile_s"]
  print(f"\n{len(records)} records appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s, "
        f"of which ~{compile_s:.1f} s compiling)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
