"""Search spaces shared by the optimizer registry and every tuner.

A dimension says which values a hyperparameter may take and how to spread trials
over them: log-uniformly for scales (learning rates, epsilons), uniformly for
bounded quantities, as integers, or as a finite choice. A :class:`Conditional`
dimension is active only when a categorical parent takes given values (the
momentum of SGD only when the optimizer is SGD). A :class:`SearchSpace` names a
set of dimensions; it samples, lays out grids and maps points of the unit cube
(quasi-random sequences), so grid, random, quasi-random and Bayesian search
(``optlab.tune``) and the registry's per-optimizer spaces read one description.

Example:
  >>> import numpy as np
  >>> space = SearchSpace({
  ...     "optimizer": Choice(("sgd", "adam")),
  ...     "learning_rate": LogUniform(1e-4, 1.0),
  ...     "momentum": Conditional(Uniform(0.0, 0.99), parent="optimizer", values=("sgd",)),
  ... })
  >>> len(space.grid({"learning_rate": 3, "momentum": 2}))
  9
  >>> space.validate({"optimizer": "adam", "learning_rate": 0.01})
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np


def _check_bounds(kind: str, low: float, high: float, *, positive: bool) -> None:
  if not (_is_real(low) and _is_real(high)):
    raise TypeError(f"{kind}: low and high must be real numbers, got low={low!r}, high={high!r}")
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
    _check_grid_size(num)
    return [float(x) for x in np.geomspace(self.low, self.high, num)]

  def contains(self, value: Any) -> bool:
    return _is_real(value) and self.low <= value <= self.high


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
    _check_grid_size(num)
    return [float(x) for x in np.linspace(self.low, self.high, num)]

  def contains(self, value: Any) -> bool:
    return _is_real(value) and self.low <= value <= self.high


@dataclasses.dataclass(frozen=True)
class IntUniform:
  """Integers in [low, high], evenly or (``log=True``) log-evenly spread."""

  low: int
  high: int
  log: bool = False

  def from_unit(self, u: np.ndarray) -> np.ndarray:
    u = np.asarray(u)
    if self.log:
      values = np.exp(np.log(self.low) + u * (np.log(self.high + 1) - np.log(self.low)))
    else:
      values = self.low + u * (self.high + 1 - self.low)
    return np.clip(np.floor(values), self.low, self.high).astype(int)

  def sample(self, rng: np.random.Generator, size: int | None = None) -> Any:
    return self.from_unit(rng.uniform(size=size))

  def __post_init__(self):
    _check_bounds("IntUniform", self.low, self.high, positive=self.log)
    if int(self.low) != self.low or int(self.high) != self.high:
      raise ValueError(f"IntUniform: low and high must be integers, got low={self.low!r}, "
                       f"high={self.high!r}")

  def grid(self, num: int) -> list[int]:
    _check_grid_size(num)
    space = np.geomspace if self.log else np.linspace
    return sorted({round(x) for x in space(self.low, self.high, num)})

  def contains(self, value: Any) -> bool:
    return _is_real(value) and int(value) == value and self.low <= value <= self.high


@dataclasses.dataclass(frozen=True)
class Choice:
  """One of a finite set of values."""

  values: Sequence[Any]

  def __post_init__(self):
    if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence):
      raise TypeError(f"Choice: values must be a sequence of options, got {self.values!r}")
    if len(self.values) == 0:
      raise ValueError("Choice: values must not be empty")
    object.__setattr__(self, "values", tuple(self.values))
    repeated = sorted({repr(v) for v in self.values if self.values.count(v) > 1})
    if repeated:
      raise ValueError(f"Choice: values must be distinct, {', '.join(repeated)} repeated")

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

  def contains(self, value: Any) -> bool:
    return value in self.values


Dimension = LogUniform | Uniform | IntUniform | Choice
_DIMENSION_TYPES = (LogUniform, Uniform, IntUniform, Choice)


def _is_real(value: Any) -> bool:
  return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_grid_size(num: Any) -> None:
  if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
    raise ValueError(f"grid: the number of points must be an integer ≥ 1, got {num!r}")


@dataclasses.dataclass(frozen=True)
class Conditional:
  """A dimension that exists only when the dimension `parent` takes one of `values`.

  Example: ``Conditional(Uniform(0.0, 0.99), parent="optimizer", values=("sgd",))``
  is the momentum of SGD, absent from configurations that pick Adam.
  """

  dimension: Dimension
  parent: str
  values: Sequence[Any]

  def __post_init__(self):
    if not isinstance(self.dimension, _DIMENSION_TYPES):
      raise TypeError(
          f"Conditional: dimension must be one of LogUniform, Uniform, IntUniform, Choice, got "
          f"{type(self.dimension).__name__}"
      )
    if not isinstance(self.parent, str) or not self.parent:
      raise TypeError(f"Conditional: parent must be a dimension name, got {self.parent!r}")
    if isinstance(self.values, (str, bytes)) or not isinstance(self.values, Sequence):
      raise TypeError(f"Conditional: values must be a sequence of parent values, got "
                      f"{self.values!r}")
    if len(self.values) == 0:
      raise ValueError("Conditional: values (the parent values that activate it) must not be empty")
    object.__setattr__(self, "values", tuple(self.values))


class SearchSpace(Mapping):
  """Named dimensions, some conditional on others; the one description every tuner reads.

  Args:
    dimensions: ``{name: Dimension | Conditional}``. A conditional dimension's
      parent must be a :class:`Choice` named earlier, and the values that
      activate it must be among the parent's options.

  A *configuration* is a dict holding a value for every active dimension (and
  no key for inactive ones).
  """

  def __init__(self, dimensions: Mapping[str, Dimension | Conditional]):
    if isinstance(dimensions, SearchSpace):
      dimensions = dimensions._dimensions
    if not isinstance(dimensions, Mapping):
      raise TypeError(f"SearchSpace: expected a mapping of name -> dimension, got "
                      f"{type(dimensions).__name__}")
    if not dimensions:
      raise ValueError("SearchSpace: at least one dimension is needed")
    seen: dict[str, Dimension | Conditional] = {}
    for name, dim in dimensions.items():
      if not isinstance(name, str) or not name:
        raise TypeError(f"SearchSpace: dimension names must be non-empty strings, got {name!r}")
      if not isinstance(dim, (*_DIMENSION_TYPES, Conditional)):
        raise TypeError(
            f"SearchSpace: {name!r} must be a LogUniform, Uniform, IntUniform, Choice or "
            f"Conditional, got {type(dim).__name__}"
        )
      if isinstance(dim, Conditional):
        parent = seen.get(dim.parent)
        if parent is None:
          where = "later" if dim.parent in dimensions else "nowhere"
          raise ValueError(
              f"SearchSpace: {name!r} is conditional on {dim.parent!r}, which is defined {where}; "
              "a parent must come before its children"
          )
        parent_dim = parent.dimension if isinstance(parent, Conditional) else parent
        if not isinstance(parent_dim, Choice):
          raise ValueError(f"SearchSpace: the parent {dim.parent!r} of {name!r} must be a Choice, "
                           f"got {type(parent_dim).__name__}")
        unknown = [v for v in dim.values if v not in parent_dim.values]
        if unknown:
          raise ValueError(f"SearchSpace: {name!r} is activated by {unknown!r}, which "
                           f"{dim.parent!r} never takes (options: {list(parent_dim.values)!r})")
      seen[name] = dim
    self._dimensions = seen

  # Mapping interface.
  def __getitem__(self, name: str) -> Dimension | Conditional:
    return self._dimensions[name]

  def __iter__(self) -> Iterator[str]:
    return iter(self._dimensions)

  def __len__(self) -> int:
    return len(self._dimensions)

  def __repr__(self) -> str:
    return f"SearchSpace({self._dimensions!r})"

  @classmethod
  def for_optimizer(cls, name: str, hyperparameters: Sequence[str] | None = None) -> SearchSpace:
    """The registry's space of optimizer `name`, over its tuned hyperparameters by default."""
    from optlab.optim import registry

    entry = registry.info(name)
    wanted = entry.tuned if hyperparameters is None else tuple(hyperparameters)
    missing = [h for h in wanted if h not in entry.search_space]
    if missing:
      raise ValueError(f"SearchSpace.for_optimizer: {entry.name} has no search space for "
                       f"{missing}; it has {sorted(entry.search_space)}")
    return cls({h: entry.search_space[h] for h in wanted})

  def dimension(self, name: str) -> Dimension:
    """The dimension of `name` itself (unwrapping a :class:`Conditional`)."""
    dim = self._dimensions[name]
    return dim.dimension if isinstance(dim, Conditional) else dim

  def is_active(self, name: str, config: Mapping[str, Any]) -> bool:
    """Whether `name` exists in a configuration with the (parent) values of `config`."""
    dim = self._dimensions[name]
    if not isinstance(dim, Conditional):
      return True
    return (self.is_active(dim.parent, config) and dim.parent in config
            and config[dim.parent] in dim.values)

  def from_unit(self, point: Sequence[float]) -> dict[str, Any]:
    """The configuration at a point of the unit cube, one coordinate per dimension in order.

    Quasi-random search maps a low-discrepancy sequence through this;
    coordinates of inactive dimensions are ignored.
    """
    point = np.asarray(point, dtype=np.float64)
    if point.shape != (len(self),):
      raise ValueError(f"from_unit: expected a point of {len(self)} coordinates, got shape "
                       f"{point.shape}")
    if np.any((point < 0) | (point > 1)):
      raise ValueError(f"from_unit: coordinates must lie in [0, 1], got {point.tolist()}")
    config: dict[str, Any] = {}
    for name, u in zip(self._dimensions, point, strict=True):
      if self.is_active(name, config):
        config[name] = _python_scalar(self.dimension(name).from_unit(np.minimum(u, 1 - 1e-12)))
    return config

  def sample(self, rng: np.random.Generator) -> dict[str, Any]:
    """A random configuration (each active dimension drawn by its own rule)."""
    return self.from_unit(rng.uniform(size=len(self)))

  def grid(self, num: int | Mapping[str, int] = 5) -> list[dict[str, Any]]:
    """Every configuration of the product grid, conditionals expanded only where active.

    Args:
      num: points per continuous or integer dimension, one number for all or a
        ``{name: points}`` mapping (names not given get 5); a :class:`Choice`
        always contributes all its options.
    """
    if isinstance(num, Mapping):
      unknown = [k for k in num if k not in self._dimensions]
      if unknown:
        raise ValueError(f"grid: {unknown} are not dimensions of this space "
                         f"({', '.join(self._dimensions)})")
      counts = {name: num.get(name, 5) for name in self._dimensions}
    else:
      counts = dict.fromkeys(self._dimensions, num)
    axes = {name: self.dimension(name).grid(counts[name]) for name in self._dimensions}
    configs: list[dict[str, Any]] = [{}]
    for name in self._dimensions:
      expanded = []
      for config in configs:
        if self.is_active(name, config):
          expanded.extend({**config, name: value} for value in axes[name])
        else:
          expanded.append(config)
      configs = expanded
    return configs

  def validate(self, config: Mapping[str, Any]) -> None:
    """Raises ValueError unless `config` is a configuration of this space."""
    unknown = [k for k in config if k not in self._dimensions]
    if unknown:
      raise ValueError(f"configuration has unknown keys {unknown}; the space has "
                       f"{list(self._dimensions)}")
    for name in self._dimensions:
      active = self.is_active(name, config)
      if active and name not in config:
        raise ValueError(f"configuration lacks {name!r}")
      if not active and name in config:
        raise ValueError(f"configuration sets {name!r}, which is inactive there")
      if active and not self.dimension(name).contains(config[name]):
        raise ValueError(f"configuration has {name}={config[name]!r}, outside "
                         f"{self.dimension(name)!r}")


def _python_scalar(value: Any) -> Any:
  if isinstance(value, np.generic):
    return value.item()
  if isinstance(value, np.ndarray) and value.ndim == 0:
    return value.item()
  return value

