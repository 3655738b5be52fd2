"""Hessian diagnostics: hvp, sharpness, top eigenpairs against dense Hessians."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.flatten_util import ravel_pytree

from optlab.diagnostics import hessian
from optlab.models import MLP

SPECTRUM = np.array([10.0, 7.0, 5.0, 3.0, 1.0, 0.5, 0.0, -0.2, -2.0])


def quadratic(spectrum, seed=0):
  """A loss ½ θᵀ H θ + bᵀ θ on a tree {"a": (4,), "b": (d-4,)} with H = Q diag(spectrum) Qᵀ."""
  rng = np.random.default_rng(seed)
  d = len(spectrum)
  q, _ = np.linalg.qr(rng.normal(size=(d, d)))
  h = jnp.asarray(q @ np.diag(spectrum) @ q.T, jnp.float32)
  b = jnp.asarray(rng.normal(size=d), jnp.float32)
  params = {"a": jnp.asarray(rng.normal(size=4), jnp.float32),
            "b": jnp.asarray(rng.normal(size=d - 4), jnp.float32)}

  def loss(p):
    theta = ravel_pytree(p)[0]
    return 0.5 * theta @ h @ theta + b @ theta

  return loss, params, h


def small_mlp(seed=0):
  """A tanh MLP 6 → 16 → 16 → 3 (435 parameters) with cross-entropy on 64 random points."""
  rng = np.random.default_rng(seed)  # NumPy: no per-shape compilations of eager JAX ops

  def normal(*shape, scale=1.0):
    return jnp.asarray(scale * rng.normal(size=shape), jnp.float32)

  params = {
      "l0": {"kernel": normal(6, 16, scale=0.6), "bias": jnp.zeros(16)},
      "l1": {"kernel": normal(16, 16, scale=0.3), "bias": jnp.zeros(16)},
      "head": {"kernel": normal(16, 3, scale=0.3), "bias": jnp.zeros(3)},
  }
  x = normal(64, 6)
  y = jnp.asarray(rng.integers(0, 3, size=64))

  def loss(p):
    h = jnp.tanh(x @ p["l0"]["kernel"] + p["l0"]["bias"][None])
    h = jnp.tanh(h @ p["l1"]["kernel"] + p["l1"]["bias"][None])
    logits = h @ p["head"]["kernel"] + p["head"]["bias"][None]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  return loss, params


def assert_relative(actual, expected, rtol=1e-3):
  actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
  np.testing.assert_array_less(np.abs(actual - expected), rtol * np.abs(expected) + 1e-12)


def test_hvp_equals_dense_hessian_times_vector_on_an_nnx_model(key):
  model = MLP(3, [5], 2, rngs=nnx.Rngs(0))
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)
  x = jax.random.normal(key, (16, 3))
  y = jnp.arange(16) % 2

  def loss(p):
    logits = nnx.merge(graphdef, p, rest, copy=True)(x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  flat, unravel = ravel_pytree(params)
  v = jax.random.normal(jax.random.fold_in(key, 1), flat.shape)
  product = jax.jit(lambda p, u: hessian.hvp(loss, p, u))(params, unravel(v))
  dense = hessian.dense_hessian(loss, params)
  assert dense.shape == (flat.size, flat.size)
  np.testing.assert_allclose(ravel_pytree(product)[0], dense @ v, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(dense, dense.T, atol=1e-5)


def test_quadratic_dense_hessian_and_sharpness():
  loss, params, h = quadratic(SPECTRUM)
  np.testing.assert_allclose(hessian.dense_hessian(loss, params), h, atol=1e-5)

  value, vector = hessian.sharpness(loss, params, num_iterations=100)
  assert_relative(value, SPECTRUM[0])
  hv = jax.jit(lambda p, v: hessian.hvp(loss, p, v))(params, vector)  # one program, not op-by-op
  np.testing.assert_allclose(ravel_pytree(hv)[0], SPECTRUM[0] * ravel_pytree(vector)[0],
                             atol=1e-3)


@pytest.mark.parametrize(("method", "iterations"), [("lanczos", 30), ("power", 100)])
def test_quadratic_top_eigenpairs(method, iterations):
  loss, params, h = quadratic(SPECTRUM)
  eig = hessian.top_eigenvalues(loss, params, k=3, method=method, num_iterations=iterations)
  assert_relative(eig.eigenvalues, SPECTRUM[:3])
  vectors = jax.vmap(lambda t: ravel_pytree(t)[0])(eig.eigenvectors)
  assert vectors.shape == (3, len(SPECTRUM))
  np.testing.assert_allclose(vectors @ vectors.T, np.eye(3), atol=1e-4)
  np.testing.assert_allclose(vectors @ h @ vectors.T, np.diag(SPECTRUM[:3]), atol=2e-3)


def test_sharpness_is_the_largest_algebraic_eigenvalue_when_a_negative_one_dominates():
  spectrum = np.array([3.0, 1.0, 0.5, 0.0, -1.0, -10.0])
  loss, params, _ = quadratic(spectrum, seed=1)
  value, _ = hessian.sharpness(loss, params, num_iterations=100)
  assert_relative(value, 3.0)
  # After deflating 3, the shifted run converges like (10.5/11)^t: slow, hence 300.
  eig = hessian.top_eigenvalues(loss, params, k=2, method="power", num_iterations=300)
  assert_relative(eig.eigenvalues, spectrum[:2])


def test_lanczos_is_exact_at_full_dimension_with_a_low_rank_hessian():
  spectrum = np.array([4.0, 2.0, 0.0, 0.0, 0.0, 0.0])  # breakdown after two steps
  loss, params, _ = quadratic(spectrum, seed=2)
  eig = hessian.top_eigenvalues(loss, params, k=3, num_iterations=50)  # capped at d = 6
  np.testing.assert_allclose(eig.eigenvalues, [4.0, 2.0, 0.0], atol=1e-4)


@pytest.fixture(scope="module")
def mlp_spectrum():
  """The small MLP's loss, parameters and exact eigenvalues (descending) of its dense Hessian."""
  loss, params = small_mlp()
  dense = np.asarray(hessian.dense_hessian(loss, params), np.float64)
  assert dense.shape == (435, 435)
  return loss, params, np.linalg.eigvalsh(0.5 * (dense + dense.T))[::-1]


