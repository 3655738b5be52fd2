"""adam_networks: Adam vs SGD, SGD-Nesterov, AdaGrad, RMSProp, AdaDelta on networks.

Kingma & Ba (2015), "Adam: A Method for Stochastic Optimization", Sec. 6.2-6.4:
(a) an MLP with dropout (Fig. 2) and (b) a CNN (Fig. 3), here on Fashion-MNIST,
training loss against iterations; (c) the bias-correction ablation (Fig. 4): Adam
with and without the 1/(1−βᵗ) corrections over β1 ∈ {0, 0.9}, β2 ∈ {0.99, 0.999,
0.9999} and a range of α. The claim: without correction, β2 close to 1 makes the
first steps too large (v̂ ≈ (1−β2)·t·g² is far below g²), so training is unstable
and the loss early in training is large; with correction it is not.

Protocol (DeepOBS / AlgoPerf): a validation split chooses each optimizer's α (and
nothing else) from a small log grid, by the final validation loss on the first seed;
the chosen α is reported over all seeds (seeds change the init, the minibatch order
and the dropout masks). Per network and optimizer, the α grid × seeds trains as one
compiled program: `vmap` over runs, `lax.scan` over epochs and over minibatches
(`optlab.train.make_scan_epoch`), data on the device. The ablation grid (β1 × β2 ×
α × corrected) is one more vmapped program with the hyperparameters traced.

Usage:
  python experiments/adam_networks/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure]
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, models, optim, results  # noqa: E402
from optlab.studies import config_from_args, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402
from optlab.train import make_evaluate, make_scan_epoch, make_train_step, split_model  # noqa: E402
from optlab.train.state import TrainState  # noqa: E402
from optlab.train.steps import cross_entropy  # noqa: E402

STUDY = "adam_networks"
NETWORKS = ("mlp", "cnn")
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / "adam_networks.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / "adam_networks.png"


config = load_module("optlab_adam_networks_config", HERE / "config.py")


# ----------------------------------------------------------------------------------
# Data: one subsample, the same for every network, optimizer and seed.


class Splits(NamedTuple):
  """Images (N, H, W, 1) in [0, 1] and int32 labels, and what they are."""

  description: str
  train: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray]
  test: tuple[np.ndarray, np.ndarray]

  def sizes(self) -> dict[str, int]:
    return {k: len(getattr(self, k)[1]) for k in ("train", "validation", "test")}


def _images(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  side = math.isqrt(x[0].size)
  return x.reshape(len(x), side, side, 1)


def load_splits(cfg) -> Splits:
  """Fashion-MNIST subsampled per `cfg` (or sklearn digits if it is not installed)."""
  rng = np.random.default_rng(cfg.data_seed)
  try:
    official = data.fashion_mnist(flatten=True)
    x, y = _images(official.train.x), np.asarray(official.train.y, np.int32)
    x_test, y_test = _images(official.test.x), np.asarray(official.test.y, np.int32)
    description = "Fashion-MNIST 28×28 in [0, 1]"
  except FileNotFoundError as error:
    print(f"adam_networks: Fashion-MNIST not found ({error}); falling back to sklearn digits "
          "(install it with `apt-get install dataset-fashion-mnist`)", file=sys.stderr)
    ds = data.digits()
    x, y = _images(np.asarray(ds.x) / max(1.0, float(np.max(ds.x)))), np.asarray(ds.y, np.int32)
    order = rng.permutation(len(y))
    cut = len(y) // 5
    x_test, y_test = x[order[:cut]], y[order[:cut]]
    x, y = x[order[cut:]], y[order[cut:]]
    description = "sklearn digits 8×8 in [0, 1] (Fashion-MNIST fallback)"
  order = rng.permutation(len(y))
  val_size = min(cfg.val_size, len(y) // 5)
  val, rest = order[:val_size], order[val_size:]
  train = rest if cfg.train_size is None else rest[: cfg.train_size]
  test = rng.permutation(len(y_test))[: cfg.test_size]
  return Splits(description, (x[train], y[train]), (x[val], y[val]),
                (x_test[test], y_test[test]))


def network_splits(cfg, network: str, splits: Splits) -> Splits:
  """`splits` with the training set cut to cfg.cnn_train_size for the CNN (if set)."""
  if network != "cnn" or cfg.cnn_train_size is None:
    return splits
  x, y = splits.train
  return splits._replace(train=(x[: cfg.cnn_train_size], y[: cfg.cnn_train_size]))


# ----------------------------------------------------------------------------------
# Models and the vectorized sweep.


def make_model(cfg, network: str, image_shape: tuple[int, ...], num_classes: int,
               seed: int) -> nnx.Module:
  """The network of panel `network`, initialized from `seed` (dropout keys too)."""
  rngs = nnx.Rngs(seed)
  if network == "mlp":
    dim = int(np.prod(image_shape))
    return _Flatten(models.MLP(dim, list(cfg.mlp_hidden), num_classes,
                               dropout=cfg.mlp_dropout, rngs=rngs))
  if network == "cnn":
    # input_size: the head sees the flattened pooled maps (without it, the CNN
    # averages them globally, which learns far more slowly here).
    return models.CNN(image_shape[-1], num_classes, channels=tuple(cfg.cnn_channels),
                      hidden=tuple(cfg.cnn_hidden), input_size=tuple(image_shape[:2]),
                      rngs=rngs)
  raise ValueError(f"make_model: unknown network {network!r}; expected one of {NETWORKS}")


class _Flatten(nnx.Module):
  """Feeds (N, H, W, C) images to an MLP as (N, H·W·C) vectors."""

  def __init__(self, inner: nnx.Module):
    self.inner = inner

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.inner(x.reshape(x.shape[0], -1))


def accuracy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  return jnp.mean(jnp.argmax(logits, axis=-1) == labels)


def stack_models(cfg, network: str, splits: Splits, seeds: Sequence[int]):
  """(train graphdef, eval graphdef, params, rest) with a leading seed axis on the states."""
  x, y = splits.train
  num_classes = int(max(y.max(), splits.validation[1].max(), splits.test[1].max())) + 1
  parts = [split_model(make_model(cfg, network, x.shape[1:], num_classes, s)) for s in seeds]
  train_def, eval_def = parts[0][0], parts[0][1]
  params = jax.tree.map(lambda *a: jnp.stack(a), *[p[2] for p in parts])
  rest = jax.tree.map(lambda *a: jnp.stack(a), *[p[3] for p in parts])
  return train_def, eval_def, params, rest


def union_optimizer(names: Sequence[str], alpha: jax.Array,
                    index: jax.Array) -> optax.GradientTransformation:
  """The registry optimizer `names[index]` at step size `alpha`, both traced.

  The state holds every optimizer's state (same structure whatever the index), and
  `lax.switch` runs only the chosen one's update, so the whole comparison of a network
  compiles once (under `vmap` the switch becomes a select that computes all of them,
  cheap next to the network's forward and backward passes).
  """
  txs = [optim.get(name, learning_rate=alpha) for name in names]

  def init_fn(params):
    return tuple(tx.init(params) for tx in txs)

  def branch(i):
    def apply(operands):
      updates, state, params = operands
      direction, new = txs[i].update(updates, state[i], params)
      return direction, tuple(new if j == i else s for j, s in enumerate(state))
    return apply

  def update_fn(updates, state, params=None):
    return jax.lax.switch(index, [branch(i) for i in range(len(txs))], (updates, state, params))

  return optax.GradientTransformation(init_fn, update_fn)


class Runs(NamedTuple):
  """The flat list of runs of one network: optimizer index, α and seed index per run."""

  optimizer: np.ndarray
  alpha: np.ndarray
  seed: np.ndarray


def make_runs(rows: Sequence[tuple[int, float, int]]) -> Runs:
  """Runs from (optimizer index, α, seed index) rows."""
  o, a, j = zip(*rows, strict=True)
  return Runs(np.asarray(o, np.int32), np.asarray(a, np.float32), np.asarray(j, np.int32))


def sweep(cfg, network: str, runs: Runs, seeds: Sequence[int],
          splits: Splits) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Trains the `runs` (optimizer, α, seed) of `cfg` on `network` as one compiled program.

  Returns arrays with a leading run axis: "losses" (per-step minibatch
  training loss, dropout on), "val_loss", "val_accuracy", "test_loss", "test_accuracy",
  "skipped"; and the timing (compile and execution seconds). The MLP's runs are
  `vmap`ped; the CNN's run one after another (`lax.map`): a vmapped convolution with
  per-run kernels is a grouped convolution, several times slower on CPU.
  """
  train_def, eval_def, params, rest = stack_models(cfg, network, splits, seeds)
  epochs = cfg.mlp_epochs if network == "mlp" else cfg.cnn_epochs
  evaluate = make_evaluate(eval_def, cross_entropy, {"accuracy": accuracy}, 500)
  splits = network_splits(cfg, network, splits)
  names = [name for name, _ in cfg.optimizers]
  arrays = [jax.device_put(a) for pair in (splits.train, splits.validation, splits.test)
            for a in pair]

  def one_run(run, x, y, xv, yv, xt, yt):
    index, alpha, params, rest, key = run
    # Built inside the traced function: α is a tracer (optlab's validation skips those).
    tx = union_optimizer(names, alpha, index)
    step = make_train_step(train_def, tx, cross_entropy, skip_nonfinite=True)
    epoch = make_scan_epoch(step, cfg.batch_size)
    state = TrainState(step=jnp.zeros([], jnp.int32), params=params, model_state=rest,
                       opt_state=tx.init(params), skipped=jnp.zeros([], jnp.int32))

    def body(state, e):
      return epoch(state, x, y, jax.random.fold_in(key, e))

    state, losses = jax.lax.scan(body, state, jnp.arange(epochs))
    val = evaluate(state.params, state.model_state, xv, yv)
    test = evaluate(state.params, state.model_state, xt, yt)
    return {"losses": losses.reshape(-1), "val_loss": val["loss"],
            "val_accuracy": val["accuracy"], "test_loss": test["loss"],
            "test_accuracy": test["accuracy"], "skipped": state.skipped}

  def program(run, *arrays):
    if network == "mlp":
      return jax.vmap(lambda r: one_run(r, *arrays))(run)
    return jax.lax.map(lambda r: one_run(r, *arrays), run)

  keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(s), 1))(
    jnp.asarray(seeds)[runs.seed])
  pick = jnp.asarray(runs.seed)
  run = (jnp.asarray(runs.optimizer), jnp.asarray(runs.alpha),
         jax.tree.map(lambda a: a[pick], params), jax.tree.map(lambda a: a[pick], rest), keys)
  start = time.perf_counter()
  compiled = jax.jit(program).lower(run, *arrays).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(run, *arrays))
  run_s = time.perf_counter() - start
  return {k: np.asarray(v) for k, v in out.items()}, {"compile_s": compile_s, "run_s": run_s}


