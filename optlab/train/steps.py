"""Pure train and eval steps over the split state of a Flax NNX model.

The model is split once (``nnx.split``) into a static graph definition and
array state; each step merges them inside a pure function, so ``jax.jit``,
``jax.lax.scan`` and ``jax.vmap`` see plain JAX.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from optlab.data.batching import epoch_permutation
from optlab.metrics.losses import integer_label_cross_entropy
from optlab.train.state import TrainState
from optlab.train.update_stats import (  # noqa: F401  (re-exported: the fit loop reads them here)
  EFFECTIVE_LR,
  UPDATE_RATIO,
  accumulate_statistics,
  mean_statistics,
  update_statistic_names,
  update_statistics,
  zero_statistics,
)

if TYPE_CHECKING:
  from optlab.optim.packed import Packing

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Mean softmax cross-entropy with integer labels; logits may have extra leading axes."""
  return jnp.mean(integer_label_cross_entropy(logits, labels))


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


# A tree of at most this many elements is checked as one concatenation (see all_finite).
_ONE_PASS_ELEMENTS = 1 << 16


def all_finite(tree: Any) -> jax.Array:
  """Whether every element of every leaf of `tree` is finite (no NaN, no ±inf).

  Computed as ``isfinite(Σ_leaves Σ x·0)``: ``x·0`` is NaN exactly where ``x``
  is NaN or ±inf and ±0 elsewhere, so the sum is 0 for a finite tree and NaN
  otherwise, whatever the magnitudes (nothing can overflow). A float sum is one
  vectorized pass; ``all(isfinite(x))`` reduces booleans, which XLA:CPU does
  element by element (measured on the MLP 784-512-512-10 scanned step: 4.3% of
  the step for the boolean form, 0.9% for this one).

  A small tree (at most 65,536 elements) is summed as one concatenation: XLA:CPU
  splits every sum into two reductions, and for small leaves the per-operation
  cost is what counts (the leaf-by-leaf check of the MLP 64-128-10 was 8-10% of
  its scanned epoch, the concatenated one 3-5%). Larger trees are summed leaf by
  leaf (concatenating the bias gradients of the MLP 784-512-512-10 cost 1-2% of
  its step). The gradients are materialized before the concatenation
  (``optimization_barrier``), so XLA does not fuse their own reductions into it.
  """
  leaves = jax.tree.leaves(tree)
  if not leaves:
    return jnp.asarray(True)
  floating = all(jnp.issubdtype(x.dtype, jnp.floating) for x in leaves)
  if floating and len(leaves) > 1 and sum(x.size for x in leaves) <= _ONE_PASS_ELEMENTS:
    dtype = functools.reduce(jnp.promote_types, (_sum_dtype(x) for x in leaves))
    flat = jnp.concatenate([x.ravel().astype(dtype)
                            for x in jax.lax.optimization_barrier(leaves)])
    return jnp.isfinite(jnp.sum(flat * jnp.zeros((), dtype)))
  total = sum(jnp.sum(x * jnp.zeros((), x.dtype), dtype=_sum_dtype(x)) for x in leaves)
  return jnp.isfinite(total)


def _sum_dtype(x: jax.Array) -> Any:
  """float32 sums for low-precision floats (a bfloat16 ±0 sum is exact too, but keep one dtype)."""
  if jnp.issubdtype(x.dtype, jnp.complexfloating):
    return x.dtype
  if jnp.issubdtype(x.dtype, jnp.floating):
    return jnp.promote_types(x.dtype, jnp.float32)
  return jnp.float32


