"""Muon (Jordan et al., 2024): momentum orthogonalized by Newton–Schulz, AdamW for the rest.

Matrices (and convolution kernels, viewed as matrices) get Muon; vectors,
scalars and any leaf a mask excludes (embeddings, output heads) get AdamW with
its own learning rate. How a leaf with ndim > 2 is viewed as a matrix is a
per-leaf choice (``matrix_axes``); :func:`flax_attention_matrix_axes` gives
flax's attention projections their layer's matrix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optlab.optim import _common as c
from optlab.optim import _validation as v
from optlab.optim.adam_mini import DecayConvention, weight_decay_and_learning_rate
from optlab.optim.adamw import adamw
from optlab.optim.matrix_axes import (  # noqa: F401  (re-exported: the views Muon takes)
  FLAX_QKV,
  MatrixAxes,
  MatrixAxesTree,
  MuonDimensionNumbers,
  _matrix_view,
  _resolve_matrix_axes,
  flax_attention_matrix_axes,
)

NS_COEFFS = (3.4445, -4.7750, 2.0315)
"""Jordan's quintic Newton–Schulz coefficients (a, b, c)."""
ShapeScaling = Literal["jordan", "moonlight", "none"]
SHAPE_SCALINGS = ("jordan", "moonlight", "none")


def _check_ns(where: str, ns_steps: Any, ns_coeffs: Any, ns_dtype: Any) -> None:
  if isinstance(ns_steps, bool) or not isinstance(ns_steps, (int, np.integer)) or ns_steps < 0:
    raise ValueError(f"{where}: ns_steps must be an int ≥ 0 (static: list it in static_args when "
                     f"injecting), got {ns_steps!r}")
  try:
    coeffs = np.asarray(ns_coeffs, np.float64)
  except (TypeError, ValueError):
    coeffs = None
  if coeffs is None or coeffs.shape != (3,) or not np.all(np.isfinite(coeffs)):
    raise ValueError(
        f"{where}: ns_coeffs must be three finite numbers (a, b, c), got {ns_coeffs!r}"
    )
  try:
    dtype = jnp.dtype(ns_dtype)
  except TypeError:
    dtype = None
  if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f"{where}: ns_dtype must be a floating dtype (jnp.float32, jnp.bfloat16), "
                     f"got {ns_dtype!r}")


def as_matrix_shape(shape: Sequence[int], axes: MatrixAxes = None) -> tuple[int, int]:
  """The matrix ``(rows, cols)`` = (fan_in, fan_out) Muon sees for a leaf of this shape.

  * ``axes=None`` (the default): ``(prod(shape[:-1]), shape[-1])``. A dense kernel
    ``(in, out)`` is itself; a flax convolution kernel ``(kh, kw, c_in, c_out)`` is
    ``(kh·kw·c_in, c_out)``: fan-in by fan-out; flax's attention output kernel
    ``(heads, head_dim, d_out)`` is ``(heads·head_dim, d_out)``.
  * an int k: the first k axes are the rows, the others the columns (negative k
    counts from the end: −1 is the default). flax's query/key/value kernels
    ``(d_in, heads, head_dim)`` need k = 1: ``(d_in, heads·head_dim)``.
  * ``optax.contrib.MuonDimensionNumbers(reduction_axis, output_axis)``: the rows
    are the reduction axes, the columns the output axes, each group in the order
    given (the leaf is transposed first where needed), as ``optax.contrib.muon``;
    every axis must be in one group (optax's batch axes are not supported).

  Raises:
    ValueError: ndim < 2, or an invalid `axes`.
  """
  _, rows, cols = _matrix_view(shape, axes)
  return rows, cols


