"""Checkpoints of a training run with orbax-checkpoint: the last N and the best.

A checkpoint holds the whole :class:`TrainState` (PRNG keys stored as raw key
data), and a JSON record of the loop: epoch, history, callback states. Restoring
it and continuing gives exactly the run that was not interrupted.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp


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
    check_writable(self.directory)
    self.monitor = monitor
    self._last = ocp.CheckpointManager(
        self.directory / "last",
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
    )
    self._best = None
    if monitor is not None:
      self._best = ocp.CheckpointManager(
          self.directory / "best",
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_fn=lambda metrics: metrics[monitor],
              best_mode=mode,
          ),
      )

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

  def wait(self) -> None:
    self._last.wait_until_finished()
    if self._best is not None:
      self._best.wait_until_finished()

  def latest_epoch(self) -> int | None:
    return self._last.latest_step()

  def best_epoch(self) -> int | None:
    return None if self._best is None else self._best.best_step()

  def restore(self, template: Any, epoch: int | None = None, *, best: bool = False):
    """Returns (state, record) of a checkpoint (the latest by default)."""
    ocp = _require_orbax()
    manager = self._best if best else self._last
    if manager is None:
      raise ValueError("Checkpointer.restore(best=True) needs a monitored quantity")
    if epoch is None:
      epoch = manager.best_step() if best else manager.latest_step()
    if epoch is None:
      raise FileNotFoundError(f"no checkpoint under {self.directory}")
    restored = manager.restore(
        epoch,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(to_storable(template)), record=ocp.args.JsonRestore()
        ),
    )
    return from_storable(restored.state, template), restored.record

  def close(self) -> None:
    self._last.close()
    if self._best is not None:
      self._best.close()


def check_writable(directory: Path) -> None:
  """Raises a clear error now, rather than after hours of training, if `directory` is unusable."""
  try:
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / ".optlab_write_probe"
    probe.write_bytes(b"0" * 1024)
    probe.unlink()
  except OSError as error:
    raise OSError(f"cannot write checkpoints to {directory}: {error.strerror or error}") from error
