"""How a sweep's runs become chunks, and how the chunks run.

Memory estimates and chunk sizes, the compiled-program cache that lets a sweep run
again with the same shapes (model selection, cross-validation, a benchmark's
baseline) skip compilation, divergence tracking per run, and the thread pool that
trains chunks side by side: XLA:CPU runs one program's batched products on one
thread, but programs called from different threads run at once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.train.state import TrainState


def _leaf_bytes(leaf: Any) -> int:
  if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):  # dropout's key in a model state
    return _leaf_bytes(jax.eval_shape(jax.random.key_data, leaf))
  return math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize


def _tree_bytes(tree: Any) -> int:
  return sum(_leaf_bytes(leaf) for leaf in jax.tree.leaves(tree))


def default_memory_limit() -> int:
  """Half of the device memory left free (CPU: half the free RAM from os.sysconf, or 2 GiB)."""
  try:
    stats = jax.devices()[0].memory_stats() or {}
  except Exception:  # backends without memory statistics
    stats = {}
  if "bytes_limit" in stats:
    return max(1, int(0.5 * (stats["bytes_limit"] - stats.get("bytes_in_use", 0))))
  try:
    free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return max(1, int(0.5 * free))
  except (ValueError, OSError, AttributeError):
    return 2 << 30


def _track(losses: np.ndarray, skipped: np.ndarray, done_skipped: np.ndarray, alive: np.ndarray,
           reference: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
  """Epoch loss per run (fit's rule: mean of the finite losses) and divergence, in place.

  A run diverges when its epoch loss is not finite, every step was skipped, or the
  loss exceeds `factor` times its first finite epoch loss (kept in `reference`);
  `alive` is cleared for it. Returns (train_loss, steps skipped so far).
  """
  finite = np.isfinite(losses)
  train_loss = np.array([row[ok].mean() if ok.any() else np.nan
                         for row, ok in zip(losses, finite, strict=True)], np.float64)
  first = alive & np.isnan(reference) & np.isfinite(train_loss)
  reference[first] = np.maximum(train_loss[first], 1e-12)
  with np.errstate(invalid="ignore"):
    diverged = (~np.isfinite(train_loss) | (skipped - done_skipped == losses.shape[1])
                | (train_loss > factor * reference))
  alive &= ~diverged
  return train_loss, skipped


def _auto_chunk_size(train_step, params, rest, opt_shape, x, y, batch_size, eval_batch_size,
                     budget) -> int:
  """Runs per chunk within `budget` bytes: per run 4 × its state plus the bytes one
  train step touches (XLA's cost model) times the eval/train batch ratio (conservative)."""
  state_bytes = _tree_bytes(params) + _tree_bytes(rest) + _tree_bytes(opt_shape)
  one = TrainState(jnp.zeros([], jnp.int32), params, rest, opt_shape, jnp.zeros([], jnp.int32))
  xb = jax.ShapeDtypeStruct((batch_size, *x.shape[1:]), x.dtype)
  yb = jax.ShapeDtypeStruct((batch_size, *y.shape[1:]), y.dtype)
  try:
    touched = int(jax.jit(train_step).lower(one, xb, yb).cost_analysis()["bytes accessed"])
  except Exception:  # no cost model on this backend: count the state alone
    touched = 4 * state_bytes
  per_run = 4 * state_bytes + touched * max(1, -(-eval_batch_size // batch_size))
  return max(1, budget // max(per_run, 1))


# Per chunk and epoch, compiled once: an eager `jax.vmap` costs ~1 ms per call on CPU, a third
# of a small run's epoch when the runs go one at a time.
_keys_of_seeds = jax.jit(jax.vmap(jax.random.key))
_fold_in_epoch = jax.jit(jax.vmap(jax.random.fold_in, in_axes=(0, None)))


def default_workers(devices_per_chunk: int = 1) -> int:
  """Chunks a sweep trains at once by default: on a CPU, one per core left to each of the
  `devices_per_chunk` devices a chunk is split over (at least 1); on accelerators, 1."""
  if jax.default_backend() != "cpu":
    return 1
  try:
    cores = len(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    cores = os.cpu_count() or 1
  return max(1, cores // devices_per_chunk)


def _run_chunks(tasks: Sequence[Callable[[threading.Event], None]], workers: int) -> None:
  """Runs every ``task(stop)``, `workers` at a time, each from its own thread.

  The first error (or a KeyboardInterrupt while waiting) sets `stop`, which the
  tasks check between epochs, drops the tasks not yet started, and is raised.
  """
  stop = threading.Event()
  if workers == 1 or len(tasks) == 1:
    for task in tasks:
      task(stop)
    return
  with concurrent.futures.ThreadPoolExecutor(min(workers, len(tasks)),
                                             thread_name_prefix="optlab-sweep") as pool:
    futures = [pool.submit(task, stop) for task in tasks]
    try:
      concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
    finally:  # an error in a task, or an interrupt here: stop the others early
      if not all(f.done() and f.exception() is None for f in futures):
        stop.set()
        for future in futures:
          future.cancel()
    for future in futures:
      if not future.cancelled():
        future.result()


def _pad_chunk(runs: Sequence[int], size: int) -> np.ndarray:
  """Run ids of one chunk, padded to `size` by repeating the last run."""
  return np.asarray(list(runs) + [runs[-1]] * (size - len(runs)), np.int64)


# Compiled programs by (program text, argument and result structure): a sweep run
# again with the same shapes (model selection, cross-validation, the sequential
# baseline of the benchmark) reuses them instead of compiling again.
_COMPILED: collections.OrderedDict[Any, Any] = collections.OrderedDict()
_COMPILED_MAX = 32
_COMPILED_LOCK = threading.Lock()  # sweeps may be called from several threads (trials)


def _compile(lowered: Any) -> Any:
  """``lowered.compile()``, or the program compiled earlier from the same text."""
  # Only programs whose text says everything: no constants passed as hidden
  # arguments, no host callbacks (Python objects the text does not show).
  lowering = getattr(lowered, "_lowering", None)
  hidden = (lowering is None or getattr(lowering, "const_args", None)
            or getattr(lowering, "compile_args", {}).get("host_callbacks", True))
  if hidden:
    return lowered.compile()
  key = (hashlib.sha256(lowered.as_text().encode()).hexdigest(), lowered.in_tree,
         lowered.out_tree)
  with _COMPILED_LOCK:
    if key in _COMPILED:
      _COMPILED.move_to_end(key)
      return _COMPILED[key]
  compiled = lowered.compile()  # outside the lock: two threads may compile the same once each
  with _COMPILED_LOCK:
    _COMPILED[key] = compiled
    while len(_COMPILED) > _COMPILED_MAX:
      _COMPILED.popitem(last=False)
  return compiled