def select(alphas: Sequence[float], val_losses: np.ndarray) -> dict[str, Any]:
  """The α of least final validation loss (non-finite losses never win)."""
  losses = np.asarray(val_losses, np.float64)
  if not np.isfinite(losses).any():
    raise RuntimeError(f"select: every α diverged (validation losses {losses.tolist()})")
  index = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
  return {"learning_rate": float(alphas[index]), "index": index,
          "grid": [float(a) for a in alphas],
          "val_loss": [float(v) if np.isfinite(v) else None for v in losses],
          "at_grid_edge": len(alphas) > 1 and index in (0, len(alphas) - 1)}


# ----------------------------------------------------------------------------------
# The bias-correction ablation.


class ScaleByAdamBiasState(NamedTuple):
  """State of `scale_by_adam_bias`: the step count and the two moment estimates."""

  count: jax.Array  # int32 scalar
  mu: Any
  nu: Any


def scale_by_adam_bias(b1: float | jax.Array = 0.9, b2: float | jax.Array = 0.999,
                       eps: float | jax.Array = 1e-8,
                       bias_correction: bool | jax.Array = True) -> optax.GradientTransformation:
  """Adam's direction with the bias correction on or off (a traceable switch).

  m_t = β1 m_{t-1} + (1−β1) g_t,  v_t = β2 v_{t-1} + (1−β2) g_t²,
  u_t = m̂_t / (√v̂_t + ε) with m̂_t = m_t / (1−β1ᵗ), v̂_t = v_t / (1−β2ᵗ) when corrected,
  and m̂_t = m_t, v̂_t = v_t when not (Kingma & Ba 2015, Sec. 3 and 6.4).

  optax 0.2.8's `scale_by_adam` has no switch for the correction, and the ablation
  vmaps over it, so `bias_correction` may be a traced 0/1 value. Corrected, this is
  `optax.scale_by_adam(b1, b2, eps)`. Chain with `optax.scale_by_learning_rate(α)`.

  Args:
    b1, b2: the decay rates of the two moments, in [0, 1).
    eps: added to √v̂ (outside the root, as in the paper).
    bias_correction: divide by 1−βᵗ (True / 1) or not (False / 0).

  Returns:
    An `optax.GradientTransformation`.
  """

  def init_fn(params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return ScaleByAdamBiasState(count=jnp.zeros([], jnp.int32), mu=zeros, nu=zeros)

  def update_fn(updates, state, params=None):
    del params
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, state.nu, updates)
    count = state.count + 1
    t = count.astype(jnp.float32)
    on = jnp.asarray(bias_correction, jnp.float32)
    mu_scale = on * (1 - jnp.asarray(b1, jnp.float32) ** t) + (1 - on)
    nu_scale = on * (1 - jnp.asarray(b2, jnp.float32) ** t) + (1 - on)
    direction = jax.tree.map(
      lambda m, v: (m / mu_scale) / (jnp.sqrt(v / nu_scale) + eps), mu, nu)
    return direction, ScaleByAdamBiasState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


