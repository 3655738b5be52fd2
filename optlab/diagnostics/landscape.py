"""Loss-landscape slices: 1-D interpolation between parameter sets, 2-D filter-normalized slices.

Both evaluate the loss at many points of a low-dimensional affine subspace of
parameter space. Points are evaluated with ``jax.vmap`` in chunks
(``lax.map(..., batch_size=chunk_size)``): one compiled program, at most
`chunk_size` parameter copies in memory at once.

References:
  Goodfellow, Vinyals, Saxe, *Qualitatively Characterizing Neural Network
  Optimization Problems*, ICLR 2015 (arXiv:1412.6544).
  Li, Xu, Taylor, Studer, Goldstein, *Visualizing the Loss Landscape of Neural
  Nets*, NeurIPS 2018 (arXiv:1712.09913).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from optlab.diagnostics.hessian import _static_fn

LossFn = Callable[[Any], jax.Array]


def _check_same_tree(reference: Any, other: Any, argument: str, against: str = "params") -> None:
  reference_def, other_def = jax.tree.structure(reference), jax.tree.structure(other)
  if reference_def != other_def:
    raise ValueError(f"{argument}: its tree structure {other_def} does not match the tree "
                     f"structure of {against} {reference_def}")
  pairs = zip(jax.tree.leaves(reference), jax.tree.leaves(other), strict=True)
  for i, (a, b) in enumerate(pairs):
    if jnp.shape(a) != jnp.shape(b):
      raise ValueError(f"{argument}: leaf {i} has shape {jnp.shape(b)}, but the matching leaf of "
                       f"{against} has shape {jnp.shape(a)}")


def _check_int(value: Any, argument: str, minimum: int) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{argument}: expected an int ≥ {minimum}, got {value!r}")
  if value < minimum:
    raise ValueError(f"{argument}: must be ≥ {minimum}, got {value}")
  return int(value)


def _axpy(params: Any, coefficients: Sequence[jax.Array], directions: Sequence[Any]) -> Any:
  """params + Σ cᵢ dᵢ, leaf by leaf, in the parameters' dtypes."""

  def combine(p, *ds):
    total = p.astype(jnp.promote_types(p.dtype, jnp.float32))
    for c, d in zip(coefficients, ds, strict=True):
      total = total + c * d.astype(total.dtype)
    return total.astype(p.dtype)

  return jax.tree.map(combine, params, *directions)


@functools.partial(jax.jit, static_argnames=("loss_fn", "chunk_size"))
def _plane_losses(loss_fn: LossFn, origin: Any, directions: tuple[Any, ...], grid: jax.Array,
                  chunk_size: int) -> jax.Array:
  """``loss_fn(origin + Σᵢ g[i] directions[i])`` for each row ``g`` of `grid`, vmapped in chunks."""

  def loss_at(row):
    return loss_fn(_axpy(origin, [row[i] for i in range(len(directions))], list(directions)))

  return jax.lax.map(loss_at, grid, batch_size=min(chunk_size, grid.shape[0]))