def orthogonalize(
    x: jax.Array,
    *,
    axes: MatrixAxes = None,
    ns_steps: int = 5,
    ns_coeffs: Sequence[float] = NS_COEFFS,
    eps: float = 1e-7,
    dtype: Any = jnp.float32,
) -> jax.Array:
  r"""Approximately replaces a matrix's singular values by 1 (Newton–Schulz quintic).

  With X the leaf viewed as a matrix (:func:`as_matrix_shape` with `axes`), transposed to be
  wide (rows ≤ columns), :math:`X_0 = X/(\|X\|_F + ε)` and for k < ns_steps

  .. math:: A = X_k X_k^⊤, \quad X_{k+1} = a X_k + (b A + c A^2) X_k

  Each singular value σ ∈ (0, 1] follows p(σ) = aσ + bσ³ + cσ⁵; Jordan's
  coefficients trade exact convergence for speed: after 5 steps every singular
  value of X above 2·10⁻³‖X‖_F ends in [0.68, 1.21] (smaller ones stay smaller;
  zero stays zero). The result is reshaped (and transposed) back to the leaf's
  shape and cast to its dtype.

  Args:
    x: an array with ndim ≥ 2.
    axes: the leaf's matrix view (:func:`as_matrix_shape`); None: all axes but the
      last are the rows.
    ns_steps: the number of iterations (static).
    ns_coeffs: (a, b, c).
    eps: ε ≥ 0 added to the Frobenius norm (Jordan's code: 1e-7).
    dtype: the dtype of the iteration: float32 by default, bfloat16 as Jordan's
      GPU code.

  Returns:
    An array of the shape and dtype of x.
  """
  perm, rows, cols = _matrix_view(x.shape, axes)
  y = x if perm is None else jnp.transpose(x, perm)
  m = y.reshape(rows, cols).astype(dtype)
  transposed = rows > cols
  if transposed:
    m = m.T
  m = c.divide(m, (jnp.sqrt(jnp.sum(jnp.square(m.astype(jnp.float32)))) + eps).astype(dtype))
  a, b, cc = (float(k) for k in ns_coeffs)
  for _ in range(ns_steps):
    gram = m @ m.T
    m = a * m + (b * gram + cc * (gram @ gram)) @ m
  if transposed:
    m = m.T
  if perm is None:
    return m.reshape(x.shape).astype(x.dtype)
  return jnp.transpose(m.reshape(y.shape), np.argsort(perm)).astype(x.dtype)


def shape_scale(
    shape: Sequence[int],
    shape_scaling: ShapeScaling = "jordan",
    rms_scale: Any = 0.2,
    axes: MatrixAxes = None,
) -> Any:
  r"""The factor that multiplies an orthogonalized update of a leaf of this shape.

  With (fan_in, fan_out) = ``as_matrix_shape(shape, axes)`` (the matrix view's, not
  the raw leaf's):

  * ``"jordan"``: :math:`\sqrt{\max(1, \text{fan\_out}/\text{fan\_in})}` (Jordan's
    ``max(1, rows/cols)**0.5`` in PyTorch's ``(out, in)`` layout; ``optax.contrib.muon``).
  * ``"moonlight"``: :math:`\text{rms\_scale}\sqrt{\max(\text{fan\_in}, \text{fan\_out})}`
    (Liu et al. 2025, rms_scale = 0.2: the RMS of AdamW's update, so that AdamW's
    learning rate and weight decay carry over).
  * ``"none"``: 1.
  """
  fan_in, fan_out = as_matrix_shape(shape, axes)
  if shape_scaling == "jordan":
    return math.sqrt(max(1.0, fan_out / fan_in))
  if shape_scaling == "moonlight":
    return rms_scale * math.sqrt(max(fan_in, fan_out))
  return 1.0


class ScaleByMuonState(NamedTuple):
  """State of :func:`scale_by_muon`."""

  count: jax.Array  # int32 scalar
  mu: optax.Updates  # momentum buffer (exponential moving average of the gradients)


