"""Matrix functions of symmetric positive semi-definite matrices for Shampoo and SOAP.

Shampoo needs inverse p-th roots :math:`A^{-1/p}` of its statistics, SOAP needs
an orthonormal eigenbasis of them. Both are computed in float32 at least (wider
inputs keep their precision), batched over any leading axes, and never produce
a NaN or an infinity from a finite positive semi-definite input, however
singular. The safeguards, in order:

1. **Symmetrize**: :math:`A ← (A + A^⊤)/2`; a statistic :math:`Σ G G^⊤` is
   symmetric only up to rounding, and ``eigh`` reads one triangle.
2. **Clamp**: eigenvalues below 0 are rounding error of a PSD matrix; they are
   raised to 0.
3. **Regularize**: a ridge :math:`r` is added to every eigenvalue, with
   :math:`r = ε\\,λ_{max}(A)` (``relative=True``, scale-free, the default) or
   :math:`r = ε` (``relative=False``, the :math:`ε I` of Gupta et al.). Every
   eigenvalue used is then ≥ r > 0, so :math:`(λ+r)^{-1/p}` is finite and at
   most :math:`r^{-1/p}`: the floor on eigenvalues is the ridge itself.
4. **Zero matrix**: with ``relative=True`` an all-zero matrix has no scale; its
   "inverse root" is taken to be the identity (the limit direction of
   :math:`(A + rI)^{-1/p}` as A → 0), so a block that has seen only zero
   gradients is left unpreconditioned rather than multiplied by infinity.

In float32, eigenvalues below about :math:`10^{-7} n\\,λ_{max}` are rounding
noise; ``eps`` should not be much smaller than that (1e-6 relative is a sound
default for blocks of a few hundred).
"""

from __future__ import annotations

import functools
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

RootMethod = Literal["eigh", "newton"]
HIGHEST = jax.lax.Precision.HIGHEST  # no TF32/bf16 passes in matrix products on accelerators
ROOT_METHODS = ("eigh", "newton")


def _one_at_a_time(decomposition, jvp):
  """`decomposition` of a (batch of) matrices; on CPU, one matrix after another.

  jaxlib's CPU LAPACK kernels split a batch over XLA's intra-op thread pool and
  wait for the pieces on a thread of that same pool. When several batched
  decompositions run at once (XLA runs independent operations concurrently) and
  every pool thread is waiting, none is left to run the pieces: the program
  deadlocks, using no CPU (Shampoo's first update of a 2-layer TransformerLM on 2
  cores never returned; the backtraces show ``ParallelBatchMap`` in
  ``lapack_ssyevd_ffi`` on every waiting thread). Here the kernel only ever sees
  one matrix: leading batch axes, and any ``jax.vmap`` around the caller (a
  vectorized sweep), become a ``lax.map`` (``jax.custom_batching.custom_vmap``).
  Derivatives come from `jvp` (written out, as custom batching rules cannot be
  differentiated), so the result differentiates forward and in reverse. GPUs keep
  the batched call (cuSOLVER's batched kernels).
  """

  @jax.custom_batching.custom_vmap
  def single(matrix):
    return decomposition(matrix)

  @single.def_vmap
  def _batched(axis_size, in_batched, matrix):
    del axis_size, in_batched
    outputs = jax.lax.map(single, matrix)
    return outputs, jax.tree.map(lambda _: True, outputs)

  @jax.custom_jvp
  def differentiable(matrix):
    return single(matrix)

  differentiable.defjvp(lambda primals, tangents: jvp(differentiable, primals[0], tangents[0]))

  def decompose(matrix):
    if jax.default_backend() != "cpu":
      return decomposition(matrix)
    fn = differentiable
    for _ in range(matrix.ndim - 2):
      fn = jax.vmap(fn)
    return fn(matrix)

  return decompose


def _transpose(x: jax.Array) -> jax.Array:
  return jnp.swapaxes(x, -1, -2)


def _eigh_jvp(eigh, matrix, tangent):
  """JAX's ``eigh`` JVP: dλ = diag(Vᵀ dA V), dV = V (F ∘ Vᵀ dA V), F_ij = 1/(λ_j − λ_i)."""
  eigenvalues, vectors = eigh(matrix)
  tangent = 0.5 * (tangent + _transpose(tangent))  # eigh reads the symmetrized matrix
  eye = jnp.eye(matrix.shape[-1], dtype=matrix.dtype)
  reciprocal = 1.0 / (eye + eigenvalues[..., None, :] - eigenvalues[..., :, None]) - eye
  projected = jnp.matmul(jnp.matmul(_transpose(vectors), tangent, precision=HIGHEST), vectors,
                         precision=HIGHEST)
  d_vectors = jnp.matmul(vectors, reciprocal * projected, precision=HIGHEST)
  d_values = jnp.diagonal(projected, axis1=-2, axis2=-1)
  return (eigenvalues, vectors), (d_values, d_vectors)


