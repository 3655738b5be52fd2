"""decoupled_weight_decay: L2 regularization vs decoupled weight decay, for Adam and SGD.

Loshchilov & Hutter (2019), "Decoupled Weight Decay Regularization", Fig. 2: heatmaps
of the final test error over the learning rate α × the weight decay λ. With the decay
in the gradient (L2), the adaptive (or momentum) step rescales it and the best λ moves
with α (a diagonal valley); with the decay decoupled from the gradient step (AdamW,
SGDW, the decay multiplied by the schedule multiplier η_t but not by α), the best λ
barely depends on α (an axis-aligned, separable valley), and AdamW generalizes better
than Adam + L2.

Five heatmaps: adam_l2 (chain(add_weight_decay(λ), scale_by_adam(), lr(α·η_t))),
adamw_lr (decay multiplied by α·η_t, as torch/optax), adamw_paper (decay multiplied
by η_t only), sgd_l2 and sgdw (heavy ball, the paper's Algorithm 1). Workload: a
one-hidden-layer MLP (optlab.models.MLP) on standardized Fashion-MNIST subsamples,
cosine η_t. Every heatmap (α × λ × seeds) trains as ONE compiled program: vmap over
the cells and seeds, lax.scan over epochs and minibatches, data on device. The best
cell is chosen on a validation split; the test error is reported.

Usage:
  python experiments/decoupled_weight_decay/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure] [--restart]

Each method's heatmap is saved as soon as it is done: a killed run, started again with
the same arguments, resumes where it stopped (--restart discards it instead).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time
import warnings
from collections.abc import Callable, Sequence
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
from optlab.metrics.losses import integer_label_cross_entropy  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402

STUDY = "decoupled_weight_decay"
METHODS = ("adam_l2", "adamw_lr", "adamw_paper", "sgd_l2", "sgdw")
# Where the decay enters, per method (stored with the records, used in the figure titles).
CONVENTIONS = {
  "adam_l2": "Adam + L2: g ← g + λθ before Adam's scaling",
  "adamw_lr": "AdamW, torch/optax form: θ ← θ − α·η_t·(d + λθ)",
  "adamw_paper": "AdamW, paper form: θ ← θ − η_t·(α·d + λθ)",
  "sgd_l2": "SGD-momentum + L2: g ← g + λθ",
  "sgdw": "SGDW, paper form: θ ← θ − v − η_t·λθ",
}
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"


config = load_module("optlab_decoupled_weight_decay_config", HERE / "config.py")


# ----------------------------------------------------------------------------------
# Data: one split, standardized with the training statistics, the same for every run.


class Workload(NamedTuple):
  """The arrays of the study and what they are."""

  description: str
  num_classes: int
  train: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray]
  test: tuple[np.ndarray, np.ndarray]

  @property
  def dim(self) -> int:
    return int(self.train[0].shape[1])

  def arrays(self) -> tuple[jax.Array, ...]:
    """(x_train, y_train, x_val, y_val, x_test, y_test) on the default device."""
    return tuple(jax.device_put(a) for a in (*self.train, *self.validation, *self.test))

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train[1]), "validation": len(self.validation[1]),
            "test": len(self.test[1])}


def _subsample(x: np.ndarray, y: np.ndarray, size: int, seed: int) -> tuple[np.ndarray, ...]:
  """A stratified subsample of `size` examples (all of them if there are fewer)."""
  if size >= len(y):
    return x, y
  keep = data.train_val_test_split((x, y), 0.0, 1.0 - size / len(y), seed).train
  return np.asarray(keep.x), np.asarray(keep.y)


def load_workload(cfg) -> Workload:
  """Fashion-MNIST subsamples (sklearn digits if Fashion-MNIST is not on the machine)."""
  try:
    official = data.fashion_mnist(flatten=True)
    x, y = np.asarray(official.train.x, np.float32), np.asarray(official.train.y, np.int32)
    x_test, y_test = np.asarray(official.test.x, np.float32), np.asarray(official.test.y)
    description = "Fashion-MNIST (784 pixels, standardized)"
  except FileNotFoundError as error:
    print(f"{STUDY}: Fashion-MNIST not found ({error}); falling back to sklearn digits")
    digits = data.train_val_test_split(data.digits(flatten=True), 0.0, 0.25, cfg.data_seed)
    x, y = np.asarray(digits.train.x, np.float32), np.asarray(digits.train.y, np.int32)
    x_test, y_test = np.asarray(digits.test.x, np.float32), np.asarray(digits.test.y)
    description = "sklearn digits (64 pixels, standardized; Fashion-MNIST missing)"
  # Validation out of the official training set first, then the training subsample.
  n_val = min(cfg.val_size, len(y) // 4)
  held = data.train_val_test_split((x, y), 0.0, n_val / len(y), cfg.data_seed)
  train = _subsample(np.asarray(held.train.x), np.asarray(held.train.y), cfg.train_size,
                     cfg.data_seed)
  val = (np.asarray(held.test.x), np.asarray(held.test.y))
  test = _subsample(x_test, y_test, cfg.test_size, cfg.data_seed)
  scaler = data.Standardizer.fit(train[0])
  prep = lambda xy: (np.asarray(scaler.apply(xy[0]), np.float32),  # noqa: E731
                     np.asarray(xy[1], np.int32))
  return Workload(description, int(np.max(train[1])) + 1, prep(train), prep(val), prep(test))


# ----------------------------------------------------------------------------------
# The model: optlab.models.MLP, split once; training is a pure function of its params.


def init_params(cfg, workload: Workload, seeds: Sequence[int]):
  """(forward(params, x), params stacked over seeds): one MLP initialization per seed."""
  from flax import nnx

  inits = []
  for s in seeds:
    model = models.MLP(workload.dim, cfg.hidden_sizes, workload.num_classes,
                       rngs=nnx.Rngs(int(s)))
    graphdef, state = nnx.split(model)
    inits.append(nnx.to_pure_dict(state))

  def forward(params, x):
    return nnx.merge(graphdef, params)(x)

  return forward, jax.tree.map(lambda *a: jnp.stack(a), *inits)


def steps_per_epoch(n: int, batch_size: int) -> int:
  return max(1, n // batch_size)  # the remainder is dropped: a new permutation each epoch


def multiplier(cfg, total_steps: int) -> optax.Schedule:
  """η_t: cosine annealing from 1 to 0 over the run (no restarts), or 1."""
  if cfg.schedule == "cosine":
    return optax.cosine_decay_schedule(1.0, total_steps)
  if cfg.schedule == "constant":
    return lambda count: jnp.ones([], jnp.float32)
  raise ValueError(f"multiplier: schedule must be 'cosine' or 'constant', got {cfg.schedule!r}")


def make_optimizer(cfg, method: str, alpha, lam, total_steps: int) -> optax.GradientTransformation:
  """The optimizer of `method` at step size α and decay λ (numbers or tracers)."""
  eta = multiplier(cfg, total_steps)
  rate = lambda count: alpha * eta(count)  # noqa: E731  α_t = α·η_t
  if method == "adam_l2":
    return optax.chain(optim.add_weight_decay(lam), optim.scale_by_adam(),
                       optim.scale_by_learning_rate(rate))
  if method == "adamw_lr":
    return optim.adamw(rate, weight_decay=lam, decay_convention="lr")
  if method == "adamw_paper":
    return optim.adamw(alpha, weight_decay=lam, decay_convention="paper",
                       schedule_multiplier=eta)
  if method == "sgd_l2":  # Algorithm 1 with the decay in the gradient
    return optax.chain(optim.add_weight_decay(lam), optim.heavy_ball(rate, cfg.momentum))
  if method == "sgdw":  # Algorithm 1: m ← μm + η_t α g; θ ← θ − m − η_t λ θ
    return optax.chain(optim.heavy_ball(rate, cfg.momentum),
                       optim.add_decoupled_weight_decay(lam, eta))
  raise ValueError(f"make_optimizer: unknown method {method!r}; expected one of {METHODS}")


def make_train(cfg, method: str, forward: Callable, n_train: int) -> Callable:
  """train(α, λ, params0, seed, *arrays) -> final metrics, one run, pure and jittable."""
  steps = steps_per_epoch(n_train, cfg.batch_size)
  total = cfg.epochs * steps

  def loss_fn(params, x, y):
    return jnp.mean(integer_label_cross_entropy(forward(params, x), y))

  def metrics(params, x, y):
    logits = forward(params, x)
    loss = jnp.mean(integer_label_cross_entropy(logits, y))
    return loss, jnp.mean(jnp.argmax(logits, axis=-1) != y)

  def train(alpha, lam, params, seed, x_tr, y_tr, x_val, y_val, x_te, y_te):
    tx = make_optimizer(cfg, method, alpha, lam, total)
    key = jax.random.key(seed)

    def step(carry, idx):
      params, opt_state = carry
      grads = jax.grad(loss_fn)(params, x_tr[idx], y_tr[idx])
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None

    def epoch(carry, e):
      order = jax.random.permutation(jax.random.fold_in(key, e), n_train)
      batches = order[: steps * cfg.batch_size].reshape(steps, cfg.batch_size)
      return jax.lax.scan(step, carry, batches)[0], None

    (params, _), _ = jax.lax.scan(epoch, (params, tx.init(params)), jnp.arange(cfg.epochs))
    train_loss, train_error = metrics(params, x_tr, y_tr)
    val_loss, val_error = metrics(params, x_val, y_val)
    test_loss, test_error = metrics(params, x_te, y_te)
    return {"train_loss": train_loss, "train_error": train_error, "val_loss": val_loss,
            "val_error": val_error, "test_loss": test_loss, "test_error": test_error}

  return train


def grid_program(train: Callable) -> Callable:
  """jit(vmap over cells (α, λ) of vmap over seeds (params0, seed)); data shared."""
  data_axes = (None,) * 6
  over_seeds = jax.vmap(train, in_axes=(None, None, 0, 0, *data_axes))
  return jax.jit(jax.vmap(over_seeds, in_axes=(0, 0, None, None, *data_axes)))


def sweep(cfg, method: str, workload: Workload, alphas: Sequence[float], lams: Sequence[float],
          seeds: Sequence[int], arrays=None) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Trains the whole α × λ × seed grid of `method` as one compiled program.

  Returns metrics of shape (len(alphas), len(lams), len(seeds)) and the timing.
  """
  forward, params0 = init_params(cfg, workload, seeds)
  train = make_train(cfg, method, forward, len(workload.train[1]))
  arrays = workload.arrays() if arrays is None else arrays
  a, l = np.meshgrid(np.asarray(alphas, np.float32), np.asarray(lams, np.float32), indexing="ij")
  args = (jnp.asarray(a.ravel()), jnp.asarray(l.ravel()), params0,
          jnp.asarray(seeds, jnp.uint32), *arrays)
  program = grid_program(train)
  start = time.perf_counter()
  compiled = program.lower(*args).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(*args))
  run_s = time.perf_counter() - start
  shape = (len(alphas), len(lams), len(seeds))
  out = {k: np.asarray(v, np.float64).reshape(shape) for k, v in out.items()}
  return out, {"compile_s": compile_s, "run_s": run_s}


