"""Checkpoints of a training run with orbax-checkpoint: the last N and the best.

A checkpoint holds the whole :class:`TrainState` (PRNG keys stored as raw key
data), and a JSON record of the loop: epoch, history, callback states. Restoring
it and continuing gives exactly the run that was not interrupted.

A process killed at any moment leaves only whole checkpoints behind: orbax writes
each one into ``<epoch>.orbax-checkpoint-tmp`` and renames it when complete (a
leftover temporary directory is removed when the next :class:`Checkpointer` opens
the directory), and an old checkpoint is first renamed into a trash folder
(``.trash``, emptied after each save and on opening), so that no half-deleted
checkpoint is ever listed either.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import shutil
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.results import check_writable

# Old checkpoints are renamed into this folder (atomic) before they are deleted.
_TRASH = ".trash"
# Room asked for each checkpoint beyond its arrays' bytes: a fraction, and a fixed
# allowance for orbax's metadata and the JSON record (the history).
SPACE_MARGIN = 1.1
SPACE_OVERHEAD = 256 << 10


def _require_orbax():
  try:
    import orbax.checkpoint as ocp
  except ImportError as error:  # pragma: no cover - orbax is a declared extra
    raise ImportError(
        "checkpointing needs orbax-checkpoint: pip install 'optlab[checkpoint]' "
        "(or pip install orbax-checkpoint)"
    ) from error
  return ocp


def _is_key(x: Any) -> bool:
  return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_storable(tree: Any) -> Any:
  """Replaces typed PRNG keys by their raw uint32 data."""
  return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def from_storable(tree: Any, template: Any) -> Any:
  """Inverse of :func:`to_storable`, using `template` to know which leaves were keys."""
  return jax.tree.map(
      lambda x, t: jax.random.wrap_key_data(x, impl=jax.random.key_impl(t)) if _is_key(t) else x,
      tree,
      template,
  )


class Checkpointer:
  """Keeps the last `keep` checkpoints under ``directory/last`` and the best under ``best``.

  Checkpoints appear and disappear whole, even when the process is killed part-way
  (see the module docstring); :meth:`check_space` checks the room for a run's
  checkpoints before it starts.

  Args:
    directory: where checkpoints live (created if missing; must be writable).
    keep: how many of the latest checkpoints to keep.
    monitor: the logged quantity that decides the best checkpoint (None: no best).
    mode: ``"min"`` or ``"max"`` for `monitor`.
  """

  def __init__(self, directory: str | os.PathLike, *, keep: int = 2,
               monitor: str | None = None, mode: str = "min"):
    if keep < 1:
      raise ValueError(f"Checkpointer: keep must be ≥ 1, got {keep}")
    if mode not in ("min", "max"):
      raise ValueError(f"Checkpointer: mode must be 'min' or 'max', got {mode!r}")
    ocp = _require_orbax()
    self.directory = Path(directory).absolute()
    check_writable(self.directory, what="checkpoints", min_free_bytes=0)
    self.monitor = monitor
    self.keep = keep
    atomic = {"create": True, "cleanup_tmp_directories": True, "todelete_subdir": _TRASH}
    self._empty_trash()
    self._last = ocp.CheckpointManager(
        self.directory / "last",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, **atomic),
    )
    self._best = None
    if monitor is not None:
      self._best = ocp.CheckpointManager(
          self.directory / "best",
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, best_fn=lambda metrics: metrics[monitor], best_mode=mode, **atomic,
          ),
      )

  def _empty_trash(self) -> None:
    for folder in ("last", "best"):
      shutil.rmtree(self.directory / folder / _TRASH, ignore_errors=True)

  def check_space(self, template: Any) -> int:
    """Raises ``OSError`` (ENOSPC) now if the directory lacks room for this run's checkpoints.

    One checkpoint takes about the bytes of `template`'s arrays (see
    :func:`storage_bytes`) × ``SPACE_MARGIN`` + ``SPACE_OVERHEAD``. The run needs room
    for ``keep`` of them, one more being written before the oldest is deleted, and one
    more with a monitored best; checkpoints already in the directory (a resumed run)
    count as room, since they are replaced.

    Args:
      template: what :meth:`save` will be given (e.g. the train state and the best copy).

    Returns:
      The free bytes needed.
    """
    one = math.ceil(storage_bytes(template) * SPACE_MARGIN) + SPACE_OVERHEAD
    copies = self.keep + 1 + (self._best is not None)
    present = sum(_bytes_under(self.directory / folder) for folder in ("last", "best"))
    needed = max(one, copies * one - present)
    free = shutil.disk_usage(self.directory).free
    if free < needed:
      best = ", 1 best" if self._best is not None else ""
      there = f", less the {present:,} bytes of checkpoints already there" if present else ""
      raise OSError(
          errno.ENOSPC,
          f"not enough free space for checkpoints in {self.directory}: need about "
          f"{needed:,} bytes ({copies} checkpoints of {one:,} bytes: {self.keep} kept, 1 being "
          f"written{best}{there}), {free:,} bytes free; free some space, lower "
          "checkpoint_keep or choose another checkpoint_dir")
    return needed

  def _args(self, state: Any, record: dict[str, Any]):
    ocp = _require_orbax()
    return ocp.args.Composite(
        state=ocp.args.StandardSave(to_storable(state)), record=ocp.args.JsonSave(record)
    )

  def save(self, epoch: int, state: Any, record: dict[str, Any], logs: dict[str, float]) -> None:
    """Saves after `epoch` (the checkpoint's step number is the epoch)."""
    self._last.save(epoch, args=self._args(state, record), force=True)
    if self._best is not None and self.monitor in logs:
      self._best.save(epoch, args=self._args(state, record),
                      metrics={self.monitor: float(logs[self.monitor])}, force=True)
    self.wait()
    self._empty_trash()

  def wait(self) -> None:
    self._last.wait_until_finished()
    if self._best is not None:
      self._best.wait_until_finished()

  def latest_epoch(self) -> int | None:
    return self._last.latest_step()

  def best_epoch(self) -> int | None:
    return None if self._best is None else self._best.best_step()

  def restore(self, template: Any, epoch: int | None = None, *, best: bool = False):
    """Returns (state, record) of a checkpoint (the latest by default).

    Args:
      template: a tree like the one saved (its structure, shapes and dtypes, and
        which leaves are PRNG keys; the restored arrays take its leaves' shardings);
        None restores the tree as stored (arrays on the devices that wrote them, or
        on this process's first local device where those are not here, as when a
        CPU run's checkpoint is read on a GPU machine; PRNG keys as raw key data),
        e.g. to inspect a checkpoint.
      epoch: which checkpoint (default: the latest, or the best with `best`).
      best: from the best checkpoints (needs a `monitor`).
    """
    ocp = _require_orbax()
    manager = self._best if best else self._last
    if manager is None:
      raise ValueError("Checkpointer.restore(best=True) needs a monitored quantity")
    if epoch is None:
      epoch = manager.best_step() if best else manager.latest_step()
    if epoch is None:
      raise FileNotFoundError(f"no checkpoint under {self.directory}")
    if template is None:
      state_args = _restore_as_stored(ocp)
    else:
      state_args = ocp.args.StandardRestore(to_storable(template))
    restored = manager.restore(
        epoch, args=ocp.args.Composite(state=state_args, record=ocp.args.JsonRestore()))
    if template is None:
      return restored.state, restored.record
    return from_storable(restored.state, template), restored.record

  def close(self) -> None:
    self._last.close()
    if self._best is not None:
      self._best.close()


def _restore_as_stored(ocp: Any) -> Any:
  """Restore arguments for the tree as stored, on this process's devices.

  Without a target, orbax places each array on the device the checkpoint names
  (``cpu:0`` when a CPU process wrote it), which a GPU process does not have; the
  fallback puts such arrays on this process's first local device, so a checkpoint
  restores on whatever machine reads it.
  """
  here = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  try:
    return ocp.args.StandardRestore(None, fallback_sharding=here)
  except TypeError:  # an orbax-checkpoint without the fallback (before 0.11.x): as stored
    return ocp.args.StandardRestore(None)


def storage_bytes(tree: Any) -> int:
  """Bytes of the arrays of `tree` as stored (typed PRNG keys as their raw key data)."""
  return sum(int(np.asarray(leaf).nbytes) if not hasattr(leaf, "nbytes") else int(leaf.nbytes)
             for leaf in jax.tree.leaves(to_storable(tree)))


def _bytes_under(directory: Path) -> int:
  total = 0
  for root, _, files in os.walk(directory):
    for name in files:
      with contextlib.suppress(OSError):
        total += os.lstat(os.path.join(root, name)).st_size
  return total
