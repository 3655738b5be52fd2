"""optimizer_benchmark: optimizers at their defaults vs tuned Adam and Nesterov, on 4 workloads.

Schmidt, Schneider & Hennig (2021), "Descending through a Crowded Valley", and AlgoPerf
(Dahl et al. 2023), in small: eight optimizers of the registry at their default
hyperparameters, against Adam and Nesterov tuned by quasi-random (scrambled Sobol)
search on the validation metric, on a noisy quadratic, an MLP on MNIST-1D, an MLP on
Fashion-MNIST and a character-level GRU language model. Reported: learning curves (mean
and spread over seeds), time-to-target in optimizer steps, a rank table and
performance profiles with the AlgoPerf benchmark score (optlab.tune.targets).

Every run of a workload — all optimizers, all seeds, and all tuning trials — trains in
ONE compiled program: each run carries every optimizer's state, updates it with its
own optimizer (picked by an index, the others' updates are discarded), and the runs
are vmapped; lax.scan runs the epochs and the steps.

Usage:
  python experiments/optimizer_benchmark/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure] [--restart]

Each workload's records are saved as soon as it is done: a killed run, started again
with the same arguments, resumes where it stopped (--restart discards it instead).
"""

from __future__ import annotations

import importlib.util
import math
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
from jax.flatten_util import ravel_pytree

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, models, optim, problems, results  # noqa: E402
from optlab.metrics.losses import integer_label_cross_entropy  # noqa: E402
from optlab.optim.space import SearchSpace  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.study_progress import Progress  # noqa: E402
from optlab.tune import targets  # noqa: E402

STUDY = "optimizer_benchmark"
WORKLOADS = ("noisy_quadratic", "mnist1d_mlp", "fashion_mlp", "char_lm")
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
# A diverged tuning trial scores this (finite, so that the quasi-random sequence is the
# same in the recording pass and the scoring pass; see `tune`).
DIVERGED = 1e30

# XLA:CPU without its expensive LLVM passes: about half the compile time of these
# programs, the same numbers and about the same speed (measured on 2 CPU cores).
COMPILER_OPTIONS = {"xla_llvm_disable_expensive_passes": True}

config = load_module("optlab_optimizer_benchmark_config", HERE / "config.py")


# ----------------------------------------------------------------------------------
# Workloads: data + model + loss + metric, as pure functions of the parameters.


class Workload(NamedTuple):
  """One workload, ready to train.

  `grad(params, item, arrays)` is a stochastic gradient for one scan item (a batch's
  indices, or a PRNG key); `items(key, arrays)` the `steps_per_eval` items of one
  evaluation interval; `evaluate(params, arrays)` -> (validation metric, test metric).
  """

  name: str
  description: str
  model: str
  metric: str
  init: Callable[[int], Any]
  grad: Callable[..., Any]
  items: Callable[..., Any]
  evaluate: Callable[..., tuple[jax.Array, jax.Array]]
  arrays: tuple[jax.Array, ...]
  steps_per_eval: int
  num_evals: int
  sizes: dict[str, int]