def interpolate(
    loss_fn: LossFn,
    params_a: Any,
    params_b: Any,
    *,
    num: int = 25,
    extrapolate: float = 0.0,
    chunk_size: int = 16,
) -> tuple[jax.Array, jax.Array]:
  """The loss along the line between two parameter sets (Goodfellow et al. 2015).

  Evaluates ``L((1 − α) θ_a + α θ_b)`` at `num` evenly spaced ``α`` in
  ``[−extrapolate, 1 + extrapolate]`` (``α = 0`` is ``θ_a``, ``α = 1`` is
  ``θ_b``). Goodfellow et al. use it from the initialization to the trained
  solution (often a smooth, monotone decrease); between two solutions it shows
  whether they lie in one basin (no barrier) or are separated by one.

  Args:
    loss_fn: ``loss_fn(params) -> scalar``.
    params_a: the start ``θ_a``.
    params_b: the end ``θ_b``, a tree with the structure and shapes of `params_a`.
    num: number of points (≥ 2).
    extrapolate: how far beyond both ends to go, in units of the segment (≥ 0).
    chunk_size: points evaluated at once (``vmap``).

  Returns:
    ``(alphas, losses)``, two ``Array[num]``.

  Example:
    >>> import jax.numpy as jnp
    >>> alphas, losses = interpolate(lambda p: jnp.sum(p**2), jnp.zeros(2), jnp.ones(2), num=3)
    >>> alphas.tolist(), losses.tolist()
    ([0.0, 0.5, 1.0], [0.0, 0.5, 2.0])

  Reference:
    Goodfellow, Vinyals, Saxe, *Qualitatively Characterizing Neural Network
    Optimization Problems*, ICLR 2015 (arXiv:1412.6544).
  """
  _check_same_tree(params_a, params_b, "params_b", "params_a")
  num = _check_int(num, "num", 2)
  chunk_size = _check_int(chunk_size, "chunk_size", 1)
  if not np.isfinite(extrapolate) or extrapolate < 0:
    raise ValueError(f"extrapolate: must be a finite number ≥ 0, got {extrapolate!r}")
  low, high = -float(extrapolate), 1.0 + float(extrapolate)
  alphas = jnp.asarray(low + (high - low) * np.arange(num) / (num - 1), jnp.float32)
  difference = jax.tree.map(
      lambda a, b: jnp.asarray(b, jnp.float32) - jnp.asarray(a, jnp.float32), params_a, params_b)
  losses = _plane_losses(_static_fn(loss_fn), params_a, (difference,), alphas[:, None], chunk_size)
  return alphas, losses


def filter_normalized_direction(
    params: Any,
    key: jax.Array,
    *,
    ignore_biases: bool = True,
    filter_axis: int = -1,
) -> Any:
  """A random Gaussian direction rescaled per filter to the parameters' norms (Li et al. 2018).

  Draws ``d ~ N(0, I)`` shaped like `params` and, for every filter ``j`` of every
  layer ``i``, sets ``d_{i,j} ← d_{i,j} / ‖d_{i,j}‖ · ‖θ_{i,j}‖``, so that a step
  along ``d`` perturbs each filter in proportion to its scale (removing the
  scale invariance that makes plain random directions misleading).

  **Which axis is a filter.** A filter is one output unit/channel: all the
  weights that produce one output. In PyTorch that is the first axis of a weight
  (``(out, in, kh, kw)``); flax stores the output axis last, so a filter is one
  slice along the *last* axis of a ``Linear``/``Dense`` kernel ``(in, out)`` (a
  column) or a ``Conv`` kernel ``(kh, kw, in, out)`` — the norm is taken over all
  other axes. `filter_axis` chooses another axis for other layouts.

  **Biases and other 1-D parameters** (biases, normalization scales and
  offsets, scalars): with ``ignore_biases=True`` (the paper's choice,
  ``ignore='biasbn'`` in its code) their direction is zero; with False it is the
  parameter itself (what the reference code ``net_plotter.py`` does then).

  Args:
    params: the parameters, any pytree (e.g. an ``nnx.State``).
    key: PRNG key.
    ignore_biases: zero the direction of parameters with fewer than 2 dimensions.
    filter_axis: the axis of ≥ 2-D parameters that indexes filters.

  Returns:
    A tree like `params` (same dtypes).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> params = {"kernel": jnp.ones((3, 2)), "bias": jnp.ones(2)}
    >>> d = filter_normalized_direction(params, jax.random.key(0))
    >>> [round(float(v), 4) for v in jnp.linalg.norm(d["kernel"], axis=0)], d["bias"].tolist()
    ([1.7321, 1.7321], [0.0, 0.0])

  Reference:
    Li, Xu, Taylor, Studer, Goldstein, *Visualizing the Loss Landscape of Neural
    Nets*, NeurIPS 2018 (arXiv:1712.09913), §4.
  """
  if not isinstance(filter_axis, int) or isinstance(filter_axis, bool):
    raise TypeError(f"filter_axis: expected an int, got {filter_axis!r}")
  leaves, treedef = jax.tree.flatten(params)
  for i, leaf in enumerate(leaves):
    dtype = jnp.result_type(leaf)
    if not jnp.issubdtype(dtype, jnp.inexact):
      raise TypeError(f"params: leaf {i} has dtype {dtype}; directions need floating-point "
                      f"parameters")
    ndim = jnp.ndim(leaf)
    if ndim >= 2 and not -ndim <= filter_axis < ndim:
      raise ValueError(f"filter_axis: {filter_axis} is out of range for leaf {i} of shape "
                       f"{jnp.shape(leaf)}")

  leaves = [jnp.asarray(leaf) for leaf in leaves]
  return jax.tree.unflatten(treedef, _filter_normalized(leaves, key, ignore_biases, filter_axis))