def apply_gradients(
    tx: optax.GradientTransformation,
    state: TrainState,
    grads: Any,
    model_state: Any,
    *,
    finite: jax.Array | None = None,
    return_updates: bool = False,
) -> TrainState | tuple[TrainState, Any]:
  """One optimizer step on `state`: ``tx.update``, ``optax.apply_updates``, step + 1.

  Every train step of optlab (plain, adversarial, multi-task) ends here. With
  `finite` (a traced boolean: were the loss and gradients finite?), a non-finite
  step instead leaves parameters, model state and optimizer state untouched and
  increments ``state.skipped``. The update runs only when the step is finite: a
  branch (``lax.cond``), not a select over every buffer, which reads and writes
  the state again. (A 0-or-1-trip ``lax.while_loop`` measured the same on a
  compute-bound MLP 784-512-512-10 step and made a dispatch-bound MLP 64-128-10
  step of a Python loop twice as slow: 149 vs 73 µs, the unchecked step 70 µs.)
  With `return_updates`, returns ``(state, updates)``: the updates ``Δθ`` applied
  (zeros for a skipped step).
  """

  def apply(state: TrainState, grads: Any, model_state: Any) -> tuple[TrainState, Any]:
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return TrainState(
        step=state.step + 1,
        params=optax.apply_updates(state.params, updates),
        model_state=model_state,
        opt_state=opt_state,
        skipped=state.skipped,
    ), (updates if return_updates else None)

  if finite is None:
    new_state, updates = apply(state, grads, model_state)
    return (new_state, updates) if return_updates else new_state

  updates = None
  if return_updates:  # zeros shaped (and typed) like what tx.update returns
    shapes = jax.eval_shape(tx.update, grads, state.opt_state, state.params)[0]
    updates = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

  def skip(state: TrainState, grads: Any, model_state: Any) -> tuple[TrainState, Any]:
    del grads, model_state
    return state, updates

  finite = jnp.asarray(finite, jnp.bool_)
  new_state, updates = jax.lax.cond(finite, apply, skip, state, grads, model_state)
  new_state = new_state._replace(
      step=state.step + 1,
      skipped=state.skipped + jnp.logical_not(finite).astype(state.skipped.dtype))
  return (new_state, updates) if return_updates else new_state


def check_accumulate_steps(accumulate_steps: Any, caller: str = "make_train_step") -> int:
  """`accumulate_steps` as a positive int, or a ValueError/TypeError naming it."""
  if isinstance(accumulate_steps, bool) or not isinstance(accumulate_steps, int):
    raise TypeError(f"{caller}: accumulate_steps must be an int ≥ 1 (micro-batches per "
                    f"optimizer step), got {accumulate_steps!r}")
  if accumulate_steps < 1:
    raise ValueError(f"{caller}: accumulate_steps must be ≥ 1, got {accumulate_steps}")
  return accumulate_steps


def check_compute_dtype(compute_dtype: Any, caller: str = "make_train_step") -> Any:
  """`compute_dtype` as a numpy dtype (None stays None), or an error naming it.

  Accepted: floating dtypes with float32's exponent range (bfloat16, float32).
  float16 is refused: its range (≤ 65504, normals ≥ 6e-5) makes small gradients
  underflow unless the loss is scaled, which optlab does not do.
  """
  if compute_dtype is None:
    return None
  try:
    dtype = jnp.dtype(compute_dtype)
  except TypeError as error:
    raise TypeError(f"{caller}: compute_dtype must be a dtype such as jnp.bfloat16, got "
                    f"{compute_dtype!r}") from error
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{caller}: compute_dtype must be a floating dtype (jnp.bfloat16 or "
                     f"jnp.float32), got {dtype}")
  if float(jnp.finfo(dtype).max) < 1e38:
    raise ValueError(f"{caller}: compute_dtype {dtype} has a narrower exponent range than "
                     "float32 and would need loss scaling, which optlab does not do; use "
                     "jnp.bfloat16 (float32's range, no scaling needed)")
  return dtype


def cast_floating(tree: Any, dtype: Any) -> Any:
  """Casts the floating-point leaves of `tree` to `dtype` (integer and key leaves unchanged)."""
  def cast(x):
    x_dtype = getattr(x, "dtype", None)
    if x_dtype is not None and jnp.issubdtype(x_dtype, jnp.floating) and x_dtype != dtype:
      return x.astype(dtype)
    return x

  return jax.tree.map(cast, tree)


