"""Checks shared by the models: hyperparameters at construction, inputs at call time.

Every message names the model, the argument, what it got and what it accepts. Input
checks look only at static properties (rank, shape, dtype), so they cost nothing under
`jax.jit` and never force a traced value.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def suggest(name: Any, choices: Iterable[str]) -> str:
  """A " Did you mean ...?" hint listing the choices closest to `name`, or ""."""
  close = difflib.get_close_matches(str(name), list(choices), n=3, cutoff=0.4)
  return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_choice(where: str, arg: str, value: Any, choices: Sequence[Any]) -> None:
  """Raises ValueError unless `value` is one of `choices`, suggesting the closest."""
  if value in choices:
    return
  names = [str(c) for c in choices if c is not None]
  hint = suggest(value, names)
  raise ValueError(
    f"{where}: {arg}={value!r} is not supported.{hint} Choices: "
    + ", ".join(repr(c) for c in choices)
  )


def check_positive_int(where: str, arg: str, value: Any) -> int:
  """Returns `value` as an int, raising unless it is an integer ≥ 1."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise ValueError(f"{where}: {arg} must be an integer >= 1, got {value!r}")
  return int(value)


def check_sizes(where: str, arg: str, value: Any, *, allow_empty: bool = True) -> tuple[int, ...]:
  """Returns `value` as a tuple of positive ints (a single int is a 1-tuple)."""
  if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
    value = (value,)
  try:
    sizes = tuple(value)
  except TypeError:
    raise ValueError(
      f"{where}: {arg} must be a sequence of positive integers, got {value!r}"
    ) from None
  for size in sizes:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
      raise ValueError(f"{where}: {arg} must hold positive integers, got {value!r}")
  if not sizes and not allow_empty:
    raise ValueError(f"{where}: {arg} must not be empty")
  return tuple(int(s) for s in sizes)


def check_rate(where: str, arg: str, value: Any) -> float:
  """Returns a dropout rate as a float, raising unless 0 <= value < 1."""
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    raise ValueError(f"{where}: {arg} must be a number in [0, 1), got {value!r}")
  if not 0.0 <= float(value) < 1.0:
    raise ValueError(f"{where}: {arg} must lie in [0, 1), got {value!r}")
  return float(value)


def check_rngs(where: str, rngs: Any) -> None:
  """Raises TypeError unless `rngs` is an `nnx.Rngs`."""
  if not isinstance(rngs, nnx.Rngs):
    raise TypeError(
      f"{where}: rngs must be an nnx.Rngs (e.g. nnx.Rngs(0) or "
      f"nnx.Rngs(params=0, dropout=1)), got {type(rngs).__name__}"
    )


def _shape(shape: Sequence[Any]) -> str:
  return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_features(where: str, x: jax.Array, expected: Sequence[Any], hint: str = "") -> None:
  """Raises ValueError unless `x` has len(expected) dims matching `expected`.

  `expected` holds ints for the sizes that must match and strings (such as "batch")
  for free axes.
  """
  ok = x.ndim == len(expected) and all(
    isinstance(e, str) or e == s for e, s in zip(expected, x.shape, strict=False)
  )
  if not ok:
    raise ValueError(
      f"{where}: expected input of shape {_shape(expected)}, got shape {_shape(x.shape)}"
      + (f"; {hint}" if hint else "")
    )


def _input_dtype(x: Any) -> np.dtype | None:
  """The dtype `x` would have as an array, found without handing it to JAX (None if none)."""
  dtype = getattr(x, "dtype", None)
  if dtype is None:
    try:
      dtype = np.asarray(x).dtype
    except Exception:
      return None
  try:
    return np.dtype(dtype)
  except TypeError:
    return None


def _is_concrete(x: Any) -> bool:
  """True for a NumPy array or a committed JAX array, False for a tracer."""
  return not isinstance(x, jax.core.Tracer)


def check_float_input(where: str, x: Any) -> jax.Array:
  """Returns `x` as an array, raising TypeError for non-numeric or complex inputs.

  The dtype is checked before the value reaches JAX, so an array of strings or
  objects fails here with the model's name, not deep inside JAX.
  """
  dtype = _input_dtype(x)
  if dtype is not None and not (jnp.issubdtype(dtype, jnp.number) or dtype == np.bool_):
    raise TypeError(
      f"{where}: expected a real numeric array (float, int or bool), got dtype {dtype}"
    )
  if dtype is not None and jnp.issubdtype(dtype, jnp.complexfloating):
    raise TypeError(
      f"{where}: expected a real numeric array (float, int or bool), got dtype {dtype}; "
      "pass the real and imaginary parts as separate features"
    )
  x = jnp.asarray(x)
  if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
    raise TypeError(f"{where}: expected a numeric array, got dtype {x.dtype}")
  return x


def check_token_input(
  where: str, x: Any, max_len: int | None = None, vocab_size: int | None = None
) -> jax.Array:
  """Returns integer token ids of shape (batch, time), raising TypeError/ValueError otherwise.

  With `vocab_size`, concrete (not traced) ids are also checked to lie in
  [0, vocab_size): an id outside the embedding table would otherwise give NaN
  logits. Under `jax.jit` the values are unknown and only the shape and dtype are
  checked.
  """
  dtype = _input_dtype(x)
  if dtype is None or not jnp.issubdtype(dtype, jnp.integer):
    raise TypeError(
      f"{where}: expected integer token ids of shape (batch, time), got dtype {dtype}; "
      "pass float features to a model built for features instead"
    )
  x = jnp.asarray(x)
  if x.ndim != 2:
    raise ValueError(
      f"{where}: expected token ids of shape (batch, time), got shape {_shape(x.shape)}"
    )
  if max_len is not None and x.shape[1] > max_len:
    raise ValueError(
      f"{where}: sequence length {x.shape[1]} exceeds max_len={max_len}; "
      f"expected shape (batch, time <= {max_len}), got {_shape(x.shape)}"
    )
  if vocab_size is not None and x.size and _is_concrete(x):
    low, high = int(x.min()), int(x.max())
    if low < 0 or high >= vocab_size:
      raise ValueError(
        f"{where}: token ids must lie in [0, vocab_size={vocab_size}), got ids in "
        f"[{low}, {high}]"
      )
  return x


def as_rngs(rngs: nnx.Rngs | jax.Array | None) -> nnx.Rngs | None:
  """A call-time `rngs` argument as an `nnx.Rngs`: a key becomes its dropout stream."""
  if rngs is None or isinstance(rngs, nnx.Rngs):
    return rngs
  if isinstance(rngs, jax.Array):
    return nnx.Rngs(dropout=rngs)
  raise TypeError(f"rngs must be an nnx.Rngs, a PRNG key or None, got {type(rngs).__name__}")