@functools.partial(jax.jit, static_argnames=("ignore_biases", "filter_axis"))
def _filter_normalized(leaves: list[jax.Array], key: jax.Array, ignore_biases: bool,
                       filter_axis: int) -> list[jax.Array]:
  sizes = [leaf.size if leaf.ndim >= 2 else 0 for leaf in leaves]
  noise = jax.random.normal(key, (max(sum(sizes), 1),), jnp.float32)  # one draw for all leaves
  out, offset = [], 0
  for leaf, size in zip(leaves, sizes, strict=True):
    if leaf.ndim < 2:
      out.append(jnp.zeros_like(leaf) if ignore_biases else leaf)
      continue
    work = jnp.promote_types(leaf.dtype, jnp.float32)
    direction = noise[offset:offset + size].reshape(leaf.shape).astype(work)
    offset += size
    axes = tuple(a for a in range(leaf.ndim) if a != filter_axis % leaf.ndim)
    d_norm = jnp.sqrt(jnp.sum(jnp.square(direction), axis=axes, keepdims=True))
    p_norm = jnp.sqrt(jnp.sum(jnp.square(leaf.astype(work)), axis=axes, keepdims=True))
    scale = p_norm / jnp.maximum(d_norm, jnp.finfo(work).tiny)
    out.append((direction * scale).astype(leaf.dtype))
  return out