def _like(tree: Any, reference: Any) -> Any:
  """`tree` with each floating leaf cast back to the dtype of the same leaf of `reference`."""
  def cast(x, ref):
    if jnp.issubdtype(ref.dtype, jnp.floating) and x.dtype != ref.dtype:
      return x.astype(ref.dtype)
    return x

  return jax.tree.map(cast, tree, reference)


def _micro_batches(array: jax.Array, accumulate_steps: int, name: str) -> jax.Array:
  """(k·b, ...) -> (k, b, ...), micro-batch j holding examples j, j + k, j + 2k, ...

  Strided rather than contiguous so that a batch sharded along its first axis
  over devices gives micro-batches sharded the same way (each device keeps its
  share of every micro-batch).
  """
  n = array.shape[0]
  if n % accumulate_steps:
    raise ValueError(f"make_train_step: the batch of {n} examples ({name}) does not split into "
                     f"accumulate_steps={accumulate_steps} equal micro-batches")
  split = array.reshape(n // accumulate_steps, accumulate_steps, *array.shape[1:])
  return jnp.swapaxes(split, 0, 1)


def make_train_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    loss_fn: LossFn,
    *,
    l2: float = 0.0,
    skip_nonfinite: bool = True,
    update_stats: bool = False,
    accumulate_steps: int = 1,
    compute_dtype: Any = None,
    packing: Packing | None = None,
) -> Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, Any]]:
  """Returns ``step(state, x, y) -> (state, loss)``, pure and jit-able.

  The loss minimized is ``loss_fn(model(x), y) + l2 · ½‖θ‖²``. When
  ``skip_nonfinite`` is set, a step whose loss or gradients are not finite leaves
  the parameters, model state and optimizer state unchanged and increments
  ``state.skipped``. With ``update_stats``, the step returns
  ``(state, (loss, stats))``, ``stats`` from :func:`update_statistics` on the
  parameters before the step, the updates and the gradients (NaN for a skipped step).

  Gradient accumulation: with ``accumulate_steps=k``, the batch of ``k·b``
  examples is split into k micro-batches of b (micro-batch j holds examples j,
  j + k, ...) and a ``lax.scan`` sums their gradients before one optimizer step
  on the mean: the same step as one batch of ``k·b`` (the mean of equal-sized
  micro-batch means is the batch mean), with the activations of only one
  micro-batch alive at a time. The model state (dropout counters, batch-norm
  statistics) is threaded through the micro-batches, so batch normalization
  sees micro-batches of b.

  Mixed precision: with ``compute_dtype=jnp.bfloat16``, the float32 parameters
  (the master copy the optimizer updates) and floating inputs are cast to
  bfloat16 inside the loss, so the forward and backward passes run in bfloat16;
  the outputs are cast back to float32 before `loss_fn`, and the gradients come
  out float32 (the transpose of the cast), so `tx` and its state stay float32.
  No loss scaling: bfloat16 has float32's 8-bit exponent (range ~1e-38 to 3e38),
  so gradients do not underflow as in float16; only the mantissa is shorter.

  Packed parameters: with `packing` (an ``optlab.optim.packed.Packing`` of the
  parameter tree), ``state.params`` holds ``packing.pack(params)``, the few 1-D
  buffers, and `tx` must act on them (``optlab.optim.packed.packed``). The loss
  unpacks them first (static slices inside the compiled step), so the gradient
  comes back packed; the update statistics are taken on the unpacked trees.
  """
  accumulate_steps = check_accumulate_steps(accumulate_steps)
  compute_dtype = check_compute_dtype(compute_dtype)
  as_tree = (lambda t: t) if packing is None else packing.unpack

  def objective(params, model_state, x, y):
    # copy=True: the merged model mutates its state (dropout RNG counts, batch
    # statistics) inside jax.grad, which Flax allows only on fresh Variables.
    compute_params = params if compute_dtype is None else cast_floating(params, compute_dtype)
    model = nnx.merge(graphdef, compute_params, model_state, copy=True)
    if compute_dtype is None:
      outputs = model(x)
    else:
      outputs = cast_floating(model(cast_floating(x, compute_dtype)), jnp.float32)
    loss = loss_fn(outputs, y)
    if l2:
      loss = loss + l2 * l2_penalty(params)
    _, _, new_model_state = nnx.split(model, nnx.Param, ...)
    if compute_dtype is not None:  # batch statistics keep their own dtype
      new_model_state = _like(new_model_state, model_state)
    return loss, new_model_state

  tree_grad_fn = jax.value_and_grad(objective, has_aux=True)

  def grad_fn(params, model_state, x, y):
    """``((loss, model_state), grads)``, the gradients in the layout of `params`."""
    if packing is None:
      return tree_grad_fn(params, model_state, x, y)
    aux, grads = tree_grad_fn(packing.unpack(params), model_state, x, y)
    # Packed from materialized gradients: taken through the unpacking instead, the
    # gradient's concatenation had the bias gradients' reductions fused into it, and
    # XLA:CPU spent 42 ms of a 5 ms MLP 784-512-512-10 step in that one loop.
    return aux, packing.pack(jax.lax.optimization_barrier(grads))

  def accumulated(params, model_state, x, y):
    """``grad_fn`` over k micro-batches: the mean loss and gradient, in one ``lax.scan``."""
    xs = _micro_batches(x, accumulate_steps, "x")
    ys = _micro_batches(y, accumulate_steps, "y")

    def sum_dtype(p):
      return jnp.float32 if jnp.issubdtype(p.dtype, jnp.floating) else p.dtype

    def body(carry, batch):
      model_state, loss_sum, grad_sum = carry
      (loss, model_state), grads = grad_fn(params, model_state, *batch)
      grad_sum = jax.tree.map(lambda s, g: s + g.astype(s.dtype), grad_sum, grads)
      return (model_state, loss_sum + loss.astype(jnp.float32), grad_sum), None

    zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, sum_dtype(p)), params)
    carry = (model_state, jnp.zeros([], jnp.float32), zeros)
    (model_state, loss_sum, grad_sum), _ = jax.lax.scan(body, carry, (xs, ys))
    grads = jax.tree.map(lambda s, p: (s / accumulate_steps).astype(p.dtype), grad_sum, params)
    return (loss_sum / accumulate_steps, model_state), grads  # the loss summed in float32

  loss_and_grads = grad_fn if accumulate_steps == 1 else accumulated

  def step(state: TrainState, x: jax.Array, y: jax.Array) -> tuple[TrainState, jax.Array]:
    (loss, model_state), grads = loss_and_grads(state.params, state.model_state, x, y)
    finite = (jnp.isfinite(loss) & all_finite(grads)) if skip_nonfinite else None
    if not update_stats:
      return apply_gradients(tx, state, grads, model_state, finite=finite), loss
    new_state, updates = apply_gradients(tx, state, grads, model_state, finite=finite,
                                         return_updates=True)
    stats = update_statistics(as_tree(state.params), as_tree(updates), as_tree(grads))
    if finite is not None:
      stats = {k: jnp.where(finite, v, jnp.nan) for k, v in stats.items()}
    return new_state, (loss, stats)

  return step


