"""Gradient noise scale and critical batch size."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab.diagnostics import noise

D, N, SIGMA = 4, 16384, 1.0
W_STAR = jnp.array([1.0, -2.0, 0.5, 0.0])
DELTA = jnp.array([0.5, 0.5, -0.5, 0.5])  # |δ|² = 1


def squared_error(w, xb, yb):
  return 0.5 * jnp.mean((xb @ w - yb) ** 2)


@pytest.fixture(scope="module")
def regression():
  """y = x·w* + ε with x ~ N(0, I), ε ~ N(0, σ²), measured at w = w* + δ.

  The per-example gradient g = x (xᵀδ − ε) has G = δ and (Gaussian fourth moments)
  Σ = δδᵀ + (|δ|² + σ²) I, so tr Σ = (d + 1)|δ|² + d σ² and B_simple = tr Σ / |δ|².
  """
  keys = jax.random.split(jax.random.key(0), 2)
  x = jax.random.normal(keys[0], (N, D))
  y = x @ W_STAR + SIGMA * jax.random.normal(keys[1], (N,))
  norm_sq = float(jnp.sum(DELTA**2))
  trace = (D + 1) * norm_sq + D * SIGMA**2
  exact = noise.NoiseScale(simple=trace / norm_sq, trace_covariance=trace, gradient_norm_sq=norm_sq)
  per_example = noise.per_example_noise_scale(squared_error, W_STAR + DELTA, x, y)
  return x, y, exact, per_example


def test_per_example_noise_scale_matches_the_analytic_covariance(regression):
  _, _, exact, per_example = regression
  np.testing.assert_allclose(np.asarray(per_example), np.asarray(exact), rtol=0.1)


def test_two_batch_estimator_agrees_with_per_example_and_analytic(regression, key):
  x, y, exact, per_example = regression
  estimate = noise.gradient_noise_scale(squared_error, W_STAR + DELTA, x, y, small_batch=8,
                                        big_batch=512, num_estimates=64, key=key)
  np.testing.assert_allclose(np.asarray(estimate), np.asarray(per_example), rtol=0.1)
  np.testing.assert_allclose(np.asarray(estimate), np.asarray(exact), rtol=0.15)


def test_two_batch_estimator_is_unbiased_for_the_dataset_on_tiny_data():
  # n = 8: the finite-population correction matters (without it, tr Σ is off by ~30%).
  x = jax.random.normal(jax.random.key(1), (8, 3))
  y = jax.random.normal(jax.random.key(2), (8,))
  w = jnp.ones(3)
  exact = noise.per_example_noise_scale(squared_error, w, x, y, chunk_size=3)  # padded chunks
  g = jax.vmap(lambda xi, yi: xi * (xi @ w - yi))(x, y)
  mean = g.mean(axis=0)
  np.testing.assert_allclose(exact.gradient_norm_sq, mean @ mean, rtol=1e-5)
  trace = jnp.mean(jnp.sum((g - mean[None]) ** 2, axis=1))
  np.testing.assert_allclose(exact.trace_covariance, trace, rtol=1e-5)
  estimate = noise.gradient_noise_scale(squared_error, w, x, y, small_batch=2, big_batch=4,
                                        num_estimates=4000, key=jax.random.key(3))
  np.testing.assert_allclose(estimate.trace_covariance, exact.trace_covariance, rtol=0.05)
  np.testing.assert_allclose(estimate.gradient_norm_sq, exact.gradient_norm_sq, rtol=0.05)


def test_fit_critical_batch_size_recovers_synthetic_parameters():
  s_min, b_crit = 250.0, 96.0
  batch_sizes = [8, 16, 32, 64, 128, 256, 512]
  steps = [s_min * (1 + b_crit / b) for b in batch_sizes]
  for relative in (False, True):
    fit = noise.fit_critical_batch_size(batch_sizes, steps, relative=relative)
    np.testing.assert_allclose([fit.s_min, fit.b_crit, fit.e_min],
                               [s_min, b_crit, s_min * b_crit], rtol=1e-9)
  # The fitted curve satisfies (S/S_min − 1)(E/E_min − 1) = 1 at every B.
  for b, s in zip(batch_sizes, steps, strict=True):
    np.testing.assert_allclose((s / fit.s_min - 1) * (s * b / fit.e_min - 1), 1.0, rtol=1e-9)


@pytest.mark.parametrize(
    ("batch_sizes", "steps", "match"),
    [
        ([32], [100.0], "at least 2 points"),
        ([32, 64], [100.0], "different lengths"),
        ([32, 0], [100.0, 50.0], "batch_sizes: every value must be positive"),
        ([32, 64], [100.0, -5.0], "steps: every value must be positive"),
        ([32, 64], [100.0, float("nan")], "steps: every value must be positive"),
        ([32, 32], [100.0, 90.0], "two different batch sizes"),
        ([32, 64], [100.0, 200.0], "S_min = .*E_min = "),
    ],
)
def test_fit_critical_batch_size_rejects_bad_input(batch_sizes, steps, match):
  with pytest.raises(ValueError, match=match):
    noise.fit_critical_batch_size(batch_sizes, steps)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"small_batch": 64, "big_batch": 64}, ValueError, r"small_batch \(64\) must be smaller"),
        ({"small_batch": 8, "big_batch": 1000}, ValueError, "big_batch: 1000 is larger than"),
        ({"small_batch": 0, "big_batch": 8}, ValueError, "small_batch: must be ≥ 1"),
        ({"small_batch": 2.0, "big_batch": 8}, TypeError, "small_batch: expected an int"),
        ({"small_batch": 2, "big_batch": 8, "num_estimates": 0}, ValueError, "num_estimates"),
    ],
)
def test_gradient_noise_scale_rejects_bad_arguments(kwargs, error, match, key):
  x, y = jnp.ones((100, 2)), jnp.ones(100)
  with pytest.raises(error, match=match):
    noise.gradient_noise_scale(squared_error, jnp.zeros(2), x, y, key=key, **kwargs)


def test_noise_scale_rejects_mismatched_data(key):
  with pytest.raises(ValueError, match="different numbers of examples"):
    noise.gradient_noise_scale(squared_error, jnp.zeros(2), jnp.ones((10, 2)), jnp.ones(9),
                               small_batch=2, big_batch=4, key=key)
  with pytest.raises(ValueError, match="at least 2 examples"):
    noise.per_example_noise_scale(squared_error, jnp.zeros(2), jnp.ones((1, 2)), jnp.ones(1))
