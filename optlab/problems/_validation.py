"""Argument checks for the problem factories.

Each check names the factory, the argument, the value it got and the range it
accepts, so a wrong argument fails when the problem is built, with a message a
user can act on. A value that is not concrete (a tracer, when a problem is built
inside `jit` or `vmap`) is passed through unchecked: a check never forces a trace
to a value.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def check_int(where: str, name: str, value: Any, minimum: int) -> int:
  """Returns `value` as an int, or raises unless it is an integer >= `minimum`."""
  if isinstance(value, bool):
    raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}")
  try:
    integer = operator.index(value)
  except TypeError:
    raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value!r}") from None
  if integer < minimum:
    raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {integer!r}")
  return integer


def check_real(
  where: str,
  name: str,
  value: Any,
  low: float = -math.inf,
  high: float = math.inf,
  *,
  low_inclusive: bool = True,
  high_inclusive: bool = True,
) -> Any:
  """Returns `value` (as a float when concrete) or raises unless it is finite and in range."""
  if isinstance(value, jax.core.Tracer):
    return value
  accepted = "a finite number" + _describe_range(low, high, low_inclusive, high_inclusive)
  if isinstance(value, bool):
    raise ValueError(f"{where}: {name} must be {accepted}, got {value!r}")
  try:
    number = float(value)
  except (TypeError, ValueError):
    raise ValueError(f"{where}: {name} must be {accepted}, got {value!r}") from None
  too_low = number < low or (number == low and not low_inclusive)
  too_high = number > high or (number == high and not high_inclusive)
  if not math.isfinite(number) or too_low or too_high:
    raise ValueError(f"{where}: {name} must be {accepted}, got {value!r}")
  return number


def _describe_range(low: float, high: float, low_inclusive: bool, high_inclusive: bool) -> str:
  if math.isinf(low) and math.isinf(high):
    return ""
  if math.isinf(high):
    return f" {'>=' if low_inclusive else '>'} {low:g}"
  if math.isinf(low):
    return f" {'<=' if high_inclusive else '<'} {high:g}"
  left = "[" if low_inclusive else "("
  right = "]" if high_inclusive else ")"
  return f" in {left}{low:g}, {high:g}{right}"


def check_choice(where: str, name: str, value: Any, choices: Sequence[str]) -> str:
  """Returns `value` or raises unless it is one of `choices`."""
  if value not in choices:
    options = ", ".join(repr(choice) for choice in choices)
    raise ValueError(f"{where}: {name} must be one of {options}, got {value!r}")
  return value


def check_dtype(where: str, dtype: Any) -> np.dtype:
  """Returns `dtype` as a NumPy dtype, or raises unless it is a floating dtype."""
  try:
    resolved = jnp.dtype(dtype)
  except TypeError:
    raise ValueError(f"{where}: dtype must be a floating dtype, got {dtype!r}") from None
  if not jnp.issubdtype(resolved, jnp.floating):
    raise ValueError(f"{where}: dtype must be a floating dtype, got {dtype!r}")
  return resolved


def check_vector(where: str, name: str, value: Any, dim: int) -> np.ndarray:
  """Returns `value` as a finite float64 vector of shape (dim,), or raises."""
  array = np.asarray(value, dtype=np.float64)
  if array.shape != (dim,):
    raise ValueError(
      f"{where}: {name} must have shape ({dim},) to match dim={dim}, got shape {array.shape}"
    )
  if not np.all(np.isfinite(array)):
    raise ValueError(f"{where}: {name} must be finite, got {array.tolist()!r}")
  return array