class FlatStateStep:
  """``jax.jit(step, donate_argnums=0)`` that takes and returns the state as a flat list.

  A Python loop of jitted steps pays at every call for flattening the state
  (the nested ``nnx.State`` containers of parameters, model state and optimizer
  state) and for rebuilding it from the outputs: 15-20 µs of a 60 µs MLP 64-128-10
  step, ~2% of a 5 ms MLP 784-512-512-10 step. Passing the flat list of arrays
  instead skips both; the loop rebuilds the state once, after its last step.

      flat = FlatStateStep(train_step, state)
      leaves = flat.flatten(state)
      for x, y in batches:
        leaves, loss = flat(leaves, x, y)
      state = flat.unflatten(leaves)

  Args:
    train_step: ``step(state, x, y) -> (state, outputs)``, pure.
    state: a state of the structure the loop will pass (only its structure is kept).
    out_shardings: for a mesh, ``(state shardings, outputs' sharding)`` as for the
      jitted tree step; the state part is flattened alike.
  """

  def __init__(self, train_step: Callable[..., tuple[TrainState, Any]], state: TrainState, *,
               out_shardings: tuple[Any, Any] | None = None):
    self.treedef = jax.tree.structure(state)
    self.step_index = next(i for i, leaf in enumerate(jax.tree.leaves(state))
                           if leaf is state.step)
    treedef = self.treedef

    def flat_step(leaves, x, y):
      new_state, outputs = train_step(jax.tree.unflatten(treedef, leaves), x, y)
      return jax.tree.leaves(new_state), outputs

    placed = {}
    if out_shardings is not None:
      placed["out_shardings"] = (treedef.flatten_up_to(out_shardings[0]), out_shardings[1])
    self._jitted = jax.jit(flat_step, donate_argnums=(0,), **placed)

  def __call__(self, leaves: list[jax.Array], x: Any, y: Any) -> tuple[list[jax.Array], Any]:
    return self._jitted(leaves, x, y)

  def flatten(self, state: TrainState) -> list[jax.Array]:
    return self.treedef.flatten_up_to(state)

  def unflatten(self, leaves: list[jax.Array]) -> TrainState:
    return jax.tree.unflatten(self.treedef, leaves)

  def step_count(self, leaves: list[jax.Array]) -> jax.Array:
    """``state.step`` of the flat state."""
    return leaves[self.step_index]


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
  permutation = epoch_permutation(key, n)
  return permutation[: num_batches * batch_size].reshape(num_batches, batch_size)