# ----------------------------------------------------------------------------------
# Analysis of one heatmap.


def _trend(log_a: np.ndarray, log_l: np.ndarray) -> tuple[float | None, float | None]:
  """Least-squares slope of log λ on log α, and their correlation (None if λ is constant);
  both None with fewer than two α."""
  if len(log_a) < 2:
    return None, None
  slope = float(np.polyfit(log_a, log_l, 1)[0])
  return slope, (None if np.std(log_l) == 0 else float(np.corrcoef(log_a, log_l)[0, 1]))


def analyze(alphas: Sequence[float], lams: Sequence[float], val_error: np.ndarray,
            test_error: np.ndarray, tolerance: float = 0.01,
            failed: float = 0.2) -> dict[str, Any]:
  """Best cell (by validation error), λ*(α) per row, and how λ* moves with α.

  `val_error`, `test_error`: (α, λ) arrays (means over seeds). The slope is the least-
  squares slope of log λ*(α) on log α (0: separable, −1: λ* ∝ 1/α, a diagonal), the
  correlation their Pearson correlation (None when λ* does not move at all). Where the
  valley is flat, λ* is noisy; the edge of the valley is not: λ_max(α), the largest λ
  whose validation error is within `tolerance` of the row's best, gets the same trend.
  Rows of an α that failed at every λ (best error more than `failed` above the grid's
  best, e.g. diverged to chance) carry no information on λ and are left out of trends.
  """
  val = np.where(np.isfinite(val_error), val_error, np.inf)
  i, j = np.unravel_index(int(np.argmin(val)), val.shape)
  best_rows = np.argmin(val, axis=1)
  used = np.min(val, axis=1) <= val[i, j] + failed
  log_a = np.log10(np.asarray(alphas, np.float64))[used]
  log_lams = np.log10(np.asarray(lams, np.float64))
  slope, correlation = _trend(log_a, log_lams[best_rows[used]])
  ok = val <= np.min(val, axis=1, keepdims=True) + tolerance
  tolerated = np.array([np.flatnonzero(row).max() for row in ok])
  edge_slope, edge_correlation = _trend(log_a, log_lams[tolerated[used]])
  # Separability: the test error lost if λ is fixed at the best cell's λ for every α,
  # relative to re-tuning λ per α (averaged over the α rows).
  rows = np.flatnonzero(used)
  fixed_row = np.nanmean(test_error[rows, j] - test_error[rows, best_rows[used]])
  return {
    "best_index": [int(i), int(j)],
    "best_learning_rate": float(alphas[i]),
    "best_weight_decay": float(lams[j]),
    "best_val_error": float(val_error[i, j]),
    "best_test_error": float(test_error[i, j]),
    "lambda_star_per_alpha": [float(lams[k]) for k in best_rows],
    "alphas_in_trends": [float(alphas[k]) for k in rows],
    "lambda_star_slope": slope,
    "lambda_star_correlation": correlation,
    "fixed_lambda_regret": float(fixed_row),
    "tolerance": tolerance,
    "lambda_max_per_alpha": [float(lams[k]) for k in tolerated],
    "lambda_max_slope": edge_slope,
    "lambda_max_correlation": edge_correlation,
    "at_grid_edge": bool(i in (0, len(alphas) - 1) or j in (0, len(lams) - 1)),
  }


