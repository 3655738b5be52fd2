"""Small pieces the models share: normalization layers and train/eval-aware calls."""

from __future__ import annotations

import jax
from flax import nnx

from optlab.models._checks import check_choice

NORMALIZATIONS = (None, "layer", "batch")

# PyTorch's BatchNorm default (running = 0.9 running + 0.1 batch); flax's own default is
# 0.99, which needs hundreds of steps before the running statistics are usable.
BATCHNORM_MOMENTUM = 0.9


def make_norm(
  where: str, kind: str | None, features: int, *, momentum: float, rngs: nnx.Rngs
) -> nnx.Module | None:
  """A LayerNorm or BatchNorm over the last axis of width `features`, or None."""
  check_choice(where, "normalization", kind, NORMALIZATIONS)
  if kind == "layer":
    return nnx.LayerNorm(features, rngs=rngs)
  if kind == "batch":
    return nnx.BatchNorm(features, momentum=momentum, rngs=rngs)
  return None


def apply_norm(norm: nnx.Module | None, x: jax.Array, deterministic: bool | None) -> jax.Array:
  """Applies `norm`; BatchNorm uses its running averages when `deterministic` is True.

  With `deterministic=None` a BatchNorm follows its own mode (`model.train()` /
  `model.eval()`).
  """
  if norm is None:
    return x
  if isinstance(norm, nnx.BatchNorm):
    return norm(x, use_running_average=deterministic)
  return norm(x)


def apply_dropout(
  dropout: nnx.Dropout | None,
  x: jax.Array,
  deterministic: bool | None,
  rngs: nnx.Rngs | None,
) -> jax.Array:
  """Applies `dropout` (None means rate 0) with the call-time overrides."""
  if dropout is None:
    return x
  return dropout(x, deterministic=deterministic, rngs=rngs)
