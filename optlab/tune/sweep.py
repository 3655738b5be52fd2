"""Vectorized sweeps: a grid of hyperparameters × seeds (× folds) trained as one program.

``sweep`` injects the hyperparameters into the optimizer state
(``optax.inject_hyperparams``), stacks one model state per run, and ``jax.vmap``s
optlab's scanned epoch over the run axis: every run of a chunk trains in the same
compiled program, with the training data shared (each run gathers its own batches)
and its own batch order. Runs follow ``optlab.train.fit``'s conventions exactly
(model built from ``nnx.Rngs(seed)``, batch order from ``fold_in(key(seed), epoch)``),
so one run of a sweep gives the numbers ``fit`` gives for that configuration.
On a CPU the chunks of runs train side by side, one per core, each called from
its own thread (XLA:CPU runs one program's batched products on one thread).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from optlab import results
from optlab.data.base import as_xy
from optlab.train import distributed
from optlab.train import steps as steps_lib
from optlab.train.state import TrainState, split_model
from optlab.tune._chunks import (
  _auto_chunk_size,
  _compile,
  _fold_in_epoch,
  _keys_of_seeds,
  _pad_chunk,
  _run_chunks,
  _track,
  default_memory_limit,
  default_workers,
)
from optlab.tune._sweep_grid import _grid, _grid_names, _Optimizer


@dataclasses.dataclass
class SweepResult:
  """What :func:`sweep` returns.

  Attributes:
    configs: one dict per configuration, in grid order (the product of the
      hyperparameter axes in the order given, then ``batch_size`` if swept).
    seeds: the seeds.
    num_folds: the number of folds, or None when no folds were given.
    epochs: the epochs (0-based) at which the runs were evaluated.
    values: ``{key: array}`` indexed ``[config, seed(, fold), evaluation]`` for
      ``train_loss`` and every ``val_*`` / ``test_*`` metric; NaN after a run diverged.
    status: ``[config, seed(, fold)]`` array of ``"completed"`` or ``"diverged"``.
    skipped_steps: ``[config, seed(, fold)]`` steps skipped as non-finite.
    compile_seconds: time spent compiling.
    train_seconds: time spent training and evaluating, compilation excluded.
    num_chunks: compiled-program calls per epoch (chunks over all groups).
    chunk_size: runs per chunk (of the largest group).
    params: final parameters stacked ``[config, seed(, fold), ...]`` (``keep_params=True``).
    setup: what every run shares, so a record can be rerun: the optimizer, its
      fixed hyperparameters, batch size, epochs, loss, l2 and the provenance
      (versions, machine, git commit).
  """

  configs: list[dict[str, Any]]
  seeds: list[int]
  num_folds: int | None
  epochs: np.ndarray
  values: dict[str, np.ndarray]
  status: np.ndarray
  skipped_steps: np.ndarray
  compile_seconds: float
  train_seconds: float
  num_chunks: int
  chunk_size: int
  params: Any = None
  setup: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __getitem__(self, key: str) -> np.ndarray:
    if key not in self.values:
      raise KeyError(f"{key!r} was not recorded; recorded: {sorted(self.values)}")
    return self.values[key]

  def keys(self) -> list[str]:
    return list(self.values)

  def _run_axes(self) -> tuple[int, ...]:
    return (1, 2) if self.num_folds is not None else (1,)

  def mean(self, key: str) -> np.ndarray:
    """``[config, evaluation]`` mean over seeds (and folds)."""
    return np.mean(self[key], axis=self._run_axes())

  def std(self, key: str) -> np.ndarray:
    """``[config, evaluation]`` standard deviation over seeds (and folds)."""
    return np.std(self[key], axis=self._run_axes())

  def best(self, key: str, mode: str = "auto") -> tuple[dict[str, Any], float]:
    """(config, value) of the best mean final value of `key`; diverged configs never win.

    Args:
      key: a recorded key, e.g. ``"val_accuracy"``.
      mode: ``"max"``, ``"min"`` or ``"auto"`` (losses are minimized, other
        metrics follow ``optlab.metrics.greater_is_better``).
    """
    final = self.mean(key)[:, -1]
    if np.all(np.isnan(final)):
      raise ValueError(f"best: every configuration has a non-finite {key!r} (all diverged?)")
    maximize = _maximize(key, mode)
    index = int(np.nanargmax(final) if maximize else np.nanargmin(final))
    return dict(self.configs[index]), float(final[index])

  def to_records(self) -> list[dict[str, Any]]:
    """One dict per (config, seed, fold, evaluation), for ``optlab.results.append_records``."""
    records = []
    for run in np.ndindex(self.status.shape):
      base = {"kind": "sweep", **self.setup, **self.configs[run[0]], "seed": self.seeds[run[1]],
              **({"fold": run[2]} if len(run) == 3 else {}), "status": str(self.status[run])}
      for e, epoch in enumerate(self.epochs):
        records.append({**base, "epoch": int(epoch),
                        **{k: float(v[(*run, e)]) for k, v in self.values.items()}})
    return records


def _maximize(key: str, mode: str) -> bool:
  if mode not in ("auto", "max", "min"):
    raise ValueError(f"mode must be 'auto', 'max' or 'min', got {mode!r}")
  if mode != "auto":
    return mode == "max"
  name = key.split("_", 1)[1] if key.startswith(("val_", "test_", "train_")) else key
  if name == "loss":
    return False
  from optlab import metrics

  return metrics.greater_is_better(name)


def sweep(
    model_fn: Callable[[nnx.Rngs], nnx.Module],
    optimizer: str | Callable[..., optax.GradientTransformation],
    train: Any,
    *,
    hyperparams: Mapping[str, Sequence[Any]] | Sequence[Mapping[str, Any]],
    seeds: Sequence[int] | int = (0,),
    fixed: Mapping[str, Any] | None = None,
    validation: Any = None,
    test: Any = None,
    loss: str | steps_lib.LossFn = "cross_entropy",
    metrics: Sequence[str] = ("accuracy",),
    epochs: int = 10,
    batch_size: int = 64,
    eval_batch_size: int = 1024,
    eval_every: int = 1,
    batch_sizes: Sequence[int] | None = None,
    folds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    chunk_size: int | None = None,
    memory_limit_bytes: int | None = None,
    skip_nonfinite: bool = True,
    l2: float = 0.0,
    divergence_factor: float = 1e3,
    keep_params: bool = False,
    mesh: jax.sharding.Mesh | None = None,
    workers: int | None = None,
) -> SweepResult:
  """Trains every configuration of a grid × seeds (× folds) as vmapped, compiled programs.

  Run ``r`` = (config, seed, fold) starts from ``model_fn(nnx.Rngs(seed))`` and
  draws the batch order of epoch ``e`` from ``fold_in(key(seed), e)``, exactly as
  ``fit(model_fn(nnx.Rngs(seed)), tx, train, seed=seed)`` does; the swept numeric
  hyperparameters live in ``opt_state.hyperparams`` and are ``vmap``ped with the
  model state, so a chunk of runs is one program per epoch (a ``lax.scan`` over
  batches). Non-numeric hyperparameter values (booleans, strings) and each batch
  size of `batch_sizes` change the program, so each combination is its own
  vmapped group; results land in the same arrays.

  Chunks: runs per program = `chunk_size`, or the most that fit in
  `memory_limit_bytes` by an estimate per run (4 × params + model and optimizer
  state, plus the bytes one train step touches). The last chunk is padded by
  repeating a run (its results dropped) so every chunk reuses one compilation.

  A run whose epoch loss is not finite, whose steps were all skipped, or whose loss
  exceeds `divergence_factor` × its first epoch's is marked ``"diverged"`` and its
  later values are NaN; the other runs are untouched (runs never mix).

  Args:
    model_fn: builds a fresh model from an ``nnx.Rngs`` (called once per seed).
    optimizer: a registry name (``optlab.optim.get(name, inject=True, ...)``) or a
      factory taking hyperparameters as keyword arguments (wrapped with
      ``optax.inject_hyperparams``).
    train: ``(x, y)`` or a Dataset.
    hyperparams: grid axes ``{name: values}``, whose product is swept, or a list of
      configurations (dicts with the same keys), swept as given.
    seeds: seeds (or a count: ``range(seeds)``): model initialisation and data order.
    fixed: other optimizer hyperparameters, the same for every run.
    validation: evaluated every `eval_every` epochs (``val_*``); ignored with `folds`,
      whose held-out part is the validation set.
    test: evaluated likewise (``test_*``).
    loss: as in ``fit``.
    metrics: metric names of ``optlab.metrics``.
    epochs: epochs per run.
    batch_size: examples per step (the last incomplete batch is dropped).
    eval_batch_size: examples per chunk when evaluating.
    eval_every: evaluate every this many epochs (and at the last).
    batch_sizes: optional grid axis over batch size (overrides `batch_size`).
    folds: optional ``(train_idx, val_idx)`` pairs into `train`, an extra vmapped
      axis; train indices are truncated to the shortest fold's length, validation
      uses a mask, so unequal validation sizes are exact.
    chunk_size: runs per compiled program; None picks it from the memory budget.
    memory_limit_bytes: the budget (default: :func:`default_memory_limit`).
    skip_nonfinite: skip (and count) steps with non-finite loss or gradients.
    l2: coefficient of ½‖θ‖² added to the loss.
    divergence_factor: as in ``fit``.
    keep_params: return the final parameters of every run.
    mesh: split the vectorized run axis over this ``jax.sharding.Mesh``'s
      ``"data"`` axis (or its only axis), e.g.
      ``optlab.train.distributed.data_mesh()``: the stacked runs of a chunk are
      placed with ``NamedSharding`` (training and evaluation data replicated) and
      ``jax.jit`` runs each device's runs there; runs never communicate, so the
      results are those of one device. Chunk sizes are rounded up to a multiple of
      the axis' size (the memory budget counts per device). The mesh must hold
      this process's devices only.
    workers: chunks trained at the same time, each from its own thread. None: one
      per CPU core per device on a CPU (:func:`default_workers`), 1 on accelerators.
      XLA:CPU runs a vmapped chunk's batched matrix products on one thread, and
      one program's independent operations one after another, but programs
      called from different threads run side by side: with `chunk_size` None the
      runs are split into at least `workers` chunks, and the memory budget is
      shared among them. ``workers=1`` trains the chunks one after another. A
      chunk of another size is another compiled shape, so its runs' numbers may
      differ from one program's in the last float bits (more after many steps):
      pass `chunk_size` (and `workers`) to pin them across machines.

  Returns:
    A :class:`SweepResult`.

  Example:
    >>> import numpy as np
    >>> from optlab import models
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(64, 4)).astype(np.float32), rng.integers(0, 2, 64)
    >>> result = sweep(lambda rngs: models.MLP(4, [8], 2, rngs=rngs), "sgd", (x, y),
    ...                hyperparams={"learning_rate": [0.01, 0.1]}, seeds=2, epochs=2,
    ...                batch_size=16, validation=(x, y))  # doctest: +SKIP
    >>> result["val_accuracy"].shape  # [config, seed, evaluation]  # doctest: +SKIP
    (2, 2, 2)

  Reference: optax, ``inject_hyperparams`` (hyperparameters kept in the optimizer
  state, so that ``jax.vmap`` can map over them).
  """
  # -- checks -----------------------------------------------------------------
  fixed = dict(fixed or {})
  optional = {"chunk_size": chunk_size, "memory_limit_bytes": memory_limit_bytes,
              "workers": workers}
  for name, value in {"epochs": epochs, "batch_size": batch_size, "eval_every": eval_every,
                      "eval_batch_size": eval_batch_size,
                      **{k: v for k, v in optional.items() if v is not None}}.items():
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
      raise ValueError(f"sweep: {name} must be an int ≥ 1, got {value!r}")
  seeds = list(range(seeds)) if isinstance(seeds, numbers.Integral) else list(seeds)
  if not seeds:
    raise ValueError("sweep: seeds is empty; give at least one seed (or a count ≥ 1)")
  if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in seeds):
    raise TypeError(f"sweep: seeds must be ints, got {seeds!r}")
  seeds = [int(s) for s in seeds]
  opt = _Optimizer(optimizer, fixed, _grid_names(hyperparams))
  configs, names, vmapped = _grid(hyperparams, opt.static_args)
  for index, config in enumerate(configs):
    opt.check(index, config)
  if batch_sizes is not None:
    batch_sizes = [int(b) for b in batch_sizes]
    if not batch_sizes or min(batch_sizes) < 1:
      raise ValueError(f"sweep: batch_sizes must be ints ≥ 1, got {batch_sizes!r}")
  x, y = as_xy(train, "train", caller="sweep")
  n = x.shape[0]
  eval_sets = {p: d for p, d in (("val", as_xy(validation, "validation", caller="sweep")),
                                 ("test", as_xy(test, "test", caller="sweep")))
               if d is not None}
  if folds is not None:
    folds = [(np.asarray(t, np.int64).ravel(), np.asarray(v, np.int64).ravel())
             for t, v in folds]
    if not folds:
      raise ValueError("sweep: folds is empty")
    for i, (t, v) in enumerate(folds):
      if t.size == 0 or v.size == 0:
        raise ValueError(f"sweep: fold {i} has an empty train or validation index array")
      if min(t.min(), v.min()) < 0 or max(t.max(), v.max()) >= n:
        raise ValueError(f"sweep: fold {i} has indices outside [0, {n})")
    eval_sets.pop("val", None)
    train_len = min(t.size for t, _ in folds)
    train_idx = np.stack([t[:train_len] for t, _ in folds]).astype(np.int32)
    val_len = max(v.size for _, v in folds)
    val_idx = np.zeros((len(folds), val_len), np.int32)
    val_mask = np.zeros((len(folds), val_len), bool)
    for i, (_, v) in enumerate(folds):
      val_idx[i, :v.size], val_mask[i, :v.size] = v, True
  else:
    train_len = n
    train_idx = np.arange(n, dtype=np.int32)[None]
  sizes = batch_sizes if batch_sizes is not None else [batch_size]
  if max(sizes) > train_len:
    what = "the shortest fold's" if folds is not None else "the"
    raise ValueError(f"sweep: batch_size {max(sizes)} is larger than {what} {train_len} "
                     "training examples")

  # -- the grid of runs -------------------------------------------------------
  if batch_sizes is not None:
    configs = [{**c, "batch_size": b} for c in configs for b in batch_sizes]
  num_folds = len(folds) if folds is not None else None
  shape = (len(configs), len(seeds), *(() if folds is None else (len(folds),)))
  num_runs = math.prod(shape)
  run_config, run_seed, run_fold = (a.ravel() for a in np.indices(
      (len(configs), len(seeds), num_folds or 1)))
  static_names = [k for k in names if k not in vmapped]

  def group_key(config):
    return (config.get("batch_size", batch_size) if batch_sizes is not None else batch_size,
            tuple(repr(config[k]) for k in static_names))

  groups: dict[Any, list[int]] = {}
  for r in range(num_runs):
    groups.setdefault(group_key(configs[run_config[r]]), []).append(r)

  # -- models, one per seed ---------------------------------------------------
  models = [model_fn(nnx.Rngs(seed)) for seed in seeds]
  if not all(isinstance(m, nnx.Module) for m in models):
    raise TypeError("sweep: model_fn must return a flax.nnx.Module")
  split = [split_model(m) for m in models]
  train_graphdef, eval_graphdef = split[0][0], split[0][1]
  seed_params = jax.tree.map(lambda *a: jnp.stack(a), *[s[2] for s in split])
  seed_rest = jax.tree.map(lambda *a: jnp.stack(a), *[s[3] for s in split])
  params_one, rest_one = split[0][2], split[0][3]

  loss_fn = steps_lib.get_loss(loss)
  from optlab import metrics as metrics_lib

  metric_fns = {m: metrics_lib.get(m) for m in metrics}
  place = distributed.RunParallel(mesh, caller="sweep")
  workers = workers or default_workers(place.ways)
  x_dev, y_dev = place.shared(x), place.shared(y)
  eval_dev = {p: (place.shared(a), place.shared(b)) for p, (a, b) in eval_sets.items()}
  eval_len = max([a.shape[0] for a, _ in eval_sets.values()]
                 + ([val_idx.shape[1]] if folds is not None else []) + [1])
  eval_epochs = [e for e in range(epochs) if (e + 1) % eval_every == 0 or e + 1 == epochs]
  keys = ["train_loss"]
  metric_keys = ["loss", *metric_fns]
  if folds is not None:
    keys += [f"val_{m}" for m in metric_keys]
  keys += [f"{p}_{m}" for p in eval_sets for m in metric_keys]
  values = {k: np.full((num_runs, len(eval_epochs)), np.nan) for k in keys}
  status = np.full(num_runs, "completed", dtype=object)
  skipped = np.zeros(num_runs, np.int64)
  final_params: list[Any] = [None] * num_runs if keep_params else []
  compile_seconds = train_seconds = 0.0
  num_chunks = 0
  largest_chunk = 0
  budget = memory_limit_bytes or default_memory_limit()
  tasks: list[Callable[[threading.Event], None]] = []  # one per chunk, of every group

  for (bs, _), runs in groups.items():
    config0 = configs[run_config[runs[0]]]
    static_values = {k: config0[k] for k in static_names}
    tx = opt.build({**static_values, **{k: config0[k] for k in vmapped}})
    opt_shape = jax.eval_shape(tx.init, params_one)
    hyper_leaves = getattr(opt_shape, "hyperparams", None)
    missing = [k for k in vmapped if hyper_leaves is None or k not in hyper_leaves]
    if missing:
      raise TypeError(f"sweep: {missing} of optimizer {opt.label!r} are not injectable "
                      "(not numeric in its injected state); pass them in `fixed` or as "
                      "non-numeric values")
    train_step = steps_lib.make_train_step(train_graphdef, tx, loss_fn, l2=l2,
                                           skip_nonfinite=skip_nonfinite)

    def one_epoch(state, idx, key, x, y, train_step=train_step, bs=bs):
      def step(state, batch, _unused):
        # Indices from the run's own index array: in bounds, so "clip" (no select).
        return train_step(state, jnp.take(x, batch, axis=0, mode="clip"),
                          jnp.take(y, batch, axis=0, mode="clip"))

      # The run's own index array plays the data: batches of indices, then a gather.
      return steps_lib.make_scan_epoch(step, bs)(state, idx, idx, key)

    def init(params, rest, hyper, tx=tx):
      opt_state = jax.vmap(tx.init)(params)
      for k in vmapped:
        opt_state.hyperparams[k] = hyper[k].astype(opt_state.hyperparams[k].dtype)
      zeros = jnp.zeros(jax.tree.leaves(params)[0].shape[:1], jnp.int32)
      return TrainState(zeros, params, rest, opt_state, zeros)

    # The memory budget is per device: each holds 1/ways of a chunk's runs.
    size = chunk_size or place.ways * _auto_chunk_size(
        train_step, params_one, rest_one, opt_shape, x, y, bs, eval_batch_size,
        budget // workers)
    size = min(size, len(runs))
    if chunk_size is None:  # a chunk for every worker
      size = min(size, -(-len(runs) // workers))
    chunks_here = -(-len(runs) // size)
    size = -(-len(runs) // chunks_here)  # same number of chunks, least padding
    size = -(-size // place.ways) * place.ways  # whole runs on every device of the mesh
    chunks_here = -(-len(runs) // size)
    num_chunks += chunks_here
    largest_chunk = max(largest_chunk, size)

    epoch_fn = jax.jit(jax.vmap(one_epoch, in_axes=(0, 0, 0, None, None)), donate_argnums=(0,),
                       **place.jit(0, 0, 0, None, None))
    # Evaluation chunks no longer than the largest evaluation set: no padded rows.
    eval_fn = jax.jit(jax.vmap(steps_lib.make_evaluate(
        eval_graphdef, loss_fn, metric_fns, min(eval_batch_size, eval_len)),
        in_axes=(0, 0, None, None)), **place.jit(0, 0, None, None))
    masked_fn = jax.jit(jax.vmap(_masked_evaluate(
        eval_graphdef, loss_fn, metric_fns, min(eval_batch_size, eval_len)),
        in_axes=(0, 0, None, None, 0, 0)), **place.jit(0, 0, None, None, 0, 0))
    init_fn = jax.jit(init, **place.jit(0, 0, 0))
    compiled: dict[str, Any] = {}

    def chunk_inputs(chunk, size=size, runs=runs, vmapped=vmapped):
      ids = _pad_chunk(runs[chunk * size:(chunk + 1) * size], size)
      seed_index = jnp.asarray(run_seed[ids])
      hyper = {k: jnp.asarray([configs[run_config[r]][k] for r in ids]) for k in vmapped}
      params = jax.tree.map(lambda a, i=seed_index: jnp.take(a, i, axis=0), seed_params)
      rest = jax.tree.map(lambda a, i=seed_index: jnp.take(a, i, axis=0), seed_rest)
      idx = jnp.asarray(train_idx[run_fold[ids] if folds is not None else np.zeros_like(ids)])
      base_keys = _keys_of_seeds(jnp.asarray([seeds[s] for s in run_seed[ids]]))
      return ids, place.runs((params, rest, hyper, idx, base_keys))

    def evaluation_calls(state, ids, eval_fn=eval_fn, masked_fn=masked_fn):
      calls = {p: (eval_fn, (state.params, state.model_state, *xy)) for p, xy in eval_dev.items()}
      if folds is not None:
        calls["val"] = (masked_fn, (state.params, state.model_state, x_dev, y_dev,
                                    place.runs(val_idx[run_fold[ids]]),
                                    place.runs(val_mask[run_fold[ids]])))
      return calls

    # Every program is compiled before the clock starts (chunks may run at once).
    tic = time.perf_counter()
    ids, (params, rest, hyper, idx, base_keys) = chunk_inputs(0)
    compiled["init"] = _compile(init_fn.lower(params, rest, hyper))
    state_shape = jax.eval_shape(init, params, rest, hyper)
    compiled["epoch"] = _compile(epoch_fn.lower(state_shape, idx, base_keys, x_dev, y_dev))
    for prefix, (fn, args) in evaluation_calls(state_shape, ids).items():
      compiled[prefix] = _compile(fn.lower(*args))
    compile_seconds += time.perf_counter() - tic

    def train_chunk(chunk, stop, size=size, runs=runs, compiled=compiled,
                    chunk_inputs=chunk_inputs, evaluation_calls=evaluation_calls):
      ids, (params, rest, hyper, idx, base_keys) = chunk_inputs(chunk)
      real = len(runs[chunk * size:(chunk + 1) * size])
      state = compiled["init"](params, rest, hyper)
      alive = np.ones(size, bool)
      reference = np.full(size, np.nan)
      done_skipped = np.zeros(size, np.int64)
      evaluation = 0
      for epoch in range(epochs):
        if stop.is_set():  # another chunk failed: its error is what the sweep raises
          return
        keys_e = place.runs(_fold_in_epoch(base_keys, epoch))
        state, losses = compiled["epoch"](state, idx, keys_e, x_dev, y_dev)
        train_loss, done_skipped = _track(np.asarray(losses), np.asarray(state.skipped),
                                          done_skipped, alive, reference, divergence_factor)
        if epoch not in eval_epochs:
          continue
        logs = {"train_loss": train_loss}
        for prefix, (_, args) in evaluation_calls(state, ids).items():
          out = compiled[prefix](*args)
          logs.update({f"{prefix}_{k}": np.asarray(v) for k, v in out.items()})
        for k, v in logs.items():
          v = np.where(alive, np.asarray(v, np.float64), np.nan)
          values[k][ids[:real], evaluation] = v[:real]
        evaluation += 1
      status[ids[:real]] = np.where(alive[:real], "completed", "diverged")
      skipped[ids[:real]] = done_skipped[:real]
      if keep_params:
        host = jax.device_get(state.params)
        for j in range(real):
          final_params[ids[j]] = jax.tree.map(lambda a, j=j: a[j], host)
      jax.block_until_ready(state)

    tasks += [functools.partial(train_chunk, chunk) for chunk in range(chunks_here)]

  # Every group's programs are compiled; chunks (of any group) write disjoint rows of
  # the result arrays, so they may run side by side.
  tic = time.perf_counter()
  _run_chunks(tasks, workers)
  train_seconds += time.perf_counter() - tic

  stacked = None
  if keep_params:
    stacked = jax.tree.map(lambda *a: np.stack(a).reshape(*shape, *a[0].shape), *final_params)
  return SweepResult(
      configs=configs, seeds=seeds, num_folds=num_folds, epochs=np.asarray(eval_epochs),
      values={k: v.reshape(*shape, len(eval_epochs)) for k, v in values.items()},
      status=status.reshape(shape).astype(str), skipped_steps=skipped.reshape(shape),
      compile_seconds=compile_seconds, train_seconds=train_seconds, num_chunks=num_chunks,
      chunk_size=largest_chunk, params=stacked,
      setup={"optimizer": opt.label, "fixed": _jsonable(opt.fixed), "batch_size": batch_size,
             "epochs": epochs, "eval_every": eval_every, "loss": getattr(loss, "__name__", loss),
             "l2": l2, "provenance": results.provenance()},
  )


def _jsonable(values: Mapping[str, Any]) -> dict[str, Any]:
  """Numbers and strings as they are; anything else (a schedule, a mask) by its repr."""
  return {k: v if isinstance(v, (str, bool, int, float, type(None))) else repr(v)
          for k, v in values.items()}


def _masked_evaluate(graphdef, loss_fn, metric_fns, batch_size):
  """``evaluate(params, model_state, x, y, idx, mask)`` over ``x[idx]`` where `mask` is set."""
  predict = steps_lib.make_predict(graphdef, batch_size)

  def evaluate(params, model_state, x, y, idx, mask):
    xs, ys = jnp.take(x, idx, axis=0), jnp.take(y, idx, axis=0)
    outputs = predict(params, model_state, xs)
    per_example = jax.vmap(lambda o, t: loss_fn(o[None], t[None]))(outputs, ys)
    weight = mask.astype(per_example.dtype)
    results = {"loss": jnp.sum(per_example * weight) / jnp.sum(weight)}
    for name, fn in metric_fns.items():
      results[name] = fn(outputs, ys, mask=mask)
    return results

  return evaluate