def slice_2d(
    loss_fn: LossFn,
    params: Any,
    *,
    key: jax.Array | None = None,
    num: int = 21,
    span: float = 1.0,
    directions: tuple[Any, Any] | None = None,
    chunk_size: int = 16,
    ignore_biases: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The loss on a 2-D plane through `params`: ``L(θ + α δ + β η)`` on a ``num × num`` grid.

  With no `directions`, ``δ`` and ``η`` are two independent
  :func:`filter_normalized_direction` draws (Li et al. 2018), which makes the
  sharpness of different networks' plots comparable; ``α, β`` run over
  ``[−span, span]`` (the middle point, for odd `num`, is exactly ``θ``).

  Args:
    loss_fn: ``loss_fn(params) -> scalar``.
    params: the centre ``θ``.
    key: PRNG key for the directions (needed unless `directions` is given).
    num: grid points per axis (≥ 2).
    span: the half-width of the grid (> 0).
    directions: ``(δ, η)``, two trees like `params`, instead of random ones.
    chunk_size: grid points evaluated at once (``vmap``).
    ignore_biases: passed to :func:`filter_normalized_direction`.

  Returns:
    ``(alphas, betas, losses)`` with ``losses[i, j] = L(θ + αᵢ δ + βⱼ η)``
    (``Array[num]``, ``Array[num]``, ``Array[num, num]``). For ``plt.contour(α, β, Z)``
    pass ``Z = losses.T`` (or use :func:`plot_slice`).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> params = {"w": jnp.ones((2, 2))}
    >>> a, b, z = slice_2d(lambda p: jnp.sum(p["w"] ** 2), params, key=jax.random.key(0), num=5)
    >>> z.shape, float(z[2, 2])
    ((5, 5), 4.0)

  Reference:
    Li, Xu, Taylor, Studer, Goldstein, *Visualizing the Loss Landscape of Neural
    Nets*, NeurIPS 2018 (arXiv:1712.09913).
  """
  num = _check_int(num, "num", 2)
  chunk_size = _check_int(chunk_size, "chunk_size", 1)
  if not np.isfinite(span) or span <= 0:
    raise ValueError(f"span: must be a finite number > 0, got {span!r}")
  if directions is None:
    if key is None:
      raise ValueError("slice_2d: give a PRNG `key` for the random directions, or `directions`")
    first, second = jax.random.split(key)
    directions = (filter_normalized_direction(params, first, ignore_biases=ignore_biases),
                  filter_normalized_direction(params, second, ignore_biases=ignore_biases))
  else:
    if not isinstance(directions, (tuple, list)) or len(directions) != 2:
      raise ValueError(f"directions: expected a pair (delta, eta) of trees like params, got "
                       f"{type(directions).__name__}")
    for i, direction in enumerate(directions):
      _check_same_tree(params, direction, f"directions[{i}]")
  # i·2/(num−1) − 1 is exactly 0 at the middle index of an odd grid.
  alphas = jnp.asarray(float(span) * (np.arange(num) * 2.0 / (num - 1) - 1.0), jnp.float32)
  grid = jnp.stack(jnp.meshgrid(alphas, alphas, indexing="ij"), axis=-1).reshape(num * num, 2)

  losses = _plane_losses(_static_fn(loss_fn), params, tuple(directions), grid, chunk_size)
  losses = losses.reshape(num, num)
  return alphas, alphas, losses


def plot_interpolation(alphas: Any, losses: Any, *, ax: Any = None, label: str | None = None,
                       **kwargs: Any) -> Any:
  """Draws ``losses`` against ``alphas`` (from :func:`interpolate`), marking α = 0 and 1.

  Args:
    alphas: ``Array[num]``.
    losses: ``Array[num]``.
    ax: a matplotlib Axes (default: the current one).
    label: the line's legend label.
    **kwargs: passed to ``ax.plot``.

  Returns:
    The Axes.
  """
  import matplotlib.pyplot as plt

  ax = plt.gca() if ax is None else ax
  alphas, losses = np.asarray(alphas), np.asarray(losses)
  ax.plot(alphas, losses, label=label, **kwargs)
  for end in (0.0, 1.0):
    ax.axvline(end, color="0.7", linewidth=0.8, linestyle=":")
  ax.set_xlabel("α  (θ = (1 − α) θ_a + α θ_b)")
  ax.set_ylabel("loss")
  return ax


def plot_slice(alphas: Any, betas: Any, losses: Any, *, ax: Any = None, levels: int = 30,
               log: bool = False, filled: bool = False, colorbar: bool = True,
               **kwargs: Any) -> Any:
  """Draws a contour plot of a :func:`slice_2d` result, with the centre marked.

  Args:
    alphas: ``Array[num]`` (x axis, along δ).
    betas: ``Array[num]`` (y axis, along η).
    losses: ``Array[num, num]`` with ``losses[i, j]`` at ``(alphas[i], betas[j])``.
    ax: a matplotlib Axes (default: the current one).
    levels: number of contour levels.
    log: contour ``log10(loss)`` (losses must be positive).
    filled: ``contourf`` instead of ``contour``.
    colorbar: add a colour bar.
    **kwargs: passed to ``ax.contour`` / ``ax.contourf``.

  Returns:
    The Axes.
  """
  import matplotlib.pyplot as plt

  ax = plt.gca() if ax is None else ax
  z = np.asarray(losses, np.float64).T  # contour wants Z[y, x]
  if log:
    if np.any(z <= 0):
      raise ValueError("plot_slice: log=True needs positive losses")
    z = np.log10(z)
  draw = ax.contourf if filled else ax.contour
  contours = draw(np.asarray(alphas), np.asarray(betas), z, levels=levels, **kwargs)
  ax.plot([0.0], [0.0], marker="*", color="black", markersize=8)
  ax.set_xlabel("α (direction δ)")
  ax.set_ylabel("β (direction η)")
  if colorbar:
    ax.figure.colorbar(contours, ax=ax, label="log10 loss" if log else "loss")
  return ax


__all__ = [
    "filter_normalized_direction",
    "interpolate",
    "plot_interpolation",
    "plot_slice",
    "slice_2d",
]