def _qr_jvp(qr, matrix, tangent):
  """JAX's reduced ``qr`` JVP for real square or tall matrices (J. Townsend's derivation)."""
  q, r = qr(matrix)
  # dA R⁻¹, by a triangular solve of Rᵀ Xᵀ = dAᵀ.
  tangent_rinv = _transpose(jax.scipy.linalg.solve_triangular(
      _transpose(r), _transpose(tangent), lower=True))
  projected = jnp.matmul(_transpose(q), tangent_rinv, precision=HIGHEST)
  lower = jnp.tril(projected, -1)
  skew = lower - _transpose(lower)
  d_q = jnp.matmul(q, skew - projected, precision=HIGHEST) + tangent_rinv
  d_r = jnp.matmul(projected - skew, r, precision=HIGHEST)
  return (q, r), (d_q, d_r)


_eigh = _one_at_a_time(lambda matrix: jnp.linalg.eigh(matrix), _eigh_jvp)
_qr = _one_at_a_time(lambda matrix: jnp.linalg.qr(matrix), _qr_jvp)


def _working_dtype(matrix: jax.Array) -> jnp.dtype:
  return jnp.promote_types(jnp.result_type(matrix), jnp.float32)


def symmetrize(matrix: jax.Array) -> jax.Array:
  """Returns :math:`(A + A^⊤)/2` in float32 or wider, for a batch of square matrices."""
  matrix = jnp.asarray(matrix)
  matrix = matrix.astype(_working_dtype(matrix))
  return 0.5 * (matrix + jnp.swapaxes(matrix, -1, -2))


def _identity_like(matrix: jax.Array) -> jax.Array:
  n = matrix.shape[-1]
  return jnp.broadcast_to(jnp.eye(n, dtype=matrix.dtype), matrix.shape)


def _check_square(where: str, matrix: jax.Array) -> None:
  if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
    raise ValueError(f"{where}: expected a (batch of) square matrices, got shape {matrix.shape}")


def _ridge(max_eigenvalue: jax.Array, eps, relative: bool) -> jax.Array:
  eps = jnp.asarray(eps, max_eigenvalue.dtype)
  return eps * max_eigenvalue if relative else jnp.broadcast_to(eps, max_eigenvalue.shape)


def inverse_pth_root(
    matrix: jax.Array,
    p: float,
    *,
    eps: float = 1e-6,
    relative: bool = True,
    method: RootMethod = "eigh",
    newton_iterations: int = 100,
    newton_tolerance: float = 1e-6,
) -> jax.Array:
  r"""The inverse p-th root :math:`(A + rI)^{-1/p}` of a symmetric PSD matrix, stably.

  With ``method="eigh"`` (the default):

  .. math::
     A = Q\,\mathrm{diag}(λ)\,Q^⊤, \quad
     A^{-1/p} ≈ Q\,\mathrm{diag}\big((\max(λ, 0) + r)^{-1/p}\big)\,Q^⊤

  with the ridge :math:`r = ε\,λ_{max}` (relative) or :math:`r = ε` (absolute);
  see the module docstring for every safeguard. ``method="newton"`` runs the
  coupled Newton iteration of Guo & Higham (2006) on :math:`A + rI` (only
  matrix products, no eigendecomposition; p must be a positive integer):

  .. math::
     z = \frac{1+p}{2\|A + rI\|_F},\; M_0 = z(A + rI),\; X_0 = z^{1/p} I,\;
     T_k = \frac{(p+1)I − M_k}{p},\; X_{k+1} = X_k T_k,\; M_{k+1} = T_k^p M_k,

  stopped when :math:`\max|M_k − I| <` ``newton_tolerance``, after
  ``newton_iterations`` iterations, or as soon as the error grows (the last
  good iterate is kept). λ_max for the relative ridge comes from 30 steps of
  power iteration.

  Args:
    matrix: a symmetric PSD matrix, or a batch of them (..., n, n).
    p: the root, > 0 (Shampoo uses 2k for a tensor of order k).
    eps: ε > 0, the ridge.
    relative: scale the ridge by the largest eigenvalue.
    method: ``"eigh"`` or ``"newton"``.
    newton_iterations: maximum number of Newton iterations.
    newton_tolerance: stop when every entry of :math:`M_k − I` is below this.

  Returns:
    :math:`(A + rI)^{-1/p}`, symmetric, in float32 (or the input's wider dtype);
    the identity for an all-zero matrix with a relative ridge.

  Example:
    >>> import jax.numpy as jnp
    >>> from optlab.optim._matrix_functions import inverse_pth_root
    >>> root = inverse_pth_root(jnp.diag(jnp.array([16.0, 1.0])), 4, eps=1e-12)
    >>> [round(float(x), 4) for x in jnp.diag(root)]
    [0.5, 1.0]

  References:
    V. Gupta, T. Koren, Y. Singer, "Shampoo: Preconditioned Stochastic Tensor
    Optimization", ICML 2018; C.-H. Guo, N. J. Higham, "A Schur–Newton Method for
    the Matrix p-th Root and its Inverse", SIAM J. Matrix Anal. Appl., 2006;
    R. Anil et al., "Scalable Second Order Optimization for Deep Learning",
    arXiv:2002.09018, 2020.
  """
  where = "inverse_pth_root"
  if method not in ROOT_METHODS:
    raise ValueError(f"{where}: method must be one of {ROOT_METHODS}, got {method!r}")
  if not p > 0:
    raise ValueError(f"{where}: p must be > 0, got {p!r}")
  _check_square(where, jnp.asarray(matrix))
  matrix = symmetrize(matrix)
  if method == "eigh":
    return _inverse_root_eigh(matrix, p=p, eps=eps, relative=relative)
  if int(p) != p:
    raise ValueError(f"{where}: the Newton iteration needs an integer p, got {p!r}")
  return _inverse_root_newton(matrix, p=int(p), eps=eps, relative=relative,
                              iterations=newton_iterations, tolerance=newton_tolerance)


