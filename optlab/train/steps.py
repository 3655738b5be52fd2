"""Pure train and eval steps over the split state of a Flax NNX model.

The model is split once (``nnx.split``) into a static graph definition and
array state; each step merges them inside a pure function, so ``jax.jit``,
``jax.lax.scan`` and ``jax.vmap`` see plain JAX.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from optlab.train.state import TrainState

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy with integer labels; logits may have extra leading axes."""
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))


def mean_squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Mean of ½ (prediction − target)² (targets reshaped to the predictions)."""
  return 0.5 * jnp.mean((predictions - targets.reshape(predictions.shape)) ** 2)


def binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean sigmoid cross-entropy; labels in {0, 1}."""
  logits = logits.reshape(labels.shape)
  return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels.astype(logits.dtype)))


LOSSES: dict[str, LossFn] = {
    "cross_entropy": cross_entropy,
    "mse": mean_squared_error,
    "binary_cross_entropy": binary_cross_entropy,
}


def get_loss(loss: str | LossFn) -> LossFn:
  """A loss function by name (see ``LOSSES``), or the callable itself."""
  if callable(loss):
    return loss
  if loss not in LOSSES:
    close = difflib.get_close_matches(str(loss), list(LOSSES), n=3)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown loss {loss!r}.{hint} Known: {', '.join(LOSSES)}")
  return LOSSES[loss]


def l2_penalty(params: Any) -> jax.Array:
  """½ Σ θ² over every parameter."""
  return 0.5 * sum(jnp.sum(jnp.square(p.astype(jnp.float32))) for p in jax.tree.leaves(params))


def all_finite(tree: Any) -> jax.Array:
  leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
  return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)



def apply_gradients(
    tx: optax.GradientTransformation,
    state: TrainState,
    grads: Any,
    model_state: Any,
    *,
    finite: jax.Array | None = None,
) -> TrainState:
  """One optimizer step on `state`: ``tx.update``, ``optax.apply_updates``, step + 1.

  Every train step of optlab (plain, adversarial, multi-task) ends here. With
  `finite` (a traced boolean: were the loss and gradients finite?), a non-finite
  step instead leaves parameters, model state and optimizer state untouched and
  increments ``state.skipped``; it is a branch (``lax.cond``), not a select over
  every buffer, so the update runs only when the step is finite.
  """

  def apply(state: TrainState, grads: Any, model_state: Any) -> TrainState:
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        model_state=model_state,
        opt_state=opt_state,
        skipped=state.skipped,
    )

  def skip(state: TrainState, grads: Any, model_state: Any) -> TrainState:
    del grads, model_state
    return state._replace(step=state.step + 1, skipped=state.skipped + 1)

  if finite is None:
    return apply(state, grads, model_state)
  return jax.lax.cond(finite, apply, skip, state, grads, model_state)


def make_train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    loss_fn: LossFn,
    *,
    l2: float = 0.0,
    skip_nonfinite: bool = True,
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, jax.Array]]:
  """Returns ``step(state, x, y) -> (state, loss)``, pure and jit-able.

  The loss minimized is ``loss_fn(model(x), y) + l2 · ½‖θ‖²``. When
  ``skip_nonfinite`` is set, a step whose loss or gradients are not finite leaves
  the parameters, model state and optimizer state unchanged and increments
  ``state.skipped``.
  """

  def objective(params, model_state, x, y):
    # copy=True: the merged model mutates its state (dropout RNG counts, batch
    # statistics) inside jax.grad, which Flax allows only on fresh Variables.
    model = nnx.merge(graphdef, params, model_state, copy=True)
    outputs = model(x)
    loss = loss_fn(outputs, y)
    if l2:
      loss = loss + l2 * l2_penalty(params)
    _, _, new_model_state = nnx.split(model, nnx.Param, ...)
    return loss, new_model_state

  def step(state: TrainState, x: jax.Array, y: jax.Array) -> tuple[TrainState, jax.Array]:
    (loss, model_state), grads = jax.value_and_grad(objective, has_aux=True)(
        state.params, state.model_state, x, y
    )
    finite = (jnp.isfinite(loss) & all_finite(grads)) if skip_nonfinite else None
    return apply_gradients(tx, state, grads, model_state, finite=finite), loss

  return step


def make_predict(graphdef: nnx.GraphDef, batch_size: int) -> Callable[..., jax.Array]:
  """Returns ``predict(params, model_state, x) -> outputs`` over x in chunks of `batch_size`.

  The data is padded to a multiple of the chunk size and evaluated with
  ``lax.map``, so one compilation serves any number of examples of a given shape.
  """

  def predict(params, model_state, x):
    n = x.shape[0]
    chunks = -(-n // batch_size)
    pad = chunks * batch_size - n
    padded = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    padded = padded.reshape(chunks, batch_size, *x.shape[1:])
    model = nnx.merge(graphdef, params, model_state)
    outputs = jax.lax.map(model, padded)
    return outputs.reshape(chunks * batch_size, *outputs.shape[2:])[:n]

  return predict


def make_evaluate(
    graphdef: nnx.GraphDef,
    loss_fn: LossFn,
    metric_fns: dict[str, Callable[[jax.Array, jax.Array], jax.Array]],
    batch_size: int,
) -> Callable[..., dict[str, jax.Array]]:
  """Returns ``evaluate(params, model_state, x, y) -> {"loss": ..., metric: ...}`` (jit-able)."""
  predict = make_predict(graphdef, batch_size)

  def evaluate(params, model_state, x, y):
    outputs = predict(params, model_state, x)
    results = {"loss": loss_fn(outputs, y)}
    for name, fn in metric_fns.items():
      results[name] = fn(outputs, y)
    return results

  return evaluate


def epoch_batch_indices(key: jax.Array, n: int, batch_size: int) -> jax.Array:
  """A shuffled (num_batches, batch_size) int32 index array; the remainder is dropped."""
  num_batches = n // batch_size
  permutation = jax.random.permutation(key, n)
  return permutation[: num_batches * batch_size].reshape(num_batches, batch_size).astype(jnp.int32)


def make_scan_epoch(
    train_step: Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, jax.Array]],
    batch_size: int,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, jax.Array]]:
  """Returns ``epoch(state, x, y, key) -> (state, losses)``: a whole epoch as one ``lax.scan``.

  The batch order is a permutation drawn from `key`; `augment(key, x_batch)` (if
  given) runs inside the scan with a key folded from the epoch key and the step.
  """

  def epoch(state, x, y, key):
    order_key, augment_key = jax.random.split(key)
    indices = epoch_batch_indices(order_key, x.shape[0], batch_size)

    def body(state, batch_indices):
      xb = jnp.take(x, batch_indices, axis=0)
      yb = jnp.take(y, batch_indices, axis=0)
      if augment is not None:
        xb = augment(jax.random.fold_in(augment_key, state.step), xb)
      return train_step(state, xb, yb)

    return jax.lax.scan(body, state, indices)

  return epoch