# ----------------------------------------------------------------------------------
# The study.


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Runs every method's heatmap; appends and returns one record per method.

  Each method's record is saved as soon as its heatmap is done (optlab.study_progress):
  a killed run started again with the same config and seed goes on from there, with
  the same run_id (`restart` discards it instead).
  """
  for method in cfg.methods:
    if method not in METHODS:
      raise ValueError(f"run: unknown method {method!r}; expected some of {METHODS}")
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  workload = load_workload(cfg)
  arrays = workload.arrays()
  seeds = [seed + i for i in range(cfg.num_seeds)]
  common = {"study": STUDY, "run_id": progress.run_id, "config": cfg._asdict(),
            "provenance": results.provenance()}
  records = [{**common, **progress.unit(method, method_record, cfg, method, workload, seeds,
                                        arrays)}
             for method in cfg.methods]
  progress.finish(records)
  return records


def method_record(cfg, method: str, workload: Workload, seeds: Sequence[int],
                  arrays=None) -> dict:
  """One method's heatmap over α × λ × seeds, and its analysis: a record (without the
  study, run_id, config and provenance that `run` adds). Independent of other methods."""
  alphas, lams = cfg.learning_rates(method), cfg.decays(method)
  steps = steps_per_epoch(len(workload.train[1]), cfg.batch_size)
  out, timing = sweep(cfg, method, workload, alphas, lams, seeds, arrays)
  timing["runs_in_program"] = len(alphas) * len(lams) * len(seeds)
  with warnings.catch_warnings():  # a cell where every seed diverged stays NaN
    warnings.simplefilter("ignore", RuntimeWarning)
    mean = {k: np.nanmean(v, axis=-1) for k, v in out.items()}
  return {
    "method": method,
    "convention": CONVENTIONS[method],
    "dataset_description": workload.description,
    "sizes": workload.sizes(),
    "model": f"MLP {workload.dim}-{'-'.join(map(str, cfg.hidden_sizes))}-"
             f"{workload.num_classes}, ReLU",
    "seeds": seeds,
    "epochs": cfg.epochs,
    "steps_per_epoch": steps,
    "batch_size": cfg.batch_size,
    "schedule": cfg.schedule,
    "learning_rates": list(alphas),
    "weight_decays": list(lams),
    # (α, λ, seed) grids; non-finite values (divergence) are stored as None.
    "grid": {k: v for k, v in out.items()},
    "analysis": analyze(alphas, lams, mean["val_error"], mean["test_error"]),
    "timing": timing,
  }


def table(records: list[dict]) -> str:
  """One line per method: best cell, its errors, and how λ*(α) moves with α."""
  r0 = records[0]
  sizes = r0["sizes"]
  lines = [f"{r0['dataset_description']}, train/val/test {sizes['train']}/{sizes['validation']}/"
           f"{sizes['test']}; {r0['model']}; {r0['epochs']} epochs × {r0['steps_per_epoch']} "
           f"steps, {r0['schedule']} η_t, {len(r0['seeds'])} seed(s)",
           f"  {'method':<12}{'best α':>8}{'best λ':>9}{'val err':>9}{'test err':>9}"
           f"{'slope':>8}{'corr':>7}{'regret':>8}{'λmax slope':>11}{'corr':>7}  λ*(α)"]
  for r in records:
    a = r["analysis"]
    corr, corr_max, slope, slope_max = (("—" if c is None else f"{c:+.2f}") for c in
                                        (a["lambda_star_correlation"],
                                         a["lambda_max_correlation"], a["lambda_star_slope"],
                                         a["lambda_max_slope"]))
    edge = "*" if a["at_grid_edge"] else " "
    lines.append(f"  {r['method']:<12}{a['best_learning_rate']:>8.2g}{a['best_weight_decay']:>9.2g}"
                 f"{edge}{a['best_val_error']:>8.4f}{a['best_test_error']:>9.4f}"
                 f"{slope:>8}{corr:>7}{a['fixed_lambda_regret']:>8.4f}"
                 f"{slope_max:>11}{corr_max:>7}  "
                 + " ".join(f"{v:.0e}" for v in a["lambda_star_per_alpha"]))
  lines.append("best cell by validation error (mean over seeds), * on the grid's edge; slope/corr: "
               "log10 λ*(α) against log10 α (0 = separable, −1 = diagonal); regret: mean test "
               "error lost by keeping the best cell's λ at every α instead of re-tuning λ; "
               "λmax: the largest λ within 1 point of each α's best validation error "
               "(the valley's edge)")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  start = time.perf_counter()
  records = run(cfg, args.results, seed=args.seed, restart=args.restart)
  elapsed = time.perf_counter() - start
  print(table(records))
  compile_s = sum(r["timing"]["compile_s"] for r in records)
  print(f"\n{len(records)} records appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s, "
        f"of which ~{compile_s:.1f} s compiling)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