def bias_grid(cfg) -> dict[str, np.ndarray]:
  """The flat (β1, β2, α, corrected) grid of the ablation, in that nesting order."""
  b1, b2, lr, on = np.meshgrid(cfg.bc_b1s, cfg.bc_b2s, cfg.bc_learning_rates, (1.0, 0.0),
                               indexing="ij")
  return {"b1": b1.ravel(), "b2": b2.ravel(), "learning_rate": lr.ravel(),
          "bias_correction": on.ravel()}


def bias_sweep(cfg, splits: Splits, seed: int) -> tuple[dict, np.ndarray, dict[str, float]]:
  """Trains the whole ablation grid as one vmapped program (same init and batch order).

  Returns the grid, the training loss (on bc_eval_size training examples, no dropout)
  at steps 0, k, 2k, ..., bc_steps (k = bc_record_every), shape (runs, points), and
  the timing. Non-finite steps are applied (no skipping), so instability shows.
  """
  x, y = splits.train
  x, y = x[: cfg.bc_train_size], y[: cfg.bc_train_size]
  xe, ye = jax.device_put(x[: cfg.bc_eval_size]), jax.device_put(y[: cfg.bc_eval_size])
  num_classes = int(splits.train[1].max()) + 1
  model = _Flatten(models.MLP(int(np.prod(x.shape[1:])), list(cfg.bc_hidden), num_classes,
                              rngs=nnx.Rngs(seed)))
  train_def, eval_def, params, rest = split_model(model)
  evaluate = make_evaluate(eval_def, cross_entropy, {}, 1000)
  chunks = cfg.bc_steps // cfg.bc_record_every
  per_epoch = len(y) // cfg.bc_batch_size
  epochs = -(-cfg.bc_steps // per_epoch)
  key = jax.random.key(seed)
  order = jnp.concatenate([
    jax.random.permutation(jax.random.fold_in(key, e), len(y))[: per_epoch * cfg.bc_batch_size]
    for e in range(epochs)])[: chunks * cfg.bc_record_every * cfg.bc_batch_size]
  order = order.reshape(chunks, cfg.bc_record_every, cfg.bc_batch_size)
  xd, yd = jax.device_put(x), jax.device_put(y)

  def one_run(b1, b2, alpha, on):
    tx = optax.chain(scale_by_adam_bias(b1, b2, cfg.bc_eps, on),
                     optax.scale_by_learning_rate(alpha))
    step = make_train_step(train_def, tx, cross_entropy, skip_nonfinite=False)
    state = TrainState(step=jnp.zeros([], jnp.int32), params=params, model_state=rest,
                       opt_state=tx.init(params), skipped=jnp.zeros([], jnp.int32))

    def inner(state, idx):
      return step(state, jnp.take(xd, idx, axis=0), jnp.take(yd, idx, axis=0))

    def outer(state, idx):
      state, _ = jax.lax.scan(inner, state, idx)
      return state, evaluate(state.params, state.model_state, xe, ye)["loss"]

    first = evaluate(state.params, state.model_state, xe, ye)["loss"]
    _, losses = jax.lax.scan(outer, state, order)
    return jnp.concatenate([first[None], losses])

  grid = bias_grid(cfg)
  args = [jnp.asarray(grid[k], jnp.float32) for k in ("b1", "b2", "learning_rate",
                                                       "bias_correction")]
  start = time.perf_counter()
  compiled = jax.jit(jax.vmap(one_run)).lower(*args).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  losses = np.asarray(jax.block_until_ready(compiled(*args)))
  run_s = time.perf_counter() - start
  return grid, losses, {"compile_s": compile_s, "run_s": run_s}


# ----------------------------------------------------------------------------------
# The study.


def _finite(values) -> list[float | None]:
  return [float(v) if np.isfinite(v) else None for v in np.asarray(values).ravel()]


def network_records(cfg, network: str, seeds: Sequence[int], splits) -> list[dict]:
  """The comparison on one network: its records (without the study, run_id, config and
  provenance that `run` adds), one per (optimizer, seed). Independent of other networks."""
  records = []
  epochs = cfg.mlp_epochs if network == "mlp" else cfg.cnn_epochs
  steps = len(network_splits(cfg, network, splits).train[1]) // cfg.batch_size
  # Phase 1: every α of every optimizer on the tuning seed; phase 2: the chosen α of
  # each on the other seeds (one compiled program each).
  grid = make_runs([(i, a, 0) for i, (_, alphas) in enumerate(cfg.optimizers)
                    for a in alphas])
  out, timing = sweep(cfg, network, grid, seeds, splits)
  choices = []
  for i, (_, alphas) in enumerate(cfg.optimizers):
    mine = np.flatnonzero(grid.optimizer == i)
    choices.append(select(alphas, out["val_loss"][mine]))
  index = {(i, 0): int(np.flatnonzero(grid.optimizer == i)[c["index"]])
           for i, c in enumerate(choices)}
  if len(seeds) > 1:
    rerun = make_runs([(i, c["learning_rate"], j) for i, c in enumerate(choices)
                       for j in range(1, len(seeds))])
    more, timing2 = sweep(cfg, network, rerun, seeds, splits)
    offset = len(grid.alpha)
    out = {k: np.concatenate([out[k], more[k]]) for k in out}
    index.update({(int(o), int(j)): offset + n
                  for n, (o, j) in enumerate(zip(rerun.optimizer, rerun.seed, strict=True))})
    timing = {k: timing[k] + timing2[k] for k in timing}
    timing["runs_in_program"] = len(grid.alpha) + len(rerun.alpha)
  else:
    timing["runs_in_program"] = len(grid.alpha)
  for i, (optimizer, _) in enumerate(cfg.optimizers):
    choice = choices[i]
    for j, s in enumerate(seeds):
      k = index[(i, j)]
      losses = out["losses"][k]
      records.append({
        "kind": "comparison", "network": network, "optimizer": optimizer,
        "dataset_description": splits.description,
        "sizes": network_splits(cfg, network, splits).sizes(),
        "seed": s, "tuning_seed": seeds[0],
        "hyperparameters": {**optim.info(optimizer).defaults,
                            "learning_rate": choice["learning_rate"]},
        "batch_size": cfg.batch_size, "epochs": epochs, "steps_per_epoch": steps,
        "curve": {"iterations": np.arange(1, len(losses) + 1), "train_loss": _finite(losses)},
        # The last epoch's mean minibatch loss (dropout on): the end of the curve.
        "final_train_loss": float(np.mean(losses[-steps:])),
        "val_loss": float(out["val_loss"][k]),
        "val_accuracy": float(out["val_accuracy"][k]),
        "test_loss": float(out["test_loss"][k]),
        "test_accuracy": float(out["test_accuracy"][k]),
        "skipped_steps": int(out["skipped"][k]),
        "timing": timing, "selection": choice,
      })
  return records


def bias_records(cfg, splits, seed: int) -> list[dict]:
  """The bias-correction ablation: its records (without what `run` adds), one per
  (β1, β2, α, corrected)."""
  records = []
  grid, losses, timing = bias_sweep(cfg, splits, seed)
  points = np.arange(losses.shape[1]) * cfg.bc_record_every
  timing["runs_in_program"] = len(grid["b1"])
  for r in range(len(grid["b1"])):
    records.append({
      "kind": "bias_correction", "network": "mlp_bc",
      "dataset_description": splits.description, "seed": seed,
      "train_size": min(cfg.bc_train_size, len(splits.train[1])),
      "b1": float(grid["b1"][r]), "b2": float(grid["b2"][r]),
      "learning_rate": float(grid["learning_rate"][r]), "eps": cfg.bc_eps,
      "bias_correction": bool(grid["bias_correction"][r]),
      "batch_size": cfg.bc_batch_size,
      "curve": {"steps": points, "train_loss": _finite(losses[r])},
      "steps": int(points[-1]),
      "final_train_loss": _finite(losses[r, -1:])[0],
      "timing": timing,
    })
  return records


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Runs both comparisons and the ablation; appends and returns the records.

  Records: kind "comparison", one per (network, optimizer, seed) at the chosen α, with
  the per-step training-loss curve and final metrics; kind "bias_correction", one per
  (β1, β2, α, corrected) with the loss curve every bc_record_every steps. Each
  network's records, and the ablation's, are saved as soon as they are done
  (optlab.study_progress): a killed run started again with the same config and seed
  goes on from there, with the same run_id (`restart` discards it instead).
  """
  unknown = [n for n in cfg.networks if n not in NETWORKS]
  if unknown:
    raise ValueError(f"run: unknown networks {unknown}; expected some of {NETWORKS}")
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  run_id = progress.run_id
  common = {"study": STUDY, "run_id": run_id, "config": cfg._asdict(),
            "provenance": results.provenance()}
  seeds = [seed + i for i in range(cfg.num_seeds)]
  splits = load_splits(cfg)
  records = []
  for network in cfg.networks:
    records += [{**common, **r}
                for r in progress.unit(network, network_records, cfg, network, seeds, splits)]
  records += [{**common, **r} for r in progress.unit("bias_correction", bias_records, cfg,
                                                     splits, seed)]
  progress.finish(records)
  return records


# ----------------------------------------------------------------------------------
# Report.


LABELS = {"sgd": "SGD", "nesterov": "SGD-Nesterov", "adagrad": "AdaGrad",
          "rmsprop": "RMSProp", "adadelta": "AdaDelta", "adam": "Adam"}
LOSS_CAP = 1e3  # a non-finite loss counts as this large in the ratios


def bias_ratios(records: list[dict]) -> dict[tuple[float, float, float], float]:
  """Uncorrected / corrected final loss per (β1, β2, α) (non-finite: LOSS_CAP)."""
  bc = [r for r in records if r["kind"] == "bias_correction"]
  loss = {(r["b1"], r["b2"], r["learning_rate"], r["bias_correction"]):
          LOSS_CAP if r["final_train_loss"] is None else r["final_train_loss"] for r in bc}
  return {k[:3]: loss[(*k[:3], False)] / loss[(*k[:3], True)] for k in loss if k[3]}


def best_losses(records: list[dict]) -> dict[tuple[float, float, bool], float]:
  """The least final loss over α per (β1, β2, corrected) (non-finite: LOSS_CAP)."""
  best: dict[tuple[float, float, bool], float] = {}
  for r in records:
    if r["kind"] == "bias_correction":
      key = (r["b1"], r["b2"], r["bias_correction"])
      loss = LOSS_CAP if r["final_train_loss"] is None else r["final_train_loss"]
      best[key] = min(best.get(key, np.inf), loss)
  return best


def table(records: list[dict]) -> str:
  lines = []
  comp = [r for r in records if r["kind"] == "comparison"]
  for network in [n for n in NETWORKS if any(r["network"] == n for r in comp)]:
    group = [r for r in comp if r["network"] == network]
    r0 = group[0]
    s = r0["sizes"]
    lines.append(f"{network}: {r0['dataset_description']}; train/val/test "
                 f"{s['train']}/{s['validation']}/{s['test']}, {r0['epochs']} epochs × "
                 f"{r0['steps_per_epoch']} steps, {len({r['seed'] for r in group})} seeds")
    lines.append(f"  {'optimizer':<13}{'α':>8}  {'final train loss':>26}{'val loss':>10}"
                 f"{'test acc':>10}")
    for optimizer in dict.fromkeys(r["optimizer"] for r in group):
      runs = [r for r in group if r["optimizer"] == optimizer]
      loss = np.array([r["final_train_loss"] for r in runs])
      edge = "*" if runs[0]["selection"]["at_grid_edge"] else " "
      lines.append(f"  {LABELS.get(optimizer, optimizer):<13}"
                   f"{runs[0]['hyperparameters']['learning_rate']:>8g}{edge} "
                   f"{loss.mean():>10.4f} [{loss.min():.4f}, {loss.max():.4f}]"
                   f"{np.mean([r['val_loss'] for r in runs]):>10.4f}"
                   f"{np.mean([r['test_accuracy'] for r in runs]):>10.4f}")
    lines.append("")
  bc = [r for r in records if r["kind"] == "bias_correction"]
  if bc:
    ratios = bias_ratios(records)
    hidden = bc[0]["config"]["bc_hidden"]
    lines.append(f"bias correction: loss after {bc[0]['steps']} steps (MLP {hidden}, "
                 f"{bc[0]['train_size']} examples), uncorrected / corrected, per α")
    alphas = sorted({k[2] for k in ratios})
    lines.append(f"  {'β1':>4} {'β2':>7}  " + "".join(f"{a:>9g}" for a in alphas)
                 + f"{'max':>9}{'best α: corr':>14}{'uncorr':>8}{'ratio':>7}")
    best = best_losses(records)
    for b1 in sorted({k[0] for k in ratios}):
      for b2 in sorted({k[1] for k in ratios}):
        row = [ratios[(b1, b2, a)] for a in alphas]
        on, off = best[(b1, b2, True)], best[(b1, b2, False)]
        lines.append(f"  {b1:>4g} {b2:>7g}  " + "".join(f"{v:>9.2f}" for v in row)
                     + f"{max(row):>9.2f}{on:>14.4f}{off:>8.4f}{off / on:>7.2f}")
    lines.append("")
  lines.append("final train loss: mean [min, max] over seeds of the last epoch's mean "
               "minibatch loss (dropout on); val loss, test acc: mean; * α at its grid's edge")
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
  timings = {r["network"]: r["timing"] for r in records}
  compile_s = sum(t["compile_s"] for t in timings.values())
  where = f"appended to {results_path}" if results_path is not None else "not saved"
  print(f"\n{len(records)} records {where} ({cfg.name} mode, {elapsed:.1f} s, of which "
        f"~{compile_s:.1f} s compiling)")
  if figure_path is not None and results_path is not None:
    drawing = load_module("optlab_paper_figure_adam_networks",
                            REPO / "paper_figures" / "adam_networks.py")
    path = drawing.draw(results_path, figure_path, run_id=records[0]["run_id"])
    print(f"figure: {path}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