def make_scan_epoch(
    train_step: Callable[[TrainState, jax.Array, jax.Array], tuple[TrainState, Any]],
    batch_size: int,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    *,
    update_stats: bool = False,
    batch_sharding: jax.sharding.Sharding | None = None,
    packing: Packing | None = None,
) -> Callable[[TrainState, jax.Array, jax.Array, jax.Array], tuple[TrainState, Any]]:
  """Returns ``epoch(state, x, y, key) -> (state, losses)``: a whole epoch as one ``lax.scan``.

  The batch order is a permutation drawn from `key`; `augment(key, x_batch)` (if
  given) runs inside the scan with a key folded from the epoch key and the step.
  With ``update_stats`` (for a step made with ``update_stats=True``), the scan also
  carries running sums of the per-step statistics and the epoch returns
  ``(state, (losses, means))``: each statistic averaged over the epoch's steps
  where it was finite.

  With `batch_sharding` (e.g. ``NamedSharding(mesh, PartitionSpec("data"))``, see
  ``optlab.train.distributed``), each batch is constrained to it
  (``jax.lax.with_sharding_constraint``) right after it is gathered, so under
  ``jax.jit`` every device takes and trains on its slice of the batch (data
  parallelism); the step itself is unchanged.

  With `packing` (a step made with the same ``packing``), ``state.params`` holds
  packed buffers and the statistics are named after the unpacked tree.
  """

  def constrain(array):
    if batch_sharding is None:
      return array
    return jax.lax.with_sharding_constraint(array, batch_sharding)

  def epoch(state, x, y, key):
    order_key, augment_key = jax.random.split(key)
    indices = epoch_batch_indices(order_key, x.shape[0], batch_size)

    def body(state, batch_indices):
      batch_indices = constrain(batch_indices)
      # In bounds by construction: "clip" is XLA's own gather, without the select
      # that the default "fill" mode adds over the whole batch.
      xb = constrain(jnp.take(x, batch_indices, axis=0, mode="clip"))
      yb = constrain(jnp.take(y, batch_indices, axis=0, mode="clip"))
      if augment is not None:
        xb = augment(jax.random.fold_in(augment_key, state.step), xb)
      return train_step(state, xb, yb)

    if not update_stats:
      return jax.lax.scan(body, state, indices)

    def body_with_stats(carry, batch_indices):
      state, totals = carry
      state, (loss, stats) = body(state, batch_indices)
      return (state, accumulate_statistics(totals, stats)), loss

    params = state.params if packing is None else packing.leaf_structs()
    totals = zero_statistics(update_statistic_names(params))
    (state, totals), losses = jax.lax.scan(body_with_stats, (state, totals), indices)
    return state, (losses, mean_statistics(totals))

  return epoch

