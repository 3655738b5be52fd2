"""Packed parameters in ``fit``: the trainable parameters kept as a few contiguous buffers.

``fit(..., packed=True)`` keeps the model's ``nnx.Param`` arrays in
:class:`TrainState` as the buffers of a :class:`~optlab.optim.packed.Packing`
(one 1-D array per dtype), so the optimizer's state is built on the buffers too
and a jitted step takes a handful of arrays however many parameter arrays the
model has. The loss unpacks the buffers inside the compiled step (static
slices), so the gradient comes back packed; everything that needs the tree
(per-layer update statistics, the eval model, monitors, ``evaluate_at``, the
model handed back) unpacks it.

How the optimizer runs on the buffers (``packed=``):

* ``"elementwise"``: the optimizer runs on the buffers themselves
  (``packed(tx, packing)``): exact for optimizers that act on each parameter
  alone (SGD, momentum, Adam(W) without a mask, RMSProp, ...), wrong for those
  that look at each array's shape (Muon, Shampoo, SOAP, Adam-mini, LARS/LAMB
  trust ratios, Adafactor, masks).
* ``"per_leaf"``: each update unpacks, runs the optimizer on the tree and packs
  its state again, inside the compiled step (``packed(tx, packing,
  per_leaf=True)``): exact for every optimizer.
* ``True``: ``"elementwise"`` when the optimizer came from
  ``optlab.optim.get`` and its registry name is one of :data:`ELEMENTWISE`
  (with no mask), else ``"per_leaf"``: a hand-made chain or ``optax.adam(...)``
  gets the always-exact ``"per_leaf"``; pass ``"elementwise"`` to run such an
  optimizer on the buffers. ``"elementwise"`` with a registry optimizer known
  not to be elementwise raises a ValueError.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from optlab.optim import registry as optim_registry
from optlab.optim.packed import PackedState, Packing, packed, state_packing_of
from optlab.train.state import learning_rate_scale

# Registry names of optimizers whose update of each parameter depends only on that
# parameter's own gradient and state (and on scalars: step counts, learning rates),
# so they give the same numbers on packed buffers as on the tree.
ELEMENTWISE = frozenset({
    "adadelta", "adagrad", "adam", "adamax", "adamw", "amsgrad", "gd", "heavy_ball",
    "nadam", "nesterov", "radam", "rmsprop", "rmsprop_centered", "schedule_free_adamw",
    "schedule_free_sgd", "sgd",
    "optax.adabelief", "optax.adadelta", "optax.adagrad", "optax.adam", "optax.adamax",
    "optax.adamaxw", "optax.adamw", "optax.adan", "optax.amsgrad", "optax.lion",
    "optax.nadam", "optax.nadamw", "optax.optimistic_adam_v2",
    "optax.optimistic_gradient_descent", "optax.radam", "optax.rmsprop", "optax.rprop",
    "optax.sgd", "optax.sign_sgd", "optax.signum", "optax.yogi",
    "optax.contrib.ademamix", "optax.contrib.adopt", "optax.contrib.madgrad",
    "optax.contrib.schedule_free_adamw", "optax.contrib.schedule_free_sgd",
    "optax.contrib.simplified_ademamix",
})
# Wrappers of a registry optimizer (``base=``): elementwise when their base is.
ELEMENTWISE_WRAPPERS = frozenset({"ema", "swa", "lookahead", "schedule_free"})
_MASKS = ("mask", "weight_decay_mask", "muon_mask")
MODES = (False, True, "elementwise", "per_leaf")


def is_elementwise(description: dict[str, Any] | None) -> bool | None:
  """Whether the optimizer ``optlab.optim.describe(tx)`` describes acts elementwise.

  Returns:
    True for a registry optimizer of :data:`ELEMENTWISE` without a mask (or a
    wrapper of one), False for any other registry optimizer, None when `tx` did
    not come from ``optlab.optim.get`` (nothing is known).

  Example:
    >>> from optlab import optim
    >>> is_elementwise(optim.describe(optim.get("adam"))), is_elementwise(
    ...     optim.describe(optim.get("muon")))
    (True, False)
  """
  if description is None:
    return None
  name, hyperparams = description["name"], description.get("hyperparams", {})
  if any(hyperparams.get(mask) is not None for mask in _MASKS):
    return False
  if name in ELEMENTWISE_WRAPPERS:
    base = hyperparams.get("base")
    masked = "mask" in str(hyperparams.get("base_hyperparams") or "")
    return isinstance(base, str) and base in ELEMENTWISE and not masked
  return name in ELEMENTWISE


def resolve_mode(packed_arg: Any, tx: Any, caller: str = "fit") -> str | None:
  """The packed mode fit runs: None (not packed), ``"elementwise"`` or ``"per_leaf"``."""
  if packed_arg is None or packed_arg is False:
    return None
  if not (isinstance(packed_arg, bool) or packed_arg in ("elementwise", "per_leaf")):
    raise ValueError(f"{caller}: packed must be False, True, 'elementwise' or 'per_leaf', got "
                     f"{packed_arg!r}")
  description = optim_registry.describe(tx)
  known = is_elementwise(description)
  if packed_arg is True:
    return "elementwise" if known else "per_leaf"
  if packed_arg == "elementwise" and known is False:
    raise ValueError(
        f"{caller}: packed='elementwise' runs the optimizer on the packed 1-D buffers, but "
        f"{description['name']!r} (with these hyperparameters) needs each parameter array's "
        "shape or a per-array mask; use packed='per_leaf' (exact for every optimizer) or "
        "packed=True (which picks it)")
  return packed_arg


def clip_by_global_norm(max_norm: float, packing: Packing) -> optax.GradientTransformation:
  """``optax.clip_by_global_norm`` on packed updates, the norm summed leaf by leaf.

  The norm is taken over the unpacked leaves (inside the compiled step: static
  slices), so it is summed in the order ``optax.clip_by_global_norm`` sums the
  tree; the scaling then runs on the buffers.
  """

  def update_fn(updates, state, params=None):
    del params
    g_norm = optax.tree.norm(packing._unpack_buffers(updates))
    trigger = jnp.squeeze(g_norm < max_norm)

    def clip(t):
      return jax.lax.select(trigger, t, (t / g_norm.astype(t.dtype)) * max_norm)

    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def _is_buffers(node: Any, packing: Packing) -> bool:
  if type(node) is not tuple or len(node) != len(packing.buffer_sizes):
    return False
  return all(getattr(b, "shape", None) == (size,) and getattr(b, "dtype", None) == dtype
             for b, size, dtype in zip(node, packing.buffer_sizes, packing.buffer_dtypes,
                                       strict=True))


class FitPacking:
  """What ``fit`` needs to train packed, or the identity when not packed.

  Args:
    mode: None, ``"elementwise"`` or ``"per_leaf"`` (see :func:`resolve_mode`).
    params: the model's parameter tree.
    tx: the user's optimizer (for ``"per_leaf"``, to unpack its state).
  """

  def __init__(self, mode: str | None, params: Any, tx: Any):
    self.mode = mode
    self.packing = None if mode is None else Packing.of(params)
    self._tx = tx
    self._state_packing = None

  def optimizer(self, tx: Any, clip_norm: float | None) -> optax.GradientTransformation:
    """fit's chain: (clipping), `tx`, the callbacks' learning-rate scale; on buffers if packed."""
    if self.packing is None:
      clip = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
      return optax.chain(*clip, tx, learning_rate_scale())
    clip = [clip_by_global_norm(clip_norm, self.packing)] if clip_norm else []
    inner = packed(tx, self.packing, per_leaf=self.mode == "per_leaf")
    return optax.chain(*clip, inner, learning_rate_scale())

  def pack(self, tree: Any) -> Any:
    """Parameters as the train state holds them (buffers when packed)."""
    return tree if self.packing is None else self.packing.pack(tree)

  def tree(self, params: Any) -> Any:
    """The parameter tree of what the train state holds."""
    return params if self.packing is None else self.packing.unpack(params)

  def structure(self, params: Any) -> Any:
    """A tree shaped like the parameters (``ShapeDtypeStruct`` leaves when packed)."""
    return params if self.packing is None else self.packing.leaf_structs()

  def unpacking(self, fn: Any) -> Any:
    """``fn(params, *rest)`` taking the train state's params, unpacked inside (jit-able)."""
    if self.packing is None:
      return fn
    packing = self.packing
    return lambda params, *rest: fn(packing._unpack_buffers(params), *rest)

  def tx_state(self, state: Any) -> Any:
    """The state of the user's optimizer with the parameter-shaped parts as trees.

    Elementwise: every tuple of buffers (params-like: averages, slow weights) is
    unpacked; per-leaf: the packed state of `tx` is unpacked whole. So
    ``evaluate_at(params, opt_state)`` functions (``averaged_params``,
    ``schedule_free_eval``) see what they would without packing.
    """
    if self.packing is None:
      return state
    if self.mode == "per_leaf":
      if not isinstance(state, PackedState):
        raise TypeError(f"fit: expected the per-leaf packed optimizer state, got "
                        f"{type(state).__name__}")
      if self._state_packing is None:
        self._state_packing = state_packing_of(self._tx, self.packing)
      return self._state_packing.unpack(state.buffers)
    packing = self.packing
    return jax.tree.map(lambda node: packing.unpack(node) if _is_buffers(node, packing) else node,
                        state, is_leaf=lambda node: _is_buffers(node, packing))

  def check_mesh(self, mesh: Any) -> None:
    """Packed buffers are replicated: a mesh with a ``"model"`` axis is refused."""
    from optlab.train.distributed import MODEL_AXIS

    if self.packing is not None and MODEL_AXIS in mesh.axis_names:
      raise ValueError(f"fit: packed={self.mode!r} with a mesh that has a {MODEL_AXIS!r} axis "
                       f"({dict(mesh.shape)}): packed buffers are replicated on every device "
                       "(data parallel only); use a mesh with a data axis only, or "
                       "packed=False to shard large parameter arrays along the model axis")

  def restore(self, checkpointer: Any, template: Any) -> tuple[Any, dict[str, Any]]:
    """``checkpointer.restore(template)``, refusing a checkpoint of another packed mode.

    A packed run's checkpoint holds buffers (and per-leaf packed optimizer state),
    an unpacked one the tree: restoring one into the other fails, and the error
    says which ``packed=`` resumes it.
    """
    try:
      restored, record = checkpointer.restore(template)
    except Exception as error:  # another representation gives another tree
      try:
        stored_record = checkpointer.restore(None)[1]
      except Exception:
        raise error from None
      self._check_record(stored_record, checkpointer.directory)
      raise
    self._check_record(record, checkpointer.directory)
    return restored, record

  def _check_record(self, record: dict[str, Any], directory: Any) -> None:
    stored = record.get("packed") or None  # absent in checkpoints of unpacked runs
    if stored != self.mode:
      raise ValueError(
          f"fit: the checkpoint in {directory} was written with packed={stored or False!r}, "
          f"this run has packed={self.mode or False!r}; resume with "
          f"packed={stored or False!r} (a checkpoint resumes in its own representation)")


__all__ = ["ELEMENTWISE", "ELEMENTWISE_WRAPPERS", "MODES", "FitPacking", "clip_by_global_norm",
           "is_elementwise", "resolve_mode"]
