"""The training state: everything a step reads and writes, as one pytree."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx


class TrainState(NamedTuple):
  """A pure pytree carried through the compiled steps.

  Attributes:
    step: int32 scalar, optimizer steps taken (skipped steps included).
    params: the model's ``nnx.Param`` state; in ``fit(..., packed=...)``, its packed
      buffers (a tuple of 1-D arrays, one per dtype: ``optlab.optim.packed.Packing``).
    model_state: the rest of the model's state (batch statistics, dropout RNG counters).
    opt_state: the optimizer's state.
    skipped: int32 scalar, steps skipped because the loss or a gradient was not finite.
  """

  step: jax.Array
  params: Any
  model_state: Any
  opt_state: optax.OptState
  skipped: jax.Array


class LearningRateScaleState(NamedTuple):
  """State of :func:`learning_rate_scale`: the factor callbacks such as reduce-on-plateau set."""

  scale: jax.Array  # float32 scalar


def learning_rate_scale() -> optax.GradientTransformation:
  """Multiplies the updates by a factor kept in the state (1 at start).

  Chained after the user's optimizer, it lets callbacks (reduce-on-plateau) lower
  the effective learning rate of any optimizer without rebuilding it.
  """

  def init_fn(params):
    del params
    return LearningRateScaleState(scale=jnp.ones([], jnp.float32))

  def update_fn(updates, state, params=None):
    del params
    scaled = jax.tree.map(lambda u: (state.scale * u).astype(u.dtype), updates)
    return scaled, state

  return optax.GradientTransformation(init_fn, update_fn)


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.GraphDef, Any, Any]:
  """Returns (train graphdef, eval graphdef, params, rest) of a Flax NNX model.

  The two graph definitions differ only in the static train/eval flags (dropout,
  batch normalization); they share one state.
  """
  model.eval()
  eval_graphdef, _, _ = nnx.split(model, nnx.Param, ...)
  model.train()
  train_graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  return train_graphdef, eval_graphdef, params, rest

