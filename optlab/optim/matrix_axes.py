"""How a parameter with ndim > 2 is viewed as a matrix, per leaf (``matrix_axes``).

Matrix methods such as Muon (:mod:`optlab.optim.muon`) act on a leaf's matrix:
by default all axes but the last are the rows (a dense kernel ``(d_in, d_out)``, a
convolution kernel ``(kh, kw, c_in, c_out)`` as ``(kh·kw·c_in, c_out)``). A
``matrix_axes`` tree says otherwise per leaf: an int k (the first k axes are the
rows), or optax's ``MuonDimensionNumbers(reduction_axis, output_axis)``.
:func:`flax_attention_matrix_axes` gives flax's attention projections their layer's
matrix, ``(d_in, heads·head_dim)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

import jax
import numpy as np
import optax

MuonDimensionNumbers = optax.contrib.MuonDimensionNumbers
MatrixAxes: TypeAlias = int | MuonDimensionNumbers | None
"""How one leaf is viewed as a matrix (see :func:`as_matrix_shape`)."""
MatrixAxesTree: TypeAlias = Any | Callable[[optax.Params], Any] | None
"""A tree of :data:`MatrixAxes` with the params' structure, a function of the params
returning one, or None (the default view for every leaf)."""
_MaskedNode = optax.transforms.MaskedNode


def _axes_tuple(value: Any) -> tuple[Any, ...]:
  return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _is_index(value: Any) -> bool:
  return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _matrix_view(shape: Sequence[int], axes: MatrixAxes) -> tuple[Any, int, int]:
  """(permutation or None, rows, cols) of the view `axes` of a leaf of this shape.

  Raises ValueError saying what is wrong (the caller names the leaf).
  """
  shape = tuple(shape)
  ndim = len(shape)
  if ndim < 2:
    raise ValueError(f"Muon orthogonalizes leaves with ndim ≥ 2, got shape {shape}")
  if axes is None:
    return None, math.prod(shape[:-1]), shape[-1]
  if _is_index(axes):
    k = int(axes)
    split = k + ndim if k < 0 else k
    if not 1 <= split <= ndim - 1:
      raise ValueError(f"rows={k} is out of range for shape {shape}: an int k views the first "
                       f"k axes as the rows, 1 ≤ k ≤ {ndim - 1} (or −{ndim - 1} ≤ k ≤ −1)")
    return None, math.prod(shape[:split]), math.prod(shape[split:])
  if isinstance(axes, MuonDimensionNumbers):
    normalized = {}
    for name in ("reduction_axis", "output_axis"):
      group = _axes_tuple(getattr(axes, name))
      if not group or not all(_is_index(a) for a in group):
        raise ValueError(f"{name} must be a non-empty int or sequence of ints, got {group!r}")
      bad = [int(a) for a in group if not -ndim <= a < ndim]
      if bad:
        raise ValueError(f"{name} {group} has axes {bad} out of range for shape {shape} "
                         f"(ndim {ndim}: axes in [−{ndim}, {ndim - 1}])")
      normalized[name] = tuple(int(a) % ndim for a in group)
    rows_axes, cols_axes = normalized["reduction_axis"], normalized["output_axis"]
    perm = rows_axes + cols_axes
    if len(set(perm)) != len(perm):
      raise ValueError(f"reduction_axis {rows_axes} and output_axis {cols_axes} repeat an axis "
                       f"(normalized for shape {shape}); each axis belongs to one of them")
    if len(perm) != ndim:
      missing = sorted(set(range(ndim)) - set(perm))
      raise ValueError(f"axes {missing} of shape {shape} are neither reduction_axis nor "
                       "output_axis: the view must be a matrix (2 dims), each axis in the rows "
                       "or the columns (optax's batch axes are not supported)")
    rows = math.prod(shape[a] for a in rows_axes)
    cols = math.prod(shape[a] for a in cols_axes)
    return (None if perm == tuple(range(ndim)) else perm), rows, cols
  raise ValueError(f"the spec must be None (the default view), an int (the number of leading "
                   f"axes that form the rows) or an optax.contrib.MuonDimensionNumbers, got "
                   f"{axes!r} of type {type(axes).__name__}")


def _is_spec_leaf(x: Any) -> bool:
  return x is None or isinstance(x, (MuonDimensionNumbers, _MaskedNode))


def _resolve_matrix_axes(
    matrix_axes: MatrixAxesTree, tree: Any, where: str, what: str
) -> list[MatrixAxes]:
  """The spec of each leaf of `tree` (MaskedNode positions left out), checked.

  Raises ValueError naming the leaf when the spec does not have the tree's
  structure or is not a 2-D view of the leaf. Runs at trace time only.
  """
  flat, treedef = jax.tree_util.tree_flatten_with_path(
      tree, is_leaf=lambda x: isinstance(x, _MaskedNode))
  spec = matrix_axes(tree) if callable(matrix_axes) else matrix_axes
  if spec is None:
    specs = [None] * len(flat)
  else:
    try:
      specs = treedef.flatten_up_to(spec)
    except (ValueError, TypeError) as error:
      spec_paths = {jax.tree_util.keystr(p) for p, _ in
                    jax.tree_util.tree_flatten_with_path(spec, is_leaf=_is_spec_leaf)[0]}
      tree_paths = [jax.tree_util.keystr(p) for p, _ in flat]
      missing = ", ".join(p for p in tree_paths if p not in spec_paths)
      extra = ", ".join(sorted(spec_paths - set(tree_paths)))
      detail = "; ".join(([f"no spec for leaves {missing}"] if missing else [])
                         + ([f"specs for paths the {what} lack: {extra}"] if extra else []))
      raise ValueError(
          f"{where}: matrix_axes does not have the tree structure of the {what} "
          f"({detail or error}). "
          "Give one entry per leaf (None for the default view), or a function of the params "
          "returning such a tree."
      ) from None
  resolved = []
  for (path, leaf), axes in zip(flat, specs, strict=True):
    if isinstance(leaf, _MaskedNode):
      continue
    try:
      if isinstance(axes, (jax.Array, np.ndarray)):
        raise ValueError("got an array: was matrix_axes injected as a hyperparameter? List it "
                         "in static_args of optax.inject_hyperparams")
      _matrix_view(np.shape(leaf), axes)
    except ValueError as error:
      raise ValueError(f"{where}: matrix_axes of leaf {jax.tree_util.keystr(path) or '<root>'} "
                       f"(shape {np.shape(leaf)}) of the {what}: {error}") from None
    resolved.append(axes)
  return resolved


FLAX_QKV = ("query", "key", "value")
"""The names of flax's attention projections whose kernels are (d_in, heads, head_dim)."""


