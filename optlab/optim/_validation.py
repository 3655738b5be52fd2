"""Checks of hyperparameters and inputs, run when an optimizer is built.

Every check names the optimizer, the argument, the value it got and the range it
accepts, so that a wrong argument fails at construction with a message a user can
act on, never as a NaN many steps later. Values that are not concrete (a schedule,
or a tracer when hyperparameters are injected and vmapped) are checked when they
become concrete, or not at all: a check never forces a trace to a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import numpy as np


def concrete_values(value: Any) -> np.ndarray | None:
  """Returns `value` as a float64 NumPy array, or None when it is not concrete."""
  if value is None or callable(value) or isinstance(value, (str, bytes)):
    return None
  if isinstance(value, jax.core.Tracer):
    return None
  if isinstance(value, bool):
    raise TypeError(f"expected a number, got the bool {value!r}")
  try:
    array = np.asarray(value)
  except Exception:
    return None
  if array.dtype == object:
    return None
  if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
    return None
  if np.iscomplexobj(array):
    raise TypeError(f"expected a real number, got the complex value {value!r}")
  return array.astype(np.float64)


def _describe(value: Any) -> str:
  array = np.asarray(value)
  return repr(float(array)) if array.ndim == 0 else repr(array.tolist())


def check_range(
    where: str,
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> None:
  """Raises ValueError unless `value` is finite and lies in the given interval.

  A string is a TypeError here (it would otherwise pass unchecked and fail deep inside
  JAX at the first update).
  """
  if isinstance(value, (str, bytes)):
    raise TypeError(f"{where}: {name} must be a number, got the string {value!r}")
  try:
    array = concrete_values(value)
  except TypeError as error:
    raise TypeError(f"{where}: {name} {error}") from None
  if array is None:
    return
  left = "[" if low_inclusive else "("
  right = "]" if high_inclusive else ")"
  accepted = f"{left}{low:g}, {high:g}{right}"
  if not np.all(np.isfinite(array)):
    raise ValueError(
        f"{where}: {name} must be a finite number in {accepted}, got {_describe(value)}"
    )
  too_low = array < low if low_inclusive else array <= low
  too_high = array > high if high_inclusive else array >= high
  if np.any(too_low) or np.any(too_high):
    raise ValueError(f"{where}: {name} must be in {accepted}, got {_describe(value)}")


def check_learning_rate(where: str, value: Any, name: str = "learning_rate") -> None:
  """A learning rate is a finite number ≥ 0, or a schedule (a callable of the step)."""
  if value is None:
    raise ValueError(f"{where}: {name} is required (a number ≥ 0 or a schedule), got None")
  if callable(value):
    return
  if isinstance(value, (str, bytes)):
    raise TypeError(f"{where}: {name} must be a number ≥ 0 or a schedule (a callable of the "
                    f"step), got the string {value!r}")
  check_range(where, name, value, 0.0, math.inf)


def check_non_negative(where: str, name: str, value: Any) -> None:
  """Epsilons, weight decays and accumulator values: finite and ≥ 0."""
  check_range(where, name, value, 0.0, math.inf)


def check_positive(where: str, name: str, value: Any) -> None:
  check_range(where, name, value, 0.0, math.inf, low_inclusive=False)


def check_decay(where: str, name: str, value: Any) -> None:
  """Betas, momenta and decay rates: finite and in [0, 1)."""
  check_range(where, name, value, 0.0, 1.0, high_inclusive=False)


def check_choice(where: str, name: str, value: Any, choices: tuple[Any, ...]) -> None:
  if value not in choices:
    options = ", ".join(repr(c) for c in choices)
    raise ValueError(f"{where}: {name} must be one of {options}, got {value!r}")


def check_callable_or_none(where: str, name: str, value: Any) -> None:
  if value is not None and not callable(value):
    raise TypeError(f"{where}: {name} must be a schedule (a callable of the step) or None, "
                    f"got {type(value).__name__}")


def check_same_structure(where: str, updates: Any, reference: Any, reference_name: str) -> None:
  """Raises ValueError when `updates` and `reference` are trees of different structure.

  Runs at trace time only (tree structures are static), so it costs nothing
  inside a compiled step.
  """
  updates_def = jax.tree.structure(updates)
  reference_def = jax.tree.structure(reference)
  if updates_def != reference_def:
    raise ValueError(
        f"{where}: the updates do not have the tree structure of the {reference_name} "
        f"they are applied to.\n  updates: {updates_def}\n  {reference_name}: {reference_def}"
    )
  for i, (u, r) in enumerate(zip(jax.tree.leaves(updates), jax.tree.leaves(reference),
                                 strict=True)):
    if np.shape(u) != np.shape(r):
      raise ValueError(
          f"{where}: leaf {i} of the updates has shape {np.shape(u)} but the "
          f"{reference_name} has shape {np.shape(r)}"
      )


def check_float_tree(where: str, tree: Any, what: str = "params") -> None:
  """Optimizers in optlab act on real floating-point leaves only."""
  for i, leaf in enumerate(jax.tree.leaves(tree)):
    dtype = np.dtype(leaf.dtype) if hasattr(leaf, "dtype") else np.result_type(leaf)
    if not np.issubdtype(dtype, np.floating) and dtype.name != "bfloat16":
      raise TypeError(
          f"{where}: leaf {i} of the {what} has dtype {dtype}; this optimizer accepts "
          "real floating-point arrays only (float16, bfloat16, float32, float64). "
          f"Cast integer {what} with .astype(jnp.float32); split complex ones with "
          "optax.contrib.split_real_and_imaginary."
      )


Validator = Callable[[str, Any], None]