@functools.partial(jax.jit, static_argnames=("p", "relative"))
def _inverse_root_eigh(matrix: jax.Array, p: float, eps, relative: bool) -> jax.Array:
  eigenvalues, vectors = _eigh(matrix)
  eigenvalues = jnp.maximum(eigenvalues, 0.0)
  max_eigenvalue = eigenvalues[..., -1]  # eigh sorts ascending
  ridge = _ridge(max_eigenvalue, eps, relative)
  degenerate = ridge <= 0  # an all-zero matrix under a relative ridge
  safe_ridge = jnp.where(degenerate, 1.0, ridge)
  scaled = jnp.power(eigenvalues + safe_ridge[..., None], -1.0 / p)
  root = jnp.einsum("...ij,...j,...kj->...ik", vectors, scaled, vectors, precision=HIGHEST)
  root = 0.5 * (root + jnp.swapaxes(root, -1, -2))
  return jnp.where(degenerate[..., None, None], _identity_like(matrix), root)


def _max_eigenvalue_power(matrix: jax.Array, iterations: int = 30) -> jax.Array:
  """λ_max of a PSD matrix by power iteration (a Rayleigh quotient, ≤ λ_max)."""
  n = matrix.shape[-1]
  # A fixed vector with no special symmetry, so it is not orthogonal to the top eigenvector.
  start = jnp.asarray(1.0 + np.arange(n) / (2.0 * n), matrix.dtype)
  vector = jnp.broadcast_to(start / jnp.linalg.norm(start), matrix.shape[:-1])

  def body(_, v):
    w = jnp.einsum("...ij,...j->...i", matrix, v, precision=HIGHEST)
    norm = jnp.linalg.norm(w, axis=-1, keepdims=True)
    return jnp.where(norm > 0, w / jnp.where(norm > 0, norm, 1.0), v)

  vector = jax.lax.fori_loop(0, iterations, body, vector)
  return jnp.maximum(jnp.einsum("...i,...ij,...j->...", vector, matrix, vector,
                                precision=HIGHEST), 0.0)


