"""Callbacks of the fit loop: early stopping and reduce-on-plateau.

A callback sees each evaluation (a dict of the epoch's logged values) and may
ask the loop to stop or to change the learning-rate scale. Its state is a small
dict, saved in checkpoints so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np

Mode = Literal["min", "max", "auto"]


def _resolve_mode(monitor: str, mode: Mode) -> str:
  if mode in ("min", "max"):
    return mode
  if mode != "auto":
    raise ValueError(f"mode must be 'min', 'max' or 'auto', got {mode!r}")
  from optlab import metrics

  name = monitor.split("_", 1)[1] if monitor.startswith(("val_", "test_", "train_")) else monitor
  if name == "loss":
    return "min"
  try:
    return "max" if metrics.greater_is_better(name) else "min"
  except ValueError:
    return "min"


class Callback:
  """Base class: override what you need."""

  def on_evaluation(self, epoch: int, logs: dict[str, float]) -> dict[str, Any]:
    """Called after each evaluation; returns requests ({"stop": reason} or {"scale": f})."""
    del epoch, logs
    return {}

  def state_dict(self) -> dict[str, Any]:
    return {}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    del state


class _Plateau:
  """Tracks the best value of a monitored quantity and the evaluations since it improved."""

  def __init__(self, monitor: str, mode: Mode, min_delta: float, patience: int):
    if patience < 0:
      raise ValueError(f"patience must be ≥ 0, got {patience}")
    if min_delta < 0 or not math.isfinite(min_delta):
      raise ValueError(f"min_delta must be a finite number ≥ 0, got {min_delta}")
    self.monitor = monitor
    self.mode = mode
    self.min_delta = float(min_delta)
    self.patience = int(patience)
    self.best: float | None = None
    self.best_epoch: int | None = None
    self.wait = 0

  def update(self, epoch: int, logs: dict[str, float]) -> bool:
    """Records the new value; returns True when it is an improvement."""
    if self.monitor not in logs:
      raise KeyError(
          f"{type(self).__name__}: monitored quantity {self.monitor!r} is not logged; "
          f"logged: {', '.join(sorted(logs))}"
      )
    value = float(logs[self.monitor])
    mode = _resolve_mode(self.monitor, self.mode)
    if self.best is None:
      improved = np.isfinite(value)
    elif mode == "min":
      improved = value < self.best - self.min_delta
    else:
      improved = value > self.best + self.min_delta
    if improved:
      self.best, self.best_epoch, self.wait = value, epoch, 0
    else:
      self.wait += 1
    return bool(improved)

  def state_dict(self) -> dict[str, Any]:
    return {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}

  def load_state_dict(self, state: dict[str, Any]) -> None:
    self.best, self.best_epoch, self.wait = state["best"], state["best_epoch"], state["wait"]


class EarlyStopping(Callback, _Plateau):
  """Stops when the monitored quantity has not improved for `patience` evaluations.

  Args:
    monitor: a logged key, e.g. ``"val_loss"`` or ``"val_accuracy"``.
    mode: ``"min"``, ``"max"`` or ``"auto"`` (from the metric's direction).
    patience: evaluations without improvement before stopping.
    min_delta: the smallest change that counts as an improvement.
    restore_best: end the run with the parameters of the best evaluation.
  """

  def __init__(
      self,
      monitor: str = "val_loss",
      *,
      mode: Mode = "auto",
      patience: int = 5,
      min_delta: float = 0.0,
      restore_best: bool = True,
  ):
    _Plateau.__init__(self, monitor, mode, min_delta, patience)
    self.restore_best = restore_best

  def on_evaluation(self, epoch, logs):
    improved = self.update(epoch, logs)
    requests: dict[str, Any] = {"best": True} if improved and self.restore_best else {}
    if self.wait > 0 and self.wait >= self.patience:
      requests["stop"] = (
          f"early stopping: {self.monitor} did not improve by more than {self.min_delta:g} "
          f"for {self.wait} evaluations (best {self.best:.6g} at epoch {self.best_epoch})"
      )
      if self.restore_best:
        requests["restore_best"] = True
    return requests


class ReduceLROnPlateau(Callback, _Plateau):
  """Multiplies the learning rate by `factor` when the monitored quantity stalls.

  The fit loop applies the factor to the whole update (the last link of its
  optimizer chain), which is a change of learning rate for every optimizer whose
  update is proportional to it; a decoupled weight decay is scaled with it.

  Args:
    monitor: a logged key.
    mode: ``"min"``, ``"max"`` or ``"auto"``.
    factor: multiplier in (0, 1).
    patience: evaluations without improvement before reducing.
    min_delta: the smallest change that counts as an improvement.
    cooldown: evaluations to wait after a reduction before counting again.
    min_scale: the learning-rate scale never goes below this.
  """

  def __init__(
      self,
      monitor: str = "val_loss",
      *,
      mode: Mode = "auto",
      factor: float = 0.5,
      patience: int = 3,
      min_delta: float = 0.0,
      cooldown: int = 0,
      min_scale: float = 0.0,
  ):
    if not 0.0 < factor < 1.0:
      raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
    if cooldown < 0:
      raise ValueError(f"ReduceLROnPlateau: cooldown must be ≥ 0, got {cooldown}")
    _Plateau.__init__(self, monitor, mode, min_delta, patience)
    self.factor = float(factor)
    self.cooldown = int(cooldown)
    self.min_scale = float(min_scale)
    self.scale = 1.0
    self.cooldown_left = 0

  def on_evaluation(self, epoch, logs):
    self.update(epoch, logs)
    if self.cooldown_left > 0:
      self.cooldown_left -= 1
      self.wait = 0
      return {}
    if self.wait >= max(self.patience, 1) and self.scale > self.min_scale:
      self.scale = max(self.scale * self.factor, self.min_scale)
      self.wait = 0
      self.cooldown_left = self.cooldown
      return {"scale": self.scale}
    return {}

  def state_dict(self):
    return {**_Plateau.state_dict(self), "scale": self.scale, "cooldown_left": self.cooldown_left}

  def load_state_dict(self, state):
    _Plateau.load_state_dict(self, state)
    self.scale, self.cooldown_left = state["scale"], state["cooldown_left"]