def scale_by_muon(
    beta: float = 0.95,
    eps: float = 1e-7,
    rms_scale: float = 0.2,
    *,
    ns_steps: int = 5,
    ns_coeffs: Sequence[float] = NS_COEFFS,
    nesterov: bool = True,
    shape_scaling: ShapeScaling = "jordan",
    ns_dtype: Any = jnp.float32,
    matrix_axes: MatrixAxesTree = None,
) -> optax.GradientTransformation:
  r"""Muon's direction for matrices: momentum, Newton–Schulz orthogonalization, shape scale.

  .. math::
     B_t = β B_{t−1} + (1−β) G_t, \quad
     M_t = \begin{cases} (1−β) G_t + β B_t & \text{Nesterov} \\ B_t \end{cases}, \quad
     D_t = s\, \mathrm{NS}_5(M_t)

  as Jordan's code (``momentum.lerp_(grad, 1−β)``, ``grad.lerp_(momentum, β)``; no
  bias correction, which the orthogonalization would undo). NS is
  :func:`orthogonalize` of M_t viewed as a matrix, s is :func:`shape_scale` of that
  matrix's (rows, cols). Every leaf must have ndim ≥ 2. By default a leaf with more
  axes is the matrix ``(prod(shape[:-1]), shape[-1])`` (a flax convolution kernel
  ``(kh, kw, c_in, c_out)`` is ``(kh·kw·c_in, c_out)``, as Jordan's code views a
  PyTorch kernel ``(c_out, c_in, kh, kw)`` as ``(c_out, c_in·kh·kw)``). The shape
  scale of a kernel is that matrix's; Jordan's code takes it from the 4-D
  gradient's last two axes (kh/kw), which gives the same 1 for square kernels with
  c_out ≤ kh·kw·c_in.

  ``matrix_axes`` chooses another view per leaf (:func:`as_matrix_shape`): an int
  k (the first k axes are the rows) or ``optax.contrib.MuonDimensionNumbers``;
  :func:`flax_attention_matrix_axes` views flax's query/key/value kernels
  ``(d_in, heads, head_dim)`` as ``(d_in, heads·head_dim)``, the layer's matrix.

  Args:
    beta: β in [0, 1), the momentum.
    eps: ε ≥ 0 in the Frobenius normalization.
    rms_scale: the RMS of ``shape_scaling="moonlight"`` (ignored otherwise), ≥ 0.
    ns_steps: Newton–Schulz iterations (static).
    ns_coeffs: the quintic's (a, b, c).
    nesterov: orthogonalize (1−β)G + βB instead of B.
    shape_scaling: ``"jordan"``, ``"moonlight"`` or ``"none"``.
    ns_dtype: the dtype of the iteration (float32; bfloat16 as Jordan's GPU code).
    matrix_axes: how each leaf is viewed as a matrix: None (the default view for
      every leaf), a tree with the params' structure of None / int /
      ``MuonDimensionNumbers``, or a function of the tree this transform sees
      returning one (static). Leaves that are ``optax.transforms.MaskedNode``
      (another transform's, under ``optax.partition``) are skipped.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optlab.optim.muon import scale_by_muon
    >>> tx = scale_by_muon(matrix_axes={"qkv": 1, "w": None})
    >>> params = {"qkv": jnp.ones((8, 2, 4)), "w": jnp.ones((8, 8))}
    >>> direction, state = tx.update(params, tx.init(params))
    >>> direction["qkv"].shape
    (8, 2, 4)

  References:
    K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks",
    2024, https://kellerjordan.github.io/posts/muon/; J. Liu et al., "Muon is
    Scalable for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
  """
  where = "scale_by_muon"
  v.check_decay(where, "beta", beta)
  v.check_non_negative(where, "eps", eps)
  v.check_non_negative(where, "rms_scale", rms_scale)
  v.check_choice(where, "shape_scaling", shape_scaling, SHAPE_SCALINGS)
  _check_ns(where, ns_steps, ns_coeffs, ns_dtype)
  if isinstance(matrix_axes, (jax.Array, np.ndarray)):
    raise ValueError(
        f"{where}: matrix_axes must be None, a tree of per-leaf specs (None / int / "
        f"MuonDimensionNumbers) with the params' structure, or a function of the params "
        f"returning one; got an array {matrix_axes!r} (was it injected as a hyperparameter? "
        "list matrix_axes in static_args of optax.inject_hyperparams)"
    )

  def check_matrices(tree, what):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      if np.ndim(leaf) < 2:
        raise ValueError(
            f"{where}: leaf {jax.tree_util.keystr(path) or '<root>'} of the {what} has shape "
            f"{np.shape(leaf)}; Muon orthogonalizes matrices (ndim ≥ 2). Send vectors and "
            "scalars to another transform: optlab.optim.muon.muon gives them to AdamW."
        )

  def init_fn(params):
    v.check_float_tree(where, params)
    check_matrices(params, "params")
    _resolve_matrix_axes(matrix_axes, params, where, "params")
    return ScaleByMuonState(count=jnp.zeros([], jnp.int32), mu=c.zeros_like(params))

  def update_fn(updates, state, params=None):
    del params
    v.check_same_structure(where, updates, state.mu, "momentum buffer")
    check_matrices(updates, "updates")
    axes = _resolve_matrix_axes(matrix_axes, updates, where, "updates")
    mu = jax.tree.map(lambda m, g: beta * m + (1 - beta) * g, state.mu, updates)
    if nesterov:
      mixed = jax.tree.map(lambda m, g: (1 - beta) * g + beta * m, mu, updates)
    else:
      mixed = mu

    def direction(x, leaf_axes):
      o = orthogonalize(x, axes=leaf_axes, ns_steps=ns_steps, ns_coeffs=ns_coeffs, eps=eps,
                        dtype=ns_dtype)
      return o * shape_scale(x.shape, shape_scaling, rms_scale, leaf_axes)

    leaves, treedef = jax.tree.flatten(mixed)
    new_updates = jax.tree.unflatten(
        treedef, [direction(x, a) for x, a in zip(leaves, axes, strict=True)])
    return c.cast_like(new_updates, updates), ScaleByMuonState(
        count=optax.safe_increment(state.count), mu=c.cast_like(mu, state.mu)
    )

  return optax.GradientTransformation(init_fn, update_fn)


