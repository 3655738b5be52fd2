"""Packed parameters: a tree of many small arrays kept as a few contiguous buffers.

A model with a thousand small parameter arrays pays for each array every time a
jitted step is called: a step that takes parameters, gradients and two Adam
moments passes 4000 arrays, and the host work of passing them (microseconds
each) is most of the step. Packing keeps the parameters in one 1-D buffer per
dtype and unpacks them (static slices and reshapes) only inside the compiled
step, where they cost nothing; the optimizer's state is then built on the
buffers, so Adam has one first-moment and one second-moment buffer per dtype.

    params = model_params                          # a tree with many leaves
    packing = Packing.of(params)                   # static: shapes, dtypes, offsets
    buffers = packing.pack(params)                 # a tuple, one 1-D array per dtype
    tx = packed(optax.adam(1e-3), packing)         # state on the buffers
    opt_state = tx.init(buffers)

    @functools.partial(jax.jit, donate_argnums=(0, 1))
    def step(buffers, opt_state, x, y):
      loss, grads = jax.value_and_grad(lambda b: loss_fn(packing.unpack(b), x, y))(buffers)
      updates, opt_state = tx.update(grads, opt_state, buffers)
      return optax.apply_updates(buffers, updates), opt_state, loss

The gradient with respect to the buffers is packed by JAX itself: :meth:`Packing.unpack`
splits with ``lax.split``, whose transpose is one concatenation.

Which optimizers give the same result packed: any elementwise one (Adam, AdamW
without a mask, SGD, momentum, RMSProp, ...) gives exactly the same numbers;
global reductions (``clip_by_global_norm``) the same up to the order of the
summation. Transforms that look at each leaf's shape or need a per-leaf tree
(masks, LARS/LAMB trust ratios, Muon, Shampoo, Adafactor) need
``packed(tx, packing, per_leaf=True)``, which unpacks inside the update, runs
`tx` on the tree and packs its state, so it is exact for every optimizer and
still passes only a few arrays through ``jit``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax


def _leaf_name(path: tuple) -> str:
  return jax.tree_util.keystr(path) or "<root>"


@dataclasses.dataclass(frozen=True)
class Packing:
  """Where each leaf of a tree lives in the packed buffers (static, hashable).

  Attributes:
    treedef: the structure of the tree.
    shapes: each leaf's shape, in ``jax.tree.leaves`` order.
    dtypes: each leaf's dtype.
    buffer_dtypes: the dtype of each buffer, in order of first appearance.
    buffer_of: for each leaf, the index of its buffer.
    offsets: for each leaf, where it starts in its buffer.
    buffer_sizes: the number of elements of each buffer.
    names: each leaf's path, for error messages.
  """

  treedef: Any
  shapes: tuple[tuple[int, ...], ...]
  dtypes: tuple[np.dtype, ...]
  buffer_dtypes: tuple[np.dtype, ...]
  buffer_of: tuple[int, ...]
  offsets: tuple[int, ...]
  buffer_sizes: tuple[int, ...]
  names: tuple[str, ...] = dataclasses.field(compare=False, repr=False)

  @classmethod
  def of(cls, tree: Any) -> Packing:
    """The packing of `tree` (arrays or ``jax.ShapeDtypeStruct`` leaves).

    Example:
      >>> import jax.numpy as jnp
      >>> p = Packing.of({"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})
      >>> p.num_params, p.buffer_sizes
      (9, (9,))
    """
    paths_leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    shapes, dtypes, names, buffer_of, offsets = [], [], [], [], []
    buffer_dtypes: list[np.dtype] = []
    sizes: list[int] = []
    for path, leaf in paths_leaves:
      name = _leaf_name(path)
      if not (hasattr(leaf, "shape") and hasattr(leaf, "dtype")):
        raise TypeError(f"Packing.of: leaf {name} is {type(leaf).__name__}, not an array; "
                        "packing accepts trees of arrays (or jax.ShapeDtypeStruct)")
      dtype = np.dtype(leaf.dtype)
      if dtype not in buffer_dtypes:
        buffer_dtypes.append(dtype)
        sizes.append(0)
      group = buffer_dtypes.index(dtype)
      shapes.append(tuple(int(d) for d in leaf.shape))
      dtypes.append(dtype)
      names.append(name)
      buffer_of.append(group)
      offsets.append(sizes[group])
      sizes[group] += math.prod(leaf.shape)
    return cls(treedef, tuple(shapes), tuple(dtypes), tuple(buffer_dtypes), tuple(buffer_of),
               tuple(offsets), tuple(sizes), tuple(names))

  @property
  def num_leaves(self) -> int:
    return len(self.shapes)

  @property
  def num_params(self) -> int:
    return sum(self.buffer_sizes)

  def buffer_structs(self) -> tuple[jax.ShapeDtypeStruct, ...]:
    """The shapes and dtypes of the packed buffers."""
    return tuple(jax.ShapeDtypeStruct((size,), dtype)
                 for size, dtype in zip(self.buffer_sizes, self.buffer_dtypes, strict=True))

  def leaf_structs(self) -> Any:
    """The tree, with ``jax.ShapeDtypeStruct`` leaves."""
    return jax.tree.unflatten(self.treedef, [jax.ShapeDtypeStruct(s, d)
                                             for s, d in zip(self.shapes, self.dtypes,
                                                             strict=True)])

  def _check_tree(self, tree: Any, where: str) -> list[Any]:
    leaves, treedef = jax.tree.flatten(tree)
    if treedef != self.treedef:
      raise ValueError(f"{where}: the tree's structure {treedef} is not the packed one "
                       f"{self.treedef}")
    for leaf, shape, dtype, name in zip(leaves, self.shapes, self.dtypes, self.names,
                                        strict=True):
      if tuple(jnp.shape(leaf)) != shape or jnp.result_type(leaf) != dtype:
        raise ValueError(f"{where}: leaf {name} has shape {tuple(jnp.shape(leaf))} and dtype "
                         f"{jnp.result_type(leaf)}; the packing has {shape} {dtype}")
    return leaves

  def pack(self, tree: Any) -> tuple[jax.Array, ...]:
    """The leaves of `tree`, ravelled and concatenated: one 1-D buffer per dtype.

    Example:
      >>> import jax.numpy as jnp
      >>> tree = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
      >>> (buffer,) = Packing.of(tree).pack(tree)
      >>> buffer.shape
      (9,)
    """
    return self._jitted_pack(self._check_tree(tree, "Packing.pack"))

  @functools.cached_property
  def _jitted_pack(self):
    # One compiled program (inlined under an outer jit), not one per leaf when eager.
    return jax.jit(self._pack_leaves)

  def _pack_leaves(self, leaves: list[Any]) -> tuple[jax.Array, ...]:
    groups: list[list[jax.Array]] = [[] for _ in self.buffer_dtypes]
    for leaf, group in zip(leaves, self.buffer_of, strict=True):
      groups[group].append(jnp.ravel(leaf))
    return tuple(parts[0] if len(parts) == 1 else jnp.concatenate(parts) for parts in groups)

  def _check_buffers(self, buffers: Any, where: str) -> tuple[jax.Array, ...]:
    if not isinstance(buffers, (tuple, list)) or len(buffers) != len(self.buffer_dtypes):
      raise ValueError(f"{where}: expected a tuple of {len(self.buffer_dtypes)} buffer(s) "
                       f"{self.buffer_structs()}, got {type(buffers).__name__}")
    for i, (buf, size, dtype) in enumerate(zip(buffers, self.buffer_sizes, self.buffer_dtypes,
                                               strict=True)):
      shape = jnp.shape(buf)
      if not shape or shape[-1] != size or jnp.result_type(buf) != dtype:
        raise ValueError(f"{where}: buffer {i} has shape {shape} and dtype "
                         f"{jnp.result_type(buf)}; expected (..., {size}) {dtype}")
    return tuple(buffers)

  def unpack(self, buffers: tuple[jax.Array, ...]) -> Any:
    """The tree back from its buffers (static slices and reshapes; free inside ``jit``).

    Leading batch dimensions of the buffers (a vmapped sweep's) are kept on
    every leaf. Splitting uses ``lax.split``, so the gradient with respect to
    the buffers is one concatenation.

    Example:
      >>> import jax.numpy as jnp
      >>> tree = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
      >>> packing = Packing.of(tree)
      >>> packing.unpack(packing.pack(tree))["w"].shape
      (2, 3)
    """
    return self._jitted_unpack(self._check_buffers(buffers, "Packing.unpack"))

  @functools.cached_property
  def _jitted_unpack(self):
    return jax.jit(self._unpack_buffers)

  def _unpack_buffers(self, buffers: tuple[jax.Array, ...]) -> Any:
    pieces: list[list[jax.Array]] = []
    for group, buf in enumerate(buffers):
      sizes = [math.prod(s) for s, g in zip(self.shapes, self.buffer_of, strict=True)
               if g == group]
      pieces.append(list(lax.split(buf, sizes, axis=buf.ndim - 1)) if len(sizes) > 1
                    else [buf])
    cursor = [0] * len(buffers)
    leaves = []
    for shape, group in zip(self.shapes, self.buffer_of, strict=True):
      piece = pieces[group][cursor[group]]
      cursor[group] += 1
      leaves.append(piece.reshape(piece.shape[:-1] + shape))
    return jax.tree.unflatten(self.treedef, leaves)


def pack(tree: Any) -> tuple[tuple[jax.Array, ...], Packing]:
  """Packs `tree`: returns ``(buffers, packing)``; ``packing.unpack(buffers)`` gives it back.

  Example:
    >>> import jax.numpy as jnp
    >>> buffers, packing = pack({"w": jnp.ones((2, 3)), "b": jnp.zeros(3, jnp.int32)})
    >>> [b.dtype.name for b in buffers]
    ['int32', 'float32']
  """
  packing = Packing.of(tree)
  return packing.pack(tree), packing


def state_packing_of(tx: optax.GradientTransformation, packing: Packing) -> Packing:
  """The packing of `tx`'s state on the tree `packing` describes (``per_leaf=True``'s state).

  ``state_packing_of(tx, packing).unpack(packed_state.buffers)`` is `tx`'s state as a tree.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> buffers, packing = pack({"w": jnp.ones((2, 3))})
    >>> tx = optax.adam(1e-3)
    >>> state = packed(tx, packing, per_leaf=True).init(buffers)
    >>> state_packing_of(tx, packing).unpack(state.buffers)[0].mu["w"].shape
    (2, 3)
  """
  return Packing.of(jax.eval_shape(tx.init, packing.leaf_structs()))


class PackedState(NamedTuple):
  """State of ``packed(tx, packing, per_leaf=True)``: `tx`'s state, packed."""

  buffers: tuple[jax.Array, ...]


def packed(
    tx: optax.GradientTransformation,
    packing: Packing,
    *,
    per_leaf: bool = False,
) -> optax.GradientTransformationExtraArgs:
  """`tx` on packed parameters: params, updates and state are a few contiguous buffers.

  With ``per_leaf=False`` (the default) `tx` runs on the buffers themselves:
  its state is one buffer per dtype for each of its per-parameter quantities
  (Adam: one μ and one ν), and the update is a handful of large elementwise
  loops. This is exact for elementwise transforms and equal up to summation
  order for global reductions (``clip_by_global_norm``); transforms that look
  at leaf shapes or take per-leaf masks must use ``per_leaf=True``.

  With ``per_leaf=True`` each update unpacks the buffers, runs `tx` on the
  original tree and packs the new state and the updates again, inside the
  compiled step: exact for every transform, at the price of one copy of the
  updates and state per step.

  Args:
    tx: any ``optax.GradientTransformation``.
    packing: the :class:`Packing` of the parameter tree.
    per_leaf: run `tx` on the unpacked tree (see above).

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose params and updates are
    the tuple of buffers ``packing.pack(tree)``.

  Example:
    >>> import jax.numpy as jnp, optax
    >>> tree = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    >>> buffers, packing = pack(tree)
    >>> tx = packed(optax.adam(1e-3), packing)
    >>> state = tx.init(buffers)
    >>> updates, state = tx.update(buffers, state, buffers)
    >>> new_tree = packing.unpack(optax.apply_updates(buffers, updates))
  """
  if not isinstance(packing, Packing):
    raise TypeError(f"packed: packing must be an optlab.optim.packed.Packing (from "
                    f"Packing.of(params)), got {type(packing).__name__}")
  if not (hasattr(tx, "init") and hasattr(tx, "update")):
    raise TypeError(f"packed: tx must be an optax.GradientTransformation, got "
                    f"{type(tx).__name__}")
  tx = optax.with_extra_args_support(tx)

  if not per_leaf:
    def init_fn(params):
      return tx.init(packing._check_buffers(params, "packed.init"))

    def update_fn(updates, state, params=None, **extra_args):
      updates = packing._check_buffers(updates, "packed.update (updates)")
      if params is not None:
        params = packing._check_buffers(params, "packed.update (params)")
      return tx.update(updates, state, params, **extra_args)

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)

  state_packing: dict[str, Packing] = {}

  def get_state_packing() -> Packing:
    if "state" not in state_packing:
      state_packing["state"] = state_packing_of(tx, packing)
    return state_packing["state"]

  def init_fn(params):
    tree = packing.unpack(params)
    return PackedState(get_state_packing().pack(tx.init(tree)))

  def update_fn(updates, state, params=None, **extra_args):
    state_pack = get_state_packing()
    tree_updates = packing.unpack(updates)
    tree_params = None if params is None else packing.unpack(params)
    new_updates, new_state = tx.update(tree_updates, state_pack.unpack(state.buffers),
                                       tree_params, **extra_args)
    return packing.pack(new_updates), PackedState(state_pack.pack(new_state))

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
