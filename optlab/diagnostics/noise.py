"""Gradient noise scale and critical batch size (McCandlish et al. 2018).

With per-example gradients ``gᵢ`` of a loss averaged over a dataset of ``n``
examples, the true gradient is ``G = (1/n) Σ gᵢ`` and the per-example covariance
``Σ = (1/n) Σ (gᵢ − G)(gᵢ − G)ᵀ``. A batch gradient ``G_B`` (``B`` examples) has

  ``E |G_B|² = |G|² + tr Σ / B``  (sampling with replacement)

and the *simple noise scale* ``B_simple = tr Σ / |G|²`` predicts the critical
batch size: the batch size up to which doubling the batch nearly halves the
steps needed (perfect scaling), and beyond which returns diminish.

This module estimates ``B_simple`` from gradients at two batch sizes (cheap, any
data size), exactly from per-example gradients (small data), and fits the
steps/examples trade-off ``(S/S_min − 1)(E/E_min − 1) = 1`` to measured
steps-to-target.

Reference:
  McCandlish, Kaplan, Amodei and the OpenAI Dota Team, *An Empirical Model of
  Large-Batch Training*, 2018 (arXiv:1812.06162), §2 and Appendix A.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from optlab.diagnostics.hessian import _static_fn

BatchLossFn = Callable[[Any, jax.Array, jax.Array], jax.Array]


class NoiseScale(NamedTuple):
  """A gradient noise-scale estimate.

  Attributes:
    simple: ``B_simple = tr Σ / |G|²`` (examples).
    trace_covariance: ``tr Σ``, the trace of the per-example gradient covariance.
    gradient_norm_sq: ``|G|²``, the squared norm of the true (full-data) gradient.
  """

  simple: jax.Array
  trace_covariance: jax.Array
  gradient_norm_sq: jax.Array


class CriticalBatch(NamedTuple):
  """The fit of ``S = S_min (1 + B_crit / B)`` to measured steps-to-target.

  Attributes:
    s_min: ``S_min``, the fewest steps (the infinite-batch limit).
    e_min: ``E_min = S_min · B_crit``, the fewest examples (the small-batch limit).
    b_crit: ``B_crit = E_min / S_min``, the critical batch size.
  """

  s_min: float
  e_min: float
  b_crit: float


def _check_int(value: Any, argument: str, minimum: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
    raise TypeError(f"{argument}: expected an int ≥ {minimum}, got {value!r} "
                    f"({type(value).__name__})")
  if value < minimum:
    raise ValueError(f"{argument}: must be ≥ {minimum}, got {value}")
  return int(value)


def _check_data(x: Any, y: Any) -> int:
  if jnp.ndim(x) < 1 or jnp.ndim(y) < 1:
    raise ValueError(f"x, y: expected arrays with a leading example axis, got shapes "
                     f"{jnp.shape(x)} and {jnp.shape(y)}")
  n = jnp.shape(x)[0]
  if jnp.shape(y)[0] != n:
    raise ValueError(f"x, y: different numbers of examples ({n} and {jnp.shape(y)[0]})")
  return int(n)


def _sq_norm(tree: Any) -> jax.Array:
  return sum(jnp.sum(jnp.square(leaf.astype(jnp.float32))) for leaf in jax.tree.leaves(tree))


def gradient_noise_scale(
    loss_fn: BatchLossFn,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    small_batch: int,
    big_batch: int,
    num_estimates: int = 16,
    key: jax.Array,
) -> NoiseScale:
  """``B_simple`` from gradient norms at two batch sizes (McCandlish et al. 2018, App. A).

  With ``E|G_B|² = |G|² + tr Σ / B``, the norms at a small batch ``B_s`` and a big
  batch ``B_b`` give unbiased estimates

    ``|G|²  ≈ (B_b |G_b|² − B_s |G_s|²) / (B_b − B_s)``,
    ``tr Σ ≈ (|G_s|² − |G_b|²) / (1/B_s − 1/B_b)``.

  Each of `num_estimates` rounds draws a big batch (without replacement) and splits
  it into ``⌊B_b/B_s⌋`` disjoint small batches whose ``|G_s|²`` are averaged; the
  norms are averaged over the rounds *before* the ratio ``tr Σ / |G|²`` is taken
  (the ratio of unbiased estimates is far less noisy than the mean of ratios).
  Since batches are drawn from the ``n`` examples without replacement, ``1/B`` is
  replaced by the finite-population ``(1/B − 1/n)·n/(n − 1)``, which makes both
  estimates unbiased for the dataset's own ``|G|²`` and ``tr Σ`` (those of
  :func:`per_example_noise_scale`); for ``n ≫ B`` these are the paper's formulas.

  The ratio of estimates is biased and ``|G|²`` can come out ≤ 0 when the
  gradient is small against its noise (near a minimum): then ``simple`` is
  negative or huge, a sign to use more estimates or a bigger big batch.

  Args:
    loss_fn: ``loss_fn(params, x_batch, y_batch) -> mean loss over the batch``.
    params: the parameters at which to measure (any pytree).
    x: inputs, leading axis the ``n`` examples.
    y: targets, leading axis ``n``.
    small_batch: ``B_s`` (≥ 1).
    big_batch: ``B_b`` (``B_s < B_b ≤ n``).
    num_estimates: rounds of random batches averaged (≥ 1).
    key: PRNG key for the batches.

  Returns:
    A :class:`NoiseScale` (float32 scalars).

  Raises:
    ValueError / TypeError: ``small_batch ≥ big_batch``, a batch larger than the
      data, non-positive counts, `x` and `y` of different lengths.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> x = jax.random.normal(jax.random.key(0), (512, 3))
    >>> y = x @ jnp.array([1.0, -2.0, 0.5]) + jax.random.normal(jax.random.key(1), (512,))
    >>> loss = lambda w, xb, yb: 0.5 * jnp.mean((xb @ w - yb) ** 2)
    >>> scale = gradient_noise_scale(loss, jnp.zeros(3), x, y, small_batch=8,
    ...                              big_batch=128, key=jax.random.key(2))
    >>> scale.simple.shape
    ()

  Reference:
    McCandlish et al., *An Empirical Model of Large-Batch Training*, 2018
    (arXiv:1812.06162), Appendix A.1.
  """
  n = _check_data(x, y)
  small = _check_int(small_batch, "small_batch")
  big = _check_int(big_batch, "big_batch")
  rounds = _check_int(num_estimates, "num_estimates")
  if small >= big:
    raise ValueError(f"small_batch ({small}) must be smaller than big_batch ({big})")
  if big > n:
    raise ValueError(f"big_batch: {big} is larger than the {n} examples in x")

  def population_factor(b: int) -> float:  # E|G_B|² − |G|² = tr Σ · factor(B)
    return (1.0 / b - 1.0 / n) * n / (n - 1)

  small_sq, big_sq = _batch_norms(_static_fn(loss_fn), params, x, y, key, small, big, rounds)
  c_small, c_big = population_factor(small), population_factor(big)
  trace = (small_sq - big_sq) / (c_small - c_big)
  norm_sq = (c_small * big_sq - c_big * small_sq) / (c_small - c_big)
  return NoiseScale(simple=trace / norm_sq, trace_covariance=trace, gradient_norm_sq=norm_sq)


@functools.partial(jax.jit, static_argnames=("loss_fn", "small", "big", "rounds"))
def _batch_norms(loss_fn: BatchLossFn, params: Any, x: jax.Array, y: jax.Array, key: jax.Array,
                 small: int, big: int, rounds: int) -> tuple[jax.Array, jax.Array]:
  """Mean over `rounds` of (mean |G_small|² over the big batch's small batches, |G_big|²)."""
  n = x.shape[0]
  chunks = big // small
  grad_fn = jax.grad(loss_fn)

  def one_round(i, totals):
    order = jax.random.permutation(jax.random.fold_in(key, i), n)[:big]
    xb, yb = jnp.take(x, order, axis=0), jnp.take(y, order, axis=0)
    big_sq = _sq_norm(grad_fn(params, xb, yb))

    def small_sq(j, total):
      xs = jax.lax.dynamic_slice_in_dim(xb, j * small, small)
      ys = jax.lax.dynamic_slice_in_dim(yb, j * small, small)
      return total + _sq_norm(grad_fn(params, xs, ys))

    small_mean = jax.lax.fori_loop(0, chunks, small_sq, jnp.zeros([], jnp.float32)) / chunks
    return totals[0] + small_mean, totals[1] + big_sq

  zero = jnp.zeros([], jnp.float32)
  small_total, big_total = jax.lax.fori_loop(0, rounds, one_round, (zero, zero))
  return small_total / rounds, big_total / rounds


def per_example_noise_scale(
    loss_fn: BatchLossFn,
    params: Any,
    x: jax.Array,
    y: jax.Array,
    *,
    chunk_size: int = 256,
) -> NoiseScale:
  """``B_simple`` exactly, from every per-example gradient (for small data).

  Computes ``gᵢ = ∇ loss_fn(params, xᵢ[None], yᵢ[None])`` (``vmap`` of ``grad``
  over batches of one) in chunks of `chunk_size`, then in two passes

    ``G = (1/n) Σ gᵢ``,  ``tr Σ = (1/n) Σ |gᵢ − G|²``,  ``B_simple = tr Σ / |G|²``.

  These are the dataset's own quantities, of which
  :func:`gradient_noise_scale`'s norms are unbiased estimates. Cost: two
  per-example gradients per example.

  Args:
    loss_fn: ``loss_fn(params, x_batch, y_batch) -> mean loss`` (called with
      batches of one example).
    params: the parameters (any pytree).
    x: inputs, leading axis the ``n ≥ 2`` examples.
    y: targets, leading axis ``n``.
    chunk_size: examples whose gradients are held at once.

  Returns:
    A :class:`NoiseScale` (float32 scalars).

  Example:
    >>> import jax, jax.numpy as jnp
    >>> x = jnp.array([[1.0], [2.0], [3.0]]); y = jnp.zeros(3)
    >>> loss = lambda w, xb, yb: 0.5 * jnp.mean((xb @ w - yb) ** 2)
    >>> scale = per_example_noise_scale(loss, jnp.ones(1), x, y)  # gᵢ = xᵢ²: 1, 4, 9
    >>> round(float(scale.gradient_norm_sq), 3), round(float(scale.trace_covariance), 3)
    (21.778, 10.889)

  Reference:
    McCandlish et al., *An Empirical Model of Large-Batch Training*, 2018
    (arXiv:1812.06162), §2.2.
  """
  n = _check_data(x, y)
  if n < 2:
    raise ValueError(f"x: need at least 2 examples for a covariance, got {n}")
  chunk = min(_check_int(chunk_size, "chunk_size"), n)

  trace, norm_sq = _per_example(_static_fn(loss_fn), params, x, y, chunk)
  return NoiseScale(simple=trace / norm_sq, trace_covariance=trace, gradient_norm_sq=norm_sq)


@functools.partial(jax.jit, static_argnames=("loss_fn", "chunk"))
def _per_example(loss_fn: BatchLossFn, params: Any, x: jax.Array, y: jax.Array,
                 chunk: int) -> tuple[jax.Array, jax.Array]:
  """(tr Σ, |G|²) from per-example gradients, two passes over chunks of `chunk` examples."""
  n = x.shape[0]
  num_chunks = -(-n // chunk)
  pad = num_chunks * chunk - n

  def example_grad(params, xi, yi):
    return jax.grad(loss_fn)(params, xi[None], yi[None])

  def chunked(a):
    if pad:
      a = jnp.concatenate([a, jnp.zeros((pad, *a.shape[1:]), a.dtype)])
    return a.reshape(num_chunks, chunk, *a.shape[1:])

  xs, ys = chunked(x), chunked(y)
  valid = (jnp.arange(num_chunks * chunk) < n).reshape(num_chunks, chunk)
  per_chunk = jax.vmap(example_grad, in_axes=(None, 0, 0))

  def total_grad(total, batch):
    xc, yc, mask = batch
    grads = per_chunk(params, xc, yc)
    summed = jax.tree.map(
        lambda g: jnp.tensordot(mask.astype(jnp.float32), g.astype(jnp.float32), axes=1), grads)
    return jax.tree.map(jnp.add, total, summed), None

  zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params)
  mean = jax.tree.map(lambda s: s / n, jax.lax.scan(total_grad, zeros, (xs, ys, valid))[0])

  def total_deviation(total, batch):
    xc, yc, mask = batch
    grads = per_chunk(params, xc, yc)
    deviations = sum(
        jnp.sum(jnp.square(g.astype(jnp.float32) - m[None]).reshape(chunk, -1), axis=1)
        for g, m in zip(jax.tree.leaves(grads), jax.tree.leaves(mean), strict=True))
    return total + jnp.sum(jnp.where(mask, deviations, 0.0)), None

  trace = jax.lax.scan(total_deviation, jnp.zeros([], jnp.float32), (xs, ys, valid))[0] / n
  return trace, _sq_norm(mean)


def fit_critical_batch_size(
    batch_sizes: Sequence[float],
    steps: Sequence[float],
    *,
    relative: bool = False,
) -> CriticalBatch:
  """Fits ``S = S_min (1 + B_crit/B)`` to steps-to-target ``S`` measured at batch sizes ``B``.

  McCandlish et al. (eq. 2.11–2.12) find that the steps ``S`` and examples
  ``E = B·S`` needed to reach a given loss trade off as
  ``(S/S_min − 1)(E/E_min − 1) = 1``, i.e. ``S = S_min + E_min / B``: linear in
  ``1/B`` with intercept ``S_min`` and slope ``E_min``. This solves that linear
  least-squares problem and returns ``B_crit = E_min / S_min``, the batch size at
  which training takes twice the minimal steps and twice the minimal examples.

  Args:
    batch_sizes: at least two batch sizes, positive, not all equal.
    steps: the measured steps to reach the target at each, positive.
    relative: weight the residuals by ``1/S`` (fit relative errors; useful when
      ``S`` spans orders of magnitude). Default: ordinary least squares in ``S``.

  Returns:
    A :class:`CriticalBatch` of Python floats.

  Raises:
    ValueError: fewer than two points, different lengths, a non-positive or
      non-finite value, all batch sizes equal, or a fit with ``S_min ≤ 0`` or
      ``E_min ≤ 0`` (the measurements do not follow the model).

  Example:
    >>> fit = fit_critical_batch_size([16, 64, 256], [1100.0, 350.0, 162.5])
    >>> round(fit.s_min, 6), round(fit.b_crit, 6), round(fit.e_min, 6)
    (100.0, 160.0, 16000.0)

  Reference:
    McCandlish et al., *An Empirical Model of Large-Batch Training*, 2018
    (arXiv:1812.06162), §2.3.
  """
  b = np.asarray(batch_sizes, np.float64).reshape(-1)
  s = np.asarray(steps, np.float64).reshape(-1)
  if b.size != s.size:
    raise ValueError(f"batch_sizes and steps: different lengths ({b.size} and {s.size})")
  if b.size < 2:
    raise ValueError(f"batch_sizes, steps: need at least 2 points to fit S_min and B_crit, got "
                     f"{b.size}")
  for name, values in (("batch_sizes", b), ("steps", s)):
    bad = ~np.isfinite(values) | (values <= 0)
    if bad.any():
      raise ValueError(f"{name}: every value must be positive and finite, got "
                       f"{values[bad].tolist()}")
  if np.all(b == b[0]):
    raise ValueError(f"batch_sizes: need at least two different batch sizes, got {b.tolist()}")
  design = np.stack([np.ones_like(b), 1.0 / b], axis=1)
  weights = 1.0 / s if relative else np.ones_like(s)
  (s_min, e_min), *_ = np.linalg.lstsq(design * weights[:, None], s * weights, rcond=None)
  if s_min <= 0 or e_min <= 0:
    raise ValueError(f"steps: the least-squares fit gives S_min = {s_min:.4g}, E_min = "
                     f"{e_min:.4g}; both must be positive (steps should fall with batch size "
                     f"and level off)")
  return CriticalBatch(s_min=float(s_min), e_min=float(e_min), b_crit=float(e_min / s_min))


__all__ = [
    "CriticalBatch",
    "NoiseScale",
    "fit_critical_batch_size",
    "gradient_noise_scale",
    "per_example_noise_scale",
]