def flax_attention_matrix_axes(params: optax.Params) -> Any:
  """``matrix_axes`` for flax attention: query/key/value kernels viewed as (d_in, heads·head_dim).

  ``flax.nnx.MultiHeadAttention`` (and linen's ``MultiHeadDotProductAttention``)
  keep their projections as ``DenseGeneral`` kernels: query/key/value
  ``(d_in, heads, head_dim)``, whose matrix is ``(d_in, heads·head_dim)`` (1: one
  leading axis forms the rows), and the output ``(heads, head_dim, d_out)``, whose
  matrix ``(heads·head_dim, d_out)`` is the default view. A leaf gets 1 when it is
  3-D and its path has ``query``, ``key`` or ``value`` followed by ``kernel``
  (dicts, ``nnx.State`` and pure dicts alike); every other leaf gets None (the
  default view).

  Args:
    params: the params (or any tree of the same structure: only paths and shapes
      are read).

  Returns:
    A tree of 1 / None with the structure of `params`.

  Example:
    >>> import jax.numpy as jnp
    >>> from optlab.optim.muon import flax_attention_matrix_axes, muon
    >>> params = {"attn": {"query": {"kernel": jnp.ones((8, 2, 4))},
    ...                    "out": {"kernel": jnp.ones((2, 4, 8))}}}
    >>> flax_attention_matrix_axes(params)
    {'attn': {'out': {'kernel': None}, 'query': {'kernel': 1}}}
    >>> tx = muon(0.02, matrix_axes=flax_attention_matrix_axes)
    >>> updates, state = tx.update(params, tx.init(params), params)
  """
  if isinstance(params, (jax.Array, np.ndarray)) and np.ndim(params) == 0:
    raise ValueError(
        "flax_attention_matrix_axes: got a scalar, not the params: was it passed to "
        "optax.inject_hyperparams (or optlab.optim.get(..., inject=True)) as matrix_axes "
        "without listing matrix_axes in static_args? Then it is taken for a schedule."
    )

  from optlab.train.paths import path_string  # here: optlab.train imports optlab.optim

  def spec(path, x):
    if np.ndim(x) != 3:
      return None
    names = path_string(path).split("/")
    hit = any(a in FLAX_QKV and b == "kernel" for a, b in itertools.pairwise(names))
    return 1 if hit else None

  return jax.tree_util.tree_map_with_path(spec, params)
