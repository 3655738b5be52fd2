"""Activation functions by name: `get_activation(name)` and `activation_names()`."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from optlab.models._checks import suggest

Activation = Callable[[jax.Array], jax.Array]


def identity(x: jax.Array) -> jax.Array:
  """Returns `x` unchanged (the "identity" or "linear" activation)."""
  return x


def gelu_exact(x: jax.Array) -> jax.Array:
  """GELU with the exact erf form (PyTorch's default `nn.GELU()`)."""
  return jax.nn.gelu(x, approximate=False)


# "gelu" is the tanh approximation, as in jax.nn.gelu and GPT-2; "gelu_exact" is erf.
# "leaky_relu" has negative slope 0.01, as in jax.nn and PyTorch.
_ACTIVATIONS: dict[str, Activation] = {
  "elu": jax.nn.elu,
  "gelu": jax.nn.gelu,
  "gelu_exact": gelu_exact,
  "identity": identity,
  "leaky_relu": jax.nn.leaky_relu,
  "linear": identity,
  "mish": jax.nn.mish,
  "relu": jax.nn.relu,
  "selu": jax.nn.selu,
  "sigmoid": jax.nn.sigmoid,
  "silu": jax.nn.silu,
  "softplus": jax.nn.softplus,
  "swish": jax.nn.silu,
  "tanh": jnp.tanh,
}


def activation_names() -> tuple[str, ...]:
  """The activation names `get_activation` accepts, sorted (aliases included)."""
  return tuple(sorted(_ACTIVATIONS))


def get_activation(name: str | Activation) -> Activation:
  """Returns the activation function called `name` (case and "-" insensitive).

  Args:
    name: one of `activation_names()`, e.g. ``"relu"`` or ``"Leaky-ReLU"``; a callable
      is returned unchanged, so model arguments accept either.

  Returns:
    A function from arrays to arrays of the same shape.

  Raises:
    ValueError: for an unknown name, listing the closest names and all choices.

  Example:
    >>> import jax.numpy as jnp
    >>> get_activation("relu")(jnp.array([-1.0, 2.0]))
    Array([0., 2.], dtype=float32)
  """
  if callable(name):
    return name
  key = name.strip().lower().replace("-", "_") if isinstance(name, str) else name
  fn = _ACTIVATIONS.get(key) if isinstance(key, str) else None
  if fn is None:
    raise ValueError(
      f"get_activation: unknown activation {name!r}.{suggest(key, _ACTIVATIONS)} "
      f"Choices: {', '.join(activation_names())}"
    )
  return fn


def activation_name(fn: Activation) -> str:
  """The registered name of `fn` (the first, alphabetically), or its `__name__`."""
  for name in activation_names():
    if _ACTIVATIONS[name] is fn:
      return name
  return getattr(fn, "__name__", repr(fn))
