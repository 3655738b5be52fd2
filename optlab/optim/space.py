"""Search-space dimensions shared by the optimizer registry and the tuners.

A dimension says which values a hyperparameter may take and how to spread trials
over them: log-uniformly for scales (learning rates, epsilons), uniformly for
bounded quantities, as integers, or as a finite choice. Each can sample and lay
out a grid, so grid, random and quasi-random search read the same description.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np


def _check_bounds(kind: str, low: float, high: float, *, positive: bool) -> None:
  if not (math.isfinite(low) and math.isfinite(high)):
    raise ValueError(f"{kind}: low and high must be finite, got low={low!r}, high={high!r}")
  if low >= high:
    raise ValueError(f"{kind}: low must be < high, got low={low!r}, high={high!r}")
  if positive and low <= 0:
    raise ValueError(f"{kind}: a log scale needs low > 0, got low={low!r}")


@dataclasses.dataclass(frozen=True)
class LogUniform:
  """Values spread evenly in log scale over [low, high]."""

  low: float
  high: float

  def __post_init__(self):
    _check_bounds("LogUniform", self.low, self.high, positive=True)

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    """Maps points of [0, 1] onto the dimension (for quasi-random sequences)."""
    return np.exp(np.log(self.low) + np.asarray(u) * (np.log(self.high) - np.log(self.low)))

  def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
    return self.from_unit(rng.uniform(size=size))

  def grid(self, num: int) -> list[float]:
    return [float(x) for x in np.geomspace(self.low, self.high, num)]


@dataclasses.dataclass(frozen=True)
class Uniform:
  """Values spread evenly over [low, high]."""

  low: float
  high: float

  def __post_init__(self):
    _check_bounds("Uniform", self.low, self.high, positive=False)

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    return self.low + np.asarray(u) * (self.high - self.low)

  def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
    return self.from_unit(rng.uniform(size=size))

  def grid(self, num: int) -> list[float]:
    return [float(x) for x in np.linspace(self.low, self.high, num)]


@dataclasses.dataclass(frozen=True)
class IntUniform:
  """Integers in [low, high], evenly or (``log=True``) log-evenly spread."""

  low: int
  high: int
  log: bool = False

  def __post_init__(self):
    _check_bounds("IntUniform", self.low, self.high, positive=self.log)

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    u = np.asarray(u)
    if self.log:
      values = np.exp(np.log(self.low) + u * (np.log(self.high + 1) - np.log(self.low)))
    else:
      values = self.low + u * (self.high + 1 - self.low)
    return np.clip(np.floor(values), self.low, self.high).astype(int)

  def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
    return self.from_unit(rng.uniform(size=size))

  def grid(self, num: int) -> list[int]:
    space = np.geomspace if self.log else np.linspace
    return sorted({round(x) for x in space(self.low, self.high, num)})


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of a finite set of values."""

  values: Sequence[Any]

  def __post_init__(self):
    if len(self.values) == 0:
      raise ValueError("Choice: values must not be empty")
    object.__setattr__(self, "values", tuple(self.values))

  def from_unit(self, u: np.ndarray) -> Any:
    index = np.minimum((np.asarray(u) * len(self.values)).astype(int), len(self.values) - 1)
    if np.ndim(index) == 0:
      return self.values[int(index)]
    return [self.values[i] for i in np.ravel(index)]

  def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
    return self.from_unit(rng.uniform(size=size))

  def grid(self, num: int | None = None) -> list[Any]:
    del num
    return list(self.values)


Dimension = LogUniform | Uniform | IntUniform | Choice