def _classification(name, description, model_description, make_model, splits, batch,
                    steps, eval_every) -> Workload:
  """A classifier trained with cross-entropy, judged by the validation error rate."""
  from flax import nnx

  (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = splits
  graphdef = nnx.split(make_model(0))[0]

  def init(seed):
    return nnx.to_pure_dict(nnx.split(make_model(seed))[1])

  def forward(params, x):
    return nnx.merge(graphdef, params, copy=True)(x)

  def loss(params, x, y):
    logits = forward(params, x)
    return jnp.mean(integer_label_cross_entropy(logits, y))

  def grad(params, idx, arrays):
    return jax.grad(loss)(params, arrays[0][idx], arrays[1][idx])

  items = _shuffled_batches(len(y_tr), batch, eval_every, name)

  def error(params, x, y):
    return jnp.mean(jnp.argmax(forward(params, x), axis=-1) != y)

  def evaluate(params, arrays):
    return error(params, arrays[2], arrays[3]), error(params, arrays[4], arrays[5])

  arrays = tuple(jax.device_put(a) for a in (x_tr, y_tr, x_val, y_val, x_te, y_te))
  return Workload(name, description, model_description, "validation error", init, grad, items,
                  evaluate, arrays, eval_every, _num_evals(steps, eval_every, name),
                  {"train": len(y_tr), "validation": len(y_val), "test": len(y_te)})


def _shuffled_batches(n: int, batch: int, eval_every: int, name: str) -> Callable:
  """items(key, arrays): the `eval_every` minibatches (index arrays) of one interval.

  Each interval between evaluations takes its batches from a fresh permutation of the
  training set, so no example repeats within an interval (random reshuffling).
  """
  if eval_every * batch > n:
    raise ValueError(f"{name}: eval_every × batch = {eval_every * batch} exceeds the {n} "
                     "training examples; evaluate more often or use smaller batches")

  def items(key, arrays):
    del arrays
    return jax.random.permutation(key, n)[: eval_every * batch].reshape(eval_every, batch)

  return items


def _num_evals(steps: int, eval_every: int, name: str) -> int:
  if steps < eval_every or steps % eval_every:
    raise ValueError(f"{name}: steps ({steps}) must be a positive multiple of eval_every "
                     f"({eval_every})")
  return steps // eval_every


def _split(x: np.ndarray, y: np.ndarray, n_val: int, n_test: int, seed: int):
  """A stratified (train, validation, test) split of (x, y)."""
  held = data.train_val_test_split((x, y), n_val / len(y), n_test / len(y), seed)
  return tuple((np.asarray(s.x, np.float32), np.asarray(s.y, np.int32))
               for s in (held.train, held.validation, held.test))


def mnist1d_workload(cfg) -> Workload:
  """MNIST-1D signals (length 40), standardized; an MLP with ReLU."""
  from flax import nnx

  splits = data.mnist1d(num_samples=cfg.mnist1d_samples, seed=0)
  x = np.concatenate([splits.train.x, splits.test.x])
  y = np.concatenate([splits.train.y, splits.test.y])
  n = len(y)
  train, val, test = _split(x, y, n // 5, n // 5, 0)
  scaler = data.Standardizer.fit(train[0])
  prep = [(np.asarray(scaler.apply(a), np.float32), b) for a, b in (train, val, test)]
  hidden = cfg.mnist1d_hidden
  return _classification(
      "mnist1d_mlp", f"MNIST-1D ({n} signals of length 40, standardized)",
      f"MLP 40-{'-'.join(map(str, hidden))}-10, ReLU",
      lambda s: models.MLP(40, hidden, 10, rngs=nnx.Rngs(s)), prep, cfg.mnist1d_batch,
      cfg.mnist1d_steps, cfg.eval_every)


def fashion_workload(cfg) -> Workload:
  """Fashion-MNIST subsamples (sklearn digits if it is missing), standardized; an MLP."""
  from flax import nnx

  try:
    official = data.fashion_mnist(flatten=True)
    x, y = np.asarray(official.train.x, np.float32), np.asarray(official.train.y, np.int32)
    x_te, y_te = np.asarray(official.test.x, np.float32), np.asarray(official.test.y, np.int32)
    description = "Fashion-MNIST (784 pixels, standardized)"
  except FileNotFoundError as error:
    print(f"{STUDY}: Fashion-MNIST not found ({error}); using sklearn digits instead")
    digits = data.digits(flatten=True)
    x, y = np.asarray(digits.x, np.float32), np.asarray(digits.y, np.int32)
    x, x_te, y, y_te = x[:1400], x[1400:], y[:1400], y[1400:]
    description = "sklearn digits (64 pixels, standardized; Fashion-MNIST missing)"
  if cfg.fashion_pool > 1 and x.shape[1] == 784:  # k×k average pooling of the 28×28 images
    k = cfg.fashion_pool
    pool = lambda a: a.reshape(len(a), 28 // k, k, 28 // k, k).mean(axis=(2, 4)).reshape(  # noqa: E731
        len(a), -1)
    x, x_te = pool(x), pool(x_te)
    description = f"Fashion-MNIST ({28 // k}×{28 // k} average-pooled, standardized)"
  rng = np.random.default_rng(0)
  pick = rng.permutation(len(y))[: cfg.fashion_train + cfg.fashion_val]
  pick_te = rng.permutation(len(y_te))[: cfg.fashion_test]
  n_val = min(cfg.fashion_val, len(pick) // 3)
  train = (x[pick[n_val:]], y[pick[n_val:]])
  val = (x[pick[:n_val]], y[pick[:n_val]])
  scaler = data.Standardizer.fit(train[0])
  prep = [(np.asarray(scaler.apply(a), np.float32), np.asarray(b, np.int32))
          for a, b in (train, val, (x_te[pick_te], y_te[pick_te]))]
  dim, hidden = x.shape[1], cfg.fashion_hidden
  return _classification(
      "fashion_mlp", description, f"MLP {dim}-{'-'.join(map(str, hidden))}-10, ReLU",
      lambda s: models.MLP(dim, hidden, 10, rngs=nnx.Rngs(s)), prep, cfg.fashion_batch,
      cfg.fashion_steps, cfg.eval_every)


def char_lm_workload(cfg) -> Workload:
  """Next-character prediction on a text corpus with a one-layer GRU; validation loss."""
  from flax import nnx

  text = data.char_corpus(cfg.char_corpus, cfg.char_chars)
  tokenizer = data.CharTokenizer.fit(text)
  xs, ys = data.make_sequences(tokenizer.encode(text), cfg.char_seq_len)
  n = len(xs)  # contiguous split: validation and test text never appear in training
  cut_val, cut_test = int(0.8 * n), int(0.9 * n)
  vocab = tokenizer.vocab_size

  def make_model(seed):
    if cfg.char_model == "transformer":
      return models.TransformerLM(vocab, cfg.char_seq_len, d_model=cfg.char_hidden, num_heads=2,
                                  num_layers=1, rngs=nnx.Rngs(seed))
    return models.CharRNNLM(vocab, cfg.char_embedding, cfg.char_hidden, cell=cfg.char_model,
                            rngs=nnx.Rngs(seed))

  graphdef = nnx.split(make_model(0))[0]

  def init(seed):
    return nnx.to_pure_dict(nnx.split(make_model(seed))[1])

  def loss(params, x, y):
    logits = nnx.merge(graphdef, params, copy=True)(x)
    return jnp.mean(integer_label_cross_entropy(logits, y))

  def grad(params, idx, arrays):
    return jax.grad(loss)(params, arrays[0][idx], arrays[1][idx])

  items = _shuffled_batches(cut_val, cfg.char_batch, cfg.eval_every, "char_lm")

  def evaluate(params, arrays):
    return loss(params, arrays[2], arrays[3]), loss(params, arrays[4], arrays[5])

  arrays = tuple(jax.device_put(np.asarray(a, np.int32)) for a in (
      xs[:cut_val], ys[:cut_val], xs[cut_val:cut_test], ys[cut_val:cut_test], xs[cut_test:],
      ys[cut_test:]))
  return Workload(
      "char_lm", f"{cfg.char_corpus} text, first {len(text):,} characters (vocabulary {vocab}), "
      f"windows of {cfg.char_seq_len}",
      f"CharRNNLM: embedding {cfg.char_embedding}, GRU {cfg.char_hidden}", "validation loss "
      "(nats/char)", init, grad, items, evaluate, arrays, cfg.eval_every,
      _num_evals(cfg.char_steps, cfg.eval_every, "char_lm"),
      {"train": cut_val, "validation": cut_test - cut_val, "test": n - cut_test})


def quadratic_workload(cfg) -> Workload:
  """f(x) = ½(x − x*)ᵀA(x − x*) with N(0, σ²I) added to every gradient; metric f − f*."""
  base = problems.quadratic(cfg.quadratic_dim, cfg.quadratic_condition, spectrum="geometric",
                            key=jax.random.key(0))
  problem = problems.noisy(base, cfg.quadratic_noise)
  steps = cfg.eval_every

  def gap(params, arrays):
    del arrays
    g = problem.value(params["x"]) - problem.optimal_value
    return g, g

  return Workload(
      "noisy_quadratic",
      f"quadratic, d = {cfg.quadratic_dim}, κ = {cfg.quadratic_condition:g} (geometric "
      f"spectrum, rotated), additive gradient noise σ = {cfg.quadratic_noise:g}",
      "x ∈ R^d (start x* + a random direction of norm √d)", "f − f*",
      lambda seed: {"x": problem.init},
      lambda params, key, arrays: {"x": problem.stochastic_grad(params["x"], key)},
      lambda key, arrays: jax.random.split(key, steps), gap, (), steps,
      _num_evals(cfg.quadratic_steps, steps, "noisy_quadratic"), {"dimension": cfg.quadratic_dim})


BUILDERS = {"noisy_quadratic": quadratic_workload, "mnist1d_mlp": mnist1d_workload,
            "fashion_mlp": fashion_workload, "char_lm": char_lm_workload}


# ----------------------------------------------------------------------------------
# One compiled program per workload: every optimizer, every run, vmapped.


def traced_names(cfg) -> dict[str, tuple[str, ...]]:
  """The hyperparameters of each optimizer passed as traced (per-run) values."""
  names = dict.fromkeys(cfg.default_optimizers, ())
  for name in cfg.tuned_optimizers:
    names[name] = tuple(SearchSpace.for_optimizer(name))
  return names


def make_program(workload: Workload, traced: dict[str, tuple[str, ...]]) -> Callable:
  """jit(vmap(run)): run(index, hparams, params0, seed, arrays) -> (val curve, final test).

  The optimizers see the parameters raveled into one vector (``ravel_pytree``): the
  same update for these elementwise optimizers, and far fewer operations to compile.

  Run r trains with optimizer ``list(traced)[index[r]]`` built by ``optim.get`` with
  the hyperparameters ``hparams[name][key][r]`` (registry defaults for the others).
  Each run also carries the other optimizers' states, left at their initial value.
  """
  names = list(traced)
  unravel = ravel_pytree(workload.init(0))[1]

  def grad(flat, item, arrays):
    return ravel_pytree(workload.grad(unravel(flat), item, arrays))[0]

  def evaluate(flat, arrays):
    return workload.evaluate(unravel(flat), arrays)

  def run(index, hparams, params, seed, arrays):
    txs = [optim.get(n, **hparams[n]) for n in names]
    key = jax.random.key(seed)

    def step(carry, item):
      params, states = carry
      grads = grad(params, item, arrays)
      update, new_states = None, []
      for i, (tx, state) in enumerate(zip(txs, states, strict=True)):
        u, s = tx.update(grads, state, params)
        pick = index == i
        update = u if update is None else jax.tree.map(
            lambda a, b, pick=pick: jnp.where(pick, b, a), update, u)
        new_states.append(jax.tree.map(lambda new, old, pick=pick: jnp.where(pick, new, old),
                                       s, state))
      return (optax.apply_updates(params, update), tuple(new_states)), None

    def interval(carry, e):
      carry = jax.lax.scan(step, carry, workload.items(jax.random.fold_in(key, e), arrays))[0]
      return carry, evaluate(carry[0], arrays)[0]

    start = evaluate(params, arrays)[0]
    states = tuple(tx.init(params) for tx in txs)
    (params, _), curve = jax.lax.scan(interval, (params, states),
                                      jnp.arange(workload.num_evals))
    return jnp.concatenate([start[None], curve]), evaluate(params, arrays)[1]

  return jax.jit(jax.vmap(run, in_axes=(0, 0, 0, 0, None)))


class Row(NamedTuple):
  """One run: an optimizer (by name), its traced hyperparameters, and a seed."""

  optimizer: str
  hparams: dict[str, float]
  seed: int


class Trainer:
  """Trains lists of `Row`s of one workload with one compiled program (per batch size)."""

  def __init__(self, workload: Workload, traced: dict[str, tuple[str, ...]]):
    self.workload, self.traced = workload, traced
    self.program = make_program(workload, traced)
    self.compile_s = self.run_s = 0.0
    self._compiled: dict[int, Any] = {}
    self._inits: dict[int, Any] = {}

  def _args(self, rows: Sequence[Row]):
    names = list(self.traced)
    for r in rows:
      if r.optimizer not in self.traced:
        raise ValueError(f"Trainer: unknown optimizer {r.optimizer!r}; expected one of {names}")
    hparams = {}
    for n, keys in self.traced.items():
      defaults = optim.info(n).defaults
      hparams[n] = {k: jnp.asarray([r.hparams[k] if r.optimizer == n else defaults[k]
                                    for r in rows], jnp.float32) for k in keys}
    for r in rows:
      if r.seed not in self._inits:
        self._inits[r.seed] = ravel_pytree(self.workload.init(r.seed))[0]
    params = jax.tree.map(lambda *a: jnp.stack(a), *(self._inits[r.seed] for r in rows))
    index = jnp.asarray([names.index(r.optimizer) for r in rows], jnp.int32)
    seeds = jnp.asarray([r.seed for r in rows], jnp.uint32)
    return index, hparams, params, seeds, self.workload.arrays

  def __call__(self, rows: Sequence[Row]) -> tuple[np.ndarray, np.ndarray]:
    """(validation curves (runs, evaluations + 1), final test metric (runs,))."""
    args = self._args(rows)
    if len(rows) not in self._compiled:
      start = time.perf_counter()
      self._compiled[len(rows)] = self.program.lower(*args).compile(COMPILER_OPTIONS)
      self.compile_s += time.perf_counter() - start
    start = time.perf_counter()
    curves, test = jax.block_until_ready(self._compiled[len(rows)](*args))
    self.run_s += time.perf_counter() - start
    return np.asarray(curves, np.float64), np.asarray(test, np.float64)


# ----------------------------------------------------------------------------------
# Tuning: quasi-random search, all trials trained at once.


def tune(cfg, trainer: Trainer, seed: int, *, pad_to: int = 0) -> dict[str, dict[str, Any]]:
  """Quasi-random search of each tuned optimizer's space on the validation metric.

  Sobol points do not depend on the values seen, so each search runs twice through
  ``optlab.tune.search.search``: once to record its configurations (every value 0),
  then, after all trials of all tuned optimizers have trained as one vmapped batch on
  the tuning seed, again with the same seed, reading each trial's final validation
  metric (a diverged trial scores `DIVERGED`). The batch is padded to `pad_to` runs
  with copies of the last trial, so that it can share the final runs' program.
  """
  from optlab.tune.search import search

  plans, rows = {}, []
  for name in cfg.tuned_optimizers:
    space = SearchSpace.for_optimizer(name)
    recorded = []

    def record(config, trial, recorded=recorded):
      del trial
      recorded.append(dict(config))
      return 0.0

    with warnings.catch_warnings():
      warnings.simplefilter("ignore")  # Optuna's QMCSampler is marked experimental
      search(record, space, strategy="quasi_random", n_trials=cfg.n_trials,
             seed=cfg.search_seed)
    plans[name] = (space, recorded, len(rows))
    rows += [Row(name, c, seed) for c in recorded]
  n = len(rows)
  rows += [rows[-1]] * max(0, pad_to - n)
  curves, _ = trainer(rows)
  final = curves[:n, -1]
  out = {}
  for name, (space, recorded, offset) in plans.items():
    values = [float(v) if math.isfinite(v) else DIVERGED
              for v in final[offset: offset + len(recorded)]]

    def lookup(config, trial, recorded=recorded, values=values):
      expected = recorded[trial.number]
      if any(not math.isclose(config[k], expected[k], rel_tol=1e-12) for k in expected):
        raise RuntimeError(f"tune: trial {trial.number} drew {config}, not the recorded "
                           f"{expected}; the quasi-random sequence changed between passes")
      return values[trial.number]

    with warnings.catch_warnings():
      warnings.simplefilter("ignore")
      result = search(lookup, space, strategy="quasi_random", n_trials=cfg.n_trials,
                      seed=cfg.search_seed)
    out[name] = {
      "space": {k: repr(v) for k, v in space.items()},
      "best_config": {k: float(v) for k, v in result.best_config.items()},
      "best_value": float(result.best_value),
      "trials": [{"config": c, "value": v if v < DIVERGED else None}
                 for c, v in zip(recorded, values, strict=True)],
    }
  return out


# ----------------------------------------------------------------------------------
# The study.


def submissions(cfg) -> list[tuple[str, str, bool]]:
  """(submission name, optimizer, tuned) for every default and every tuned optimizer."""
  return ([(n, n, False) for n in cfg.default_optimizers]
          + [(f"{n}_tuned", n, True) for n in cfg.tuned_optimizers])


def median_steps(hits: Sequence[int | None]) -> float:
  """The median over seeds of the steps to target (a seed that never got there: inf)."""
  return float(np.median([math.inf if h is None else h for h in hits]))


def run_workload(cfg, name: str, seeds: Sequence[int], common: dict) -> list[dict]:
  """Tunes, runs every submission on every seed, and scores one workload."""
  workload = BUILDERS[name](cfg)
  traced = traced_names(cfg)
  trainer = Trainer(workload, traced)
  subs = submissions(cfg)
  tuning = tune(cfg, trainer, seeds[0] + cfg.tuning_seed_offset,
                pad_to=len(subs) * len(seeds))
  defaults = {n: {k: float(optim.info(n).defaults[k]) for k in keys} for n, keys in
              traced.items()}
  rows = [Row(opt, tuning[opt]["best_config"] if tuned else defaults[opt], s)
          for _, opt, tuned in subs for s in seeds]
  curves, test = trainer(rows)
  steps = (np.arange(workload.num_evals + 1) * workload.steps_per_eval).tolist()
  by_sub = {sub: (curves[i * len(seeds):(i + 1) * len(seeds)],
                  test[i * len(seeds):(i + 1) * len(seeds)]) for i, (sub, _, _) in
            enumerate(subs)}
  # The target: the worse tuned baseline's median-over-seeds best validation value, so
  # that every tuned baseline reaches it on most seeds (AlgoPerf sets its targets from
  # tuned baselines too).
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    best = {sub: float(np.median(np.nanmin(np.where(np.isfinite(c), c, np.nan), axis=1)))
            for sub, (c, _) in by_sub.items()}
  target = max(best[f"{n}_tuned"] for n in cfg.tuned_optimizers)
  records = []
  for sub, opt, tuned in subs:
    c, t = by_sub[sub]
    hits = [targets.steps_to_target(row, target, steps=steps, rule="first") for row in c]
    records.append({
      **common, "kind": "run", "workload": name, "submission": sub, "optimizer": opt,
      "tuned": tuned,
      "hyperparameters": {**{k: v for k, v in optim.info(opt).defaults.items()
                             if isinstance(v, (int, float, str, bool))},
                          **(tuning[opt]["best_config"] if tuned else {})},
      "seeds": list(seeds), "steps": steps, "metric": workload.metric,
      "curves": c, "final_validation": c[:, -1], "final_test": t,
      "target": target, "steps_to_target": hits, "median_steps_to_target": median_steps(hits),
    })
  records.append({
    **common, "kind": "workload", "workload": name, "description": workload.description,
    "model": workload.model, "metric": workload.metric, "sizes": workload.sizes,
    "steps_per_evaluation": workload.steps_per_eval, "evaluations": workload.num_evals,
    "target": target, "target_rule": "first step with validation metric ≤ target; target = "
    "the worse tuned baseline's median-over-seeds best validation value",
    "tuning": tuning, "tuning_seed": seeds[0] + cfg.tuning_seed_offset,
    "timing": {"compile_s": trainer.compile_s, "run_s": trainer.run_s,
               "runs": 2 * len(rows), "programs": len(trainer._compiled)},
  })
  return records


def summarize(cfg, records: list[dict], common: dict) -> dict:
  """Performance profiles, benchmark scores and rank tables over the workloads."""
  runs = [r for r in records if r.get("kind") == "run"]
  subs = [s for s, _, _ in submissions(cfg)]
  names = list(dict.fromkeys(r["workload"] for r in runs))
  steps = {s: {w: None for w in names} for s in subs}
  finals = {s: {w: None for w in names} for s in subs}
  for r in runs:
    t = r["median_steps_to_target"]
    steps[r["submission"]][r["workload"]] = None if math.isinf(t) else t
    values = np.asarray(r["final_validation"], np.float64)
    finals[r["submission"]][r["workload"]] = float(np.median(values))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    profile = targets.performance_profile(steps)
  time_ranks = targets.rank_table(steps)
  final_ranks = targets.rank_table(finals)
  for row in time_ranks:
    row["score"] = profile.scores[row["submission"]]
  return {**common, "kind": "summary", "workloads": names, "steps_to_target": steps,
          "final_validation": finals, "profile": profile.to_dict(),
          "rank_table_time": time_ranks, "rank_table_final": final_ranks}


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0,
        restart: bool = False) -> list[dict]:
  """Runs every workload of `cfg`; appends and returns the records.

  Each workload's records are saved as soon as it is done (optlab.study_progress): a
  killed run started again with the same config and seed goes on from there, with the
  same run_id (`restart` discards it instead).
  """
  unknown = [w for w in cfg.workloads if w not in WORKLOADS]
  if unknown:
    raise ValueError(f"run: unknown workloads {unknown}; expected some of {WORKLOADS}")
  for name in (*cfg.default_optimizers, *cfg.tuned_optimizers):
    optim.info(name)  # raises for an unknown name
  if not set(cfg.tuned_optimizers) <= set(cfg.default_optimizers):
    raise ValueError(f"run: tuned_optimizers {cfg.tuned_optimizers} must also be among "
                     f"default_optimizers {cfg.default_optimizers}")
  if cfg.num_seeds < 1:
    raise ValueError(f"run: num_seeds must be ≥ 1, got {cfg.num_seeds}")
  progress = Progress.open(results_path, STUDY, cfg, seed, restart=restart)
  common = {"study": STUDY, "run_id": progress.run_id, "config": cfg._asdict(),
            "provenance": results.provenance()}
  seeds = [seed + i for i in range(cfg.num_seeds)]
  records = []
  for name in cfg.workloads:  # a workload's records do not depend on the other workloads
    records += [{**common, **r} for r in progress.unit(name, run_workload, cfg, name, seeds, {})]
  records.append(summarize(cfg, records, common))
  progress.finish(records)
  return records


def table(records: list[dict]) -> str:
  """The rank tables (time-to-target with the benchmark score; final validation metric)."""
  summary = next(r for r in records if r.get("kind") == "summary")
  lines = []
  for r in records:
    if r.get("kind") == "workload":
      tuned = ", ".join(f"{n}: " + ", ".join(f"{k}={v:.3g}" for k, v in t["best_config"].items())
                        for n, t in r["tuning"].items())
      lines.append(f"{r['workload']}: {r['description']}; {r['model']}; target {r['metric']} ≤ "
                   f"{r['target']:.4g}; tuned {tuned}")
  lines += ["", "Median steps to target (rank per workload; score: AlgoPerf benchmark score, "
            "area under the performance profile over τ ∈ [1, 4]):"]
  rows = [{"submission": row["submission"],
           **{w: f"{summary['steps_to_target'][row['submission']][w] or '—'}"
              f" ({row[w]:g})" for w in summary["workloads"]},
           "mean rank": row["mean_rank"], "score": row["score"]}
          for row in summary["rank_table_time"]]
  lines.append(targets.format_table(rows))
  lines += ["", "Median final validation metric (rank):"]
  rows = [{"submission": row["submission"],
           **{w: f"{summary['final_validation'][row['submission']][w]:.4g} ({row[w]:g})"
              for w in summary["workloads"]}, "mean rank": row["mean_rank"]}
          for row in summary["rank_table_final"]]
  lines.append(targets.format_table(rows))
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the tables, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  start = time.perf_counter()
  records = run(cfg, args.results, seed=args.seed, restart=args.restart)
  elapsed = time.perf_counter() - start
  print(table(records))
  compile_s = sum(r["timing"]["compile_s"] for r in records if r.get("kind") == "workload")
  print(f"\n{len(records)} records appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s, "
        f"of which ~{compile_s:.1f} s compiling)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