def matrix_mask(exclude: Sequence[str] = ()) -> Callable[[optax.Params], Any]:
  """A ``muon_mask``: True for leaves with ndim ≥ 2 whose path matches no pattern.

  Jordan's recipe keeps embeddings and the output head out of Muon:
  ``matrix_mask(exclude=("embed", "head"))`` (patterns are ``re.search``-ed in
  ``jax.tree_util.keystr(path)``).

  Args:
    exclude: regular expressions of paths to send to AdamW.

  Returns:
    A function of the params returning a tree of booleans.
  """
  patterns = [re.compile(p) for p in exclude]

  def mask(params):
    def is_muon(path, x):
      name = jax.tree_util.keystr(path)
      return np.ndim(x) >= 2 and not any(p.search(name) for p in patterns)

    return jax.tree_util.tree_map_with_path(is_muon, params)

  return mask


def muon(
    learning_rate: optax.ScalarOrSchedule = 0.02,
    beta: float = 0.95,
    weight_decay: float = 0.0,
    eps: float = 1e-7,
    rms_scale: float = 0.2,
    adam_learning_rate: optax.ScalarOrSchedule | None = 3e-4,
    adam_b1: float = 0.9,
    adam_b2: float = 0.95,
    adam_eps: float = 1e-10,
    adam_weight_decay: float = 0.0,
    *,
    ns_steps: int = 5,
    ns_coeffs: Sequence[float] = NS_COEFFS,
    nesterov: bool = True,
    shape_scaling: ShapeScaling = "jordan",
    ns_dtype: Any = jnp.float32,
    muon_mask: Any | Callable[[optax.Params], Any] | None = None,
    decay_convention: DecayConvention = "lr",
    matrix_axes: MatrixAxesTree = None,
) -> optax.GradientTransformation:
  r"""Muon: MomentUm Orthogonalized by Newton–Schulz, with AdamW for non-matrix leaves.

  For a matrix leaf W (fan_in × fan_out, flax layout):

  .. math::
     B_t = β B_{t−1} + (1−β) G_t, \quad M_t = (1−β) G_t + β B_t \;\text{(Nesterov)}, \\
     O_t = \mathrm{NS}_5(M_t / \|M_t\|_F), \quad
     W_{t+1} = W_t − α_t (s\, O_t + λ W_t)

  where NS₅ is five quintic Newton–Schulz steps with (a, b, c) = (3.4445,
  −4.7750, 2.0315) in float32 (:func:`orthogonalize`) and s the shape scale
  (:func:`shape_scale`): Jordan's :math:`\sqrt{\max(1, \text{fan\_out}/\text{fan\_in})}`
  by default, Moonlight's :math:`0.2\sqrt{\max(\text{fan\_in}, \text{fan\_out})}`
  with ``shape_scaling="moonlight"``. The decay is multiplied by α as in
  Jordan's and Moonlight's code (``decay_convention="lr"``; ``"paper"`` is
  Loshchilov & Hutter's W − α s O − λW).

  Which leaves get Muon: by default every leaf with ndim ≥ 2; ``muon_mask`` (a
  tree of booleans or a function of the params, True for Muon; see
  :func:`matrix_mask`) excludes embeddings and heads. A leaf with ndim > 2 is
  orthogonalized by default as the matrix ``(prod(shape[:-1]), shape[-1])``: a
  flax conv kernel ``(kh, kw, c_in, c_out)`` as ``(kh·kw·c_in, c_out)``, reshaped
  back after. ``matrix_axes`` chooses the view per leaf (:func:`as_matrix_shape`),
  and the shape scale s follows the view: for a flax transformer pass
  ``matrix_axes=flax_attention_matrix_axes``, which views the query/key/value
  kernels ``(d_in, heads, head_dim)`` as ``(d_in, heads·head_dim)`` (the default
  would orthogonalize ``(d_in·heads, head_dim)``). (``optax.contrib.muon`` sends
  leaves with ndim > 2 to Adam unless given ``muon_weight_dimension_numbers``;
  its ``MuonDimensionNumbers`` are accepted here, without batch axes.) Every
  other leaf gets AdamW (decay ×α,
  as Jordan's ``MuonWithAuxAdam``) with its own learning rate; defaults are his:
  α = 0.02, β = 0.95 for Muon, α = 3·10⁻⁴, β = (0.9, 0.95), ε = 10⁻¹⁰ for AdamW.
  ``adam_learning_rate=None`` uses Muon's α (as optax.contrib.muon).

  Differences from ``optax.contrib.muon``: no bias correction of the momentum
  (optax corrects it, which changes the Nesterov mix during the first steps;
  without Nesterov the two agree up to ε), ε = 10⁻⁷ (optax 10⁻⁸), and optax's
  auxiliary Adam uses Muon's ε and Nesterov flag.

  Args:
    learning_rate: α ≥ 0 for the Muon leaves, a number or a schedule.
    beta: β in [0, 1), Muon's momentum.
    weight_decay: λ ≥ 0 for the Muon leaves.
    eps: ε ≥ 0 of the Frobenius normalization.
    rms_scale: the RMS target of ``shape_scaling="moonlight"``.
    adam_learning_rate: AdamW's learning rate (None: Muon's).
    adam_b1: AdamW's β₁.
    adam_b2: AdamW's β₂.
    adam_eps: AdamW's ε.
    adam_weight_decay: AdamW's λ (multiplied by its learning rate).
    ns_steps: Newton–Schulz iterations (static).
    ns_coeffs: the quintic's (a, b, c) (static).
    nesterov: Nesterov momentum (Jordan's default).
    shape_scaling: ``"jordan"``, ``"moonlight"`` or ``"none"``.
    ns_dtype: the dtype of the Newton–Schulz iteration.
    muon_mask: which leaves get Muon (None: those with ndim ≥ 2).
    decay_convention: ``"lr"`` (the default) or ``"paper"``, for the Muon leaves.
    matrix_axes: how each Muon leaf is viewed as a matrix (static): None (the
      default view), a tree with the params' structure of None / int (the number
      of leading axes that form the rows) / ``optax.contrib.MuonDimensionNumbers``
      (entries of AdamW's leaves are ignored), or a function returning one; it is
      called on the tree Muon sees (AdamW's leaves replaced by
      ``optax.transforms.MaskedNode``). See :func:`flax_attention_matrix_axes`.
      When injecting (``optax.inject_hyperparams``), list it in ``static_args``.

  Returns:
    An ``optax.GradientTransformation``.

  Example:
    >>> import jax.numpy as jnp
    >>> from optlab.optim.muon import flax_attention_matrix_axes, matrix_mask, muon
    >>> tx = muon(0.02, muon_mask=matrix_mask(exclude=("embed",)),
    ...           matrix_axes=flax_attention_matrix_axes)
    >>> params = {"embed": jnp.ones((10, 4)), "w": jnp.ones((4, 4)), "b": jnp.zeros(4),
    ...           "query": {"kernel": jnp.ones((4, 2, 2))}}
    >>> updates, state = tx.update(params, tx.init(params), params)

  References:
    K. Jordan, Y. Jin, V. Boza, J. You, F. Cesista, L. Newhouse, J. Bernstein,
    "Muon: An optimizer for hidden layers in neural networks", 2024,
    https://kellerjordan.github.io/posts/muon/; J. Liu et al., "Muon is Scalable
    for LLM Training" (Moonlight), arXiv:2502.16982, 2025.
  """
  where = "muon"
  v.check_learning_rate(where, learning_rate)
  if adam_learning_rate is None:
    adam_learning_rate = learning_rate
  v.check_learning_rate(where, adam_learning_rate, "adam_learning_rate")
  if muon_mask is not None and not callable(muon_mask):
    fixed_mask = muon_mask
    muon_mask = lambda params: fixed_mask  # noqa: E731

  def labels(tree):
    if muon_mask is None:
      return jax.tree.map(lambda x: "muon" if np.ndim(x) >= 2 else "adam", tree)
    flags = muon_mask(tree)
    if jax.tree.structure(flags) != jax.tree.structure(tree):
      raise ValueError(f"{where}: muon_mask does not have the tree structure of the params.\n"
                       f"  muon_mask: {jax.tree.structure(flags)}\n"
                       f"  params: {jax.tree.structure(tree)}")
    for (path, flag), leaf in zip(jax.tree_util.tree_flatten_with_path(flags)[0],
                                  jax.tree.leaves(tree), strict=True):
      if flag and np.ndim(leaf) < 2:
        raise ValueError(f"{where}: muon_mask selects leaf {jax.tree_util.keystr(path)} of "
                         f"shape {np.shape(leaf)}; Muon takes leaves with ndim ≥ 2")
    return jax.tree.map(lambda f: "muon" if bool(f) else "adam", flags)

  muon_tx = optax.chain(
      scale_by_muon(beta, eps, rms_scale, ns_steps=ns_steps, ns_coeffs=ns_coeffs,
                    nesterov=nesterov, shape_scaling=shape_scaling, ns_dtype=ns_dtype,
                    matrix_axes=matrix_axes),
      weight_decay_and_learning_rate(learning_rate, weight_decay, decay_convention, where=where),
  )
  adam_tx = adamw(adam_learning_rate, adam_b1, adam_b2, adam_eps, adam_weight_decay,
                  decay_convention="lr")
  inner = optax.partition({"muon": muon_tx, "adam": adam_tx}, labels)

  def update_fn(updates, state, params=None, **extra_args):
    if params is not None:
      v.check_same_structure(where, updates, params, "params")
    return inner.update(updates, state, params, **extra_args)

  return optax.GradientTransformationExtraArgs(inner.init, update_fn)