def _newton_single(matrix, p: int, eps, relative: bool, iterations: int, tolerance: float):
  n = matrix.shape[-1]
  identity = jnp.eye(n, dtype=matrix.dtype)
  ridge = _ridge(_max_eigenvalue_power(matrix), eps, relative)
  degenerate = ridge <= 0
  damped = matrix + jnp.where(degenerate, 1.0, ridge) * identity
  z = (1.0 + p) / (2.0 * jnp.linalg.norm(damped))
  m0 = z * damped
  h0 = jnp.power(z, 1.0 / p) * identity
  error0 = jnp.max(jnp.abs(m0 - identity))

  def cond(state):
    i, _, _, error, run = state
    return (i < iterations) & (error > tolerance) & run

  def body(state):
    i, m, h, error, _ = state
    t = ((p + 1.0) * identity - m) / p
    power = t
    for _ in range(p - 1):
      power = jnp.matmul(power, t, precision=HIGHEST)
    new_m = jnp.matmul(power, m, precision=HIGHEST)
    new_h = jnp.matmul(h, t, precision=HIGHEST)
    new_error = jnp.max(jnp.abs(new_m - identity))
    improving = (new_error < 1.2 * error) & jnp.isfinite(new_error)
    return (
        i + 1,
        jnp.where(improving, new_m, m),
        jnp.where(improving, new_h, h),
        jnp.where(improving, new_error, error),
        improving,
    )

  _, _, root, _, _ = jax.lax.while_loop(
      cond, body, (jnp.zeros([], jnp.int32), m0, h0, error0, jnp.asarray(True))
  )
  root = 0.5 * (root + root.T)
  return jnp.where(degenerate, identity, root)


@functools.partial(jax.jit, static_argnames=("p", "relative", "iterations", "tolerance"))
def _inverse_root_newton(matrix, p: int, eps, relative, iterations, tolerance) -> jax.Array:
  single = lambda m: _newton_single(m, p, eps, relative, iterations, tolerance)  # noqa: E731
  return jnp.vectorize(single, signature="(n,n)->(n,n)")(matrix)


def eigenbasis(matrix: jax.Array) -> jax.Array:
  """An orthonormal eigenbasis of a symmetric matrix, columns by decreasing eigenvalue.

  ``jnp.linalg.eigh`` in float32 (or wider) on the symmetrized matrix, columns
  reversed so the largest eigenvalue comes first (as the SOAP reference code
  does). Within a repeated eigenvalue (a rank-deficient statistic) the basis is
  any orthonormal one. A non-finite result is replaced by the identity.

  Args:
    matrix: a symmetric matrix, or a batch of them (..., n, n).

  Returns:
    Q with orthonormal columns, :math:`A ≈ Q\\,\\mathrm{diag}(λ_1 ≥ … ≥ λ_n)\\,Q^⊤`.
  """
  _check_square("eigenbasis", jnp.asarray(matrix))
  matrix = symmetrize(matrix)
  _, vectors = _eigh(matrix)
  vectors = jnp.flip(vectors, axis=-1)
  finite = jnp.all(jnp.isfinite(vectors), axis=(-2, -1), keepdims=True)
  return jnp.where(finite, vectors, _identity_like(matrix))


def refresh_eigenbasis(matrix: jax.Array, basis: jax.Array) -> tuple[jax.Array, jax.Array]:
  r"""One power-iteration step and a QR factorization from a previous eigenbasis.

  The eigenbasis update of SOAP (Vyas et al. 2024, Algorithm 4, and the
  reference code's ``get_orthogonal_matrix_QR``):

  .. math::
     \hat λ_i = q_i^⊤ A q_i, \quad π = \mathrm{argsort}(−\hat λ), \quad
     Q' R = A\,Q_{:, π} \;\;(\text{QR})

  The columns are first sorted by their estimated eigenvalue (largest first),
  so a caller that keeps quantities indexed by the basis (SOAP's second moment)
  must permute them by π too. Where the result is not finite, the previous
  basis and the identity permutation are returned.

  Args:
    matrix: the symmetric PSD statistic A, (..., n, n).
    basis: the previous orthonormal basis Q, same shape.

  Returns:
    ``(new_basis, permutation)``; the permutation has shape (..., n), int32.
  """
  _check_square("refresh_eigenbasis", jnp.asarray(matrix))
  matrix = symmetrize(matrix)
  basis = basis.astype(matrix.dtype)
  product = jnp.matmul(matrix, basis, precision=HIGHEST)
  estimates = jnp.einsum("...ij,...ij->...j", basis, product, precision=HIGHEST)
  order = jnp.argsort(-estimates, axis=-1).astype(jnp.int32)
  power = jnp.take_along_axis(product, order[..., None, :], axis=-1)
  new_basis, _ = _qr(power)
  finite = jnp.all(jnp.isfinite(new_basis), axis=(-2, -1))
  identity_order = jnp.broadcast_to(jnp.arange(matrix.shape[-1], dtype=jnp.int32), order.shape)
  return (
      jnp.where(finite[..., None, None], new_basis, basis),
      jnp.where(finite[..., None], order, identity_order),
  )