def test_small_mlp_sharpness_matches_the_exact_top_eigenvalue(mlp_spectrum):
  loss, params, exact = mlp_spectrum
  value, _ = hessian.sharpness(loss, params, num_iterations=100)
  assert_relative(value, exact[0])


def test_small_mlp_lanczos_matches_exact_top_eigenvalues(mlp_spectrum):
  loss, params, exact = mlp_spectrum
  lanczos = hessian.top_eigenvalues(loss, params, k=3, method="lanczos", num_iterations=40)
  assert_relative(lanczos.eigenvalues, exact[:3])


def test_small_mlp_deflated_power_matches_exact_top_eigenvalues(mlp_spectrum):
  loss, params, exact = mlp_spectrum
  power = hessian.top_eigenvalues(loss, params, k=3, method="power", num_iterations=150)
  assert_relative(power.eigenvalues, exact[:3])


def test_warm_start_tracks_sharpness_with_few_iterations():
  loss, params = small_mlp(seed=3)
  estimate = jax.jit(lambda p, v: hessian.sharpness(loss, p, num_iterations=5, initial=v))
  random = small_mlp(seed=4)[1]
  random = {**random, "l0": {**random["l0"], "bias": jnp.ones(16)}}
  vector = random
  for _ in range(20):  # 100 iterations in all: converged at params
    _, vector = estimate(params, vector)
  moved = jax.jit(lambda p: jax.tree.map(lambda w, g: w - 0.05 * g, p, jax.grad(loss)(p)))(params)
  exact = random
  for _ in range(20):
    value, exact = estimate(moved, exact)
  warm, _ = estimate(moved, vector)
  cold, _ = estimate(moved, random)
  assert abs(float(warm) - float(value)) <= 1e-3 * abs(float(value))
  assert abs(float(warm) - float(value)) < abs(float(cold) - float(value))
  assert estimate._cache_size() == 1  # one program for every call


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 0}, ValueError, "k: must be ≥ 1"),
        ({"k": 10}, ValueError, "k: asked for 10"),
        ({"k": 2.0}, TypeError, "k: expected a Python int"),
        ({"num_iterations": 0}, ValueError, "num_iterations: must be ≥ 1"),
        ({"k": 3, "num_iterations": 2}, ValueError, "Lanczos needs at least k = 3"),
        ({"method": "arnoldi"}, ValueError, "method: expected 'lanczos' or 'power'"),
    ],
)
def test_top_eigenvalues_rejects_bad_arguments(kwargs, error, match):
  loss, params, _ = quadratic(SPECTRUM)
  with pytest.raises(error, match=match):
    hessian.top_eigenvalues(loss, params, **kwargs)


def test_mismatched_trees_and_bad_params_raise():
  loss, params, _ = quadratic(SPECTRUM)
  with pytest.raises(ValueError, match="vector: its tree structure"):
    hessian.hvp(loss, params, {"a": params["a"]})
  with pytest.raises(ValueError, match="leaf 1 has shape"):
    hessian.hvp(loss, params, {"a": params["a"], "b": jnp.ones(3)})
  with pytest.raises(ValueError, match="initial: its tree structure"):
    hessian.sharpness(loss, params, initial=[params["a"], params["b"]])
  with pytest.raises(ValueError, match="num_iterations: must be ≥ 1"):
    hessian.sharpness(loss, params, num_iterations=0)
  with pytest.raises(TypeError, match="dtype int32"):
    hessian.sharpness(lambda p: jnp.sum(p), jnp.arange(3))
