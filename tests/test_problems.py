"""Tests of optlab.problems: known minimizers, spectra, gradients, noise and validation."""

import dataclasses
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import problems
from optlab.problems import (
  LeastSquares,
  NoisyProblem,
  Problem,
  Quadratic,
  beale,
  noisy,
  quadratic,
  quadratic_from_eigenvalues,
  rosenbrock,
  wilson_least_squares,
)

# name -> factory for every kind of problem; small so the whole module runs in seconds.
PROBLEMS = {
  "quadratic_linear": lambda: quadratic(dim=8, condition_number=50.0),
  "quadratic_geometric": lambda: quadratic(dim=8, condition_number=1e3, spectrum="geometric"),
  "quadratic_diagonal": lambda: quadratic(dim=8, condition_number=10.0, rotate=False),
  "quadratic_offset": lambda: quadratic(dim=8, mu=0.5, condition_number=4.0, optimal_value=3.5),
  "quadratic_dim1": lambda: quadratic(dim=1, condition_number=1.0),
  "quadratic_from_eigenvalues": lambda: quadratic_from_eigenvalues([3.0, 1.0, 2.0]),
  "rosenbrock": rosenbrock,
  "rosenbrock_a2": lambda: rosenbrock(a=2.0, b=10.0),
  "rosenbrock_dim5": lambda: rosenbrock(dim=5),
  "beale": beale,
  "wilson": lambda: wilson_least_squares(n=6),
}
ALL = pytest.mark.parametrize("make", PROBLEMS.values(), ids=PROBLEMS.keys())


def _points(problem: Problem, count: int = 3) -> list[jax.Array]:
  """The start, plus points near the minimizer at scale ~1."""
  rng = np.random.default_rng(42)
  offsets = 0.5 * rng.standard_normal((count, problem.dim)).astype(np.float32)
  return [problem.init] + [problem.minimizer + o for o in offsets]


# Generic properties of every problem.


@ALL
def test_value_at_minimizer_is_optimal_value(make):
  problem = make()
  assert isinstance(problem, Problem)
  value = float(problem.value(problem.minimizer))
  assert value == pytest.approx(problem.optimal_value, abs=1e-5)
  assert isinstance(problem.optimal_value, float)


@ALL
def test_grad_vanishes_at_minimizer(make):
  problem = make()
  grad = np.asarray(problem.grad(problem.minimizer))
  np.testing.assert_allclose(grad, 0.0, atol=1e-4)
  _, grad2 = problem.value_and_grad(problem.minimizer)
  np.testing.assert_allclose(grad2, 0.0, atol=1e-4)


@ALL
def test_shapes_and_dtypes(make):
  problem = make()
  chex.assert_shape([problem.init, problem.minimizer], (problem.dim,))
  chex.assert_type([problem.init, problem.minimizer], jnp.float32)
  chex.assert_shape(problem.value(problem.init), ())
  chex.assert_shape(problem.grad(problem.init), (problem.dim,))
  assert float(problem.distance_to_minimizer(problem.minimizer)) == 0.0
  assert problem.name in problems.names()


@ALL
def test_grad_matches_autodiff(make):
  problem = make()
  for x in _points(problem):
    expected = jax.grad(problem.value)(x)
    chex.assert_trees_all_close(problem.grad(x), expected, rtol=1e-5, atol=1e-5)
    value, grad = problem.value_and_grad(x)
    chex.assert_trees_all_close(value, problem.value(x), rtol=1e-6)
    chex.assert_trees_all_close(grad, expected, rtol=1e-5, atol=1e-5)


@ALL
def test_grad_matches_finite_differences(make):
  problem = make()
  h = 1e-3
  for i, x in enumerate(_points(problem)):
    direction = np.random.default_rng(i).standard_normal(x.shape)
    direction = jnp.asarray(direction / np.linalg.norm(direction), x.dtype)
    central = (problem.value(x + h * direction) - problem.value(x - h * direction)) / (2 * h)
    analytic = jnp.dot(problem.grad(x), direction)
    scale = 1.0 + float(jnp.linalg.norm(problem.grad(x)))
    assert abs(float(central - analytic)) <= 1e-2 * scale


@ALL
def test_jit_and_vmap_give_the_same_numbers(make):
  problem = make()
  xs = jnp.stack(_points(problem))

  def evaluate(x):
    value, grad = problem.value_and_grad(x)
    return problem.value(x), problem.grad(x), value, grad, problem.distance_to_minimizer(x)

  batched = jax.jit(jax.vmap(evaluate))(xs)
  for i, x in enumerate(xs):
    eager = evaluate(x)
    chex.assert_trees_all_close(
      jax.tree.map(lambda leaf, i=i: leaf[i], batched), eager, rtol=1e-6, atol=1e-6
    )
  expected = np.linalg.norm(np.asarray(xs) - np.asarray(problem.minimizer), axis=1)
  np.testing.assert_allclose(batched[-1], expected, rtol=1e-5)


# Quadratics.


@pytest.mark.parametrize("rotate", [True, False])
@pytest.mark.parametrize("spectrum", ["linear", "geometric"])
@pytest.mark.parametrize(("dim", "kappa", "mu"), [(2, 10.0, 1.0), (16, 1e3, 0.1), (30, 1.0, 2.0)])
def test_quadratic_spectrum(dim, kappa, mu, spectrum, rotate):
  q = quadratic(dim, kappa, mu=mu, spectrum=spectrum, rotate=rotate, key=jax.random.key(dim))
  assert isinstance(q, Quadratic)
  hessian = np.asarray(q.hessian, dtype=np.float64)
  chex.assert_shape(q.hessian, (dim, dim))
  np.testing.assert_array_equal(hessian, hessian.T)
  if spectrum == "linear":
    expected = np.linspace(mu, mu * kappa, dim)
  else:
    expected = np.geomspace(mu, mu * kappa, dim)
  np.testing.assert_allclose(q.eigenvalues, expected, rtol=1e-6)
  np.testing.assert_allclose(
    np.linalg.eigvalsh(hessian), expected, rtol=1e-5, atol=1e-5 * mu * kappa
  )
  assert np.all(np.diff(np.asarray(q.eigenvalues)) >= 0)
  assert q.mu == mu
  assert q.L == pytest.approx(mu * kappa)
  assert q.condition_number == pytest.approx(kappa)
  if not rotate:
    np.testing.assert_array_equal(hessian, np.diag(expected.astype(np.float32)))


def test_quadratic_init_excites_every_eigendirection():
  q = quadratic(dim=20, condition_number=100.0)
  offset = np.asarray(q.init - q.minimizer, dtype=np.float64)
  assert np.linalg.norm(offset) == pytest.approx(math.sqrt(20), rel=1e-5)
  _, vectors = np.linalg.eigh(np.asarray(q.hessian, dtype=np.float64))
  assert np.min(np.abs(vectors.T @ offset)) > 1e-4


def test_quadratic_value_and_grad_formula():
  q = quadratic(dim=6, condition_number=20.0, optimal_value=-2.0, key=jax.random.key(3))
  x = q.init
  d = np.asarray(x - q.minimizer, np.float64)
  a = np.asarray(q.hessian, np.float64)
  assert float(q.value(x)) == pytest.approx(0.5 * d @ a @ d - 2.0, rel=1e-5)
  np.testing.assert_allclose(q.grad(x), a @ d, rtol=1e-5, atol=1e-5)
  # Exactly zero at x*, with no cancellation against a linear term.
  np.testing.assert_array_equal(q.grad(q.minimizer), np.zeros(6, np.float32))


def test_quadratic_minimizer_and_key():
  zeros = quadratic(dim=4, minimizer=jnp.zeros(4))
  np.testing.assert_array_equal(zeros.minimizer, np.zeros(4))
  a = quadratic(dim=4, key=jax.random.key(7))
  b = quadratic(dim=4, key=jax.random.key(7))
  c = quadratic(dim=4, key=jax.random.key(8))
  chex.assert_trees_all_equal((a.hessian, a.minimizer, a.init), (b.hessian, b.minimizer, b.init))
  assert not np.allclose(a.minimizer, c.minimizer)
  assert quadratic(dim=3, dtype=jnp.bfloat16).hessian.dtype == jnp.bfloat16
  # The key fixes x* and the start whether or not the basis is rotated.
  d = quadratic(dim=4, key=jax.random.key(7), rotate=False)
  chex.assert_trees_all_equal((a.minimizer, a.init), (d.minimizer, d.init))


def test_replace_keeps_problems_consistent():
  q = dataclasses.replace(quadratic(dim=3), optimal_value=2.0, minimizer=jnp.ones(3))
  assert float(q.value(jnp.ones(3))) == 2.0
  np.testing.assert_array_equal(q.grad(jnp.ones(3)), np.zeros(3))
  ls = wilson_least_squares(n=3)
  ls2 = dataclasses.replace(ls, labels=-ls.labels)
  assert float(ls2.value(-ls.minimizer)) == pytest.approx(0.0, abs=1e-10)
  hash(q)  # identity hash: usable as a static argument or a dict key
  assert q == q and q != dataclasses.replace(q)


def test_quadratic_from_eigenvalues_sorts():
  q = quadratic_from_eigenvalues(np.array([5.0, 0.5, 2.0]), rotate=False)
  np.testing.assert_array_equal(q.eigenvalues, [0.5, 2.0, 5.0])
  np.testing.assert_array_equal(np.diag(np.asarray(q.hessian)), [0.5, 2.0, 5.0])
  assert (q.mu, q.L, q.condition_number) == (0.5, 5.0, 10.0)


# Rosenbrock and Beale.


def test_rosenbrock_and_beale_exact_minimizers():
  r = rosenbrock()
  np.testing.assert_array_equal(r.minimizer, [1.0, 1.0])
  np.testing.assert_array_equal(r.init, np.array([-1.2, 1.0], np.float32))
  assert float(r.value(r.minimizer)) == 0.0
  np.testing.assert_array_equal(r.grad(r.minimizer), [0.0, 0.0])
  assert float(r.value(r.init)) == pytest.approx(24.2, rel=1e-6)
  assert r.bounds == ((-2.0, 2.0), (-1.0, 3.0))

  r2 = rosenbrock(a=2.0)
  np.testing.assert_array_equal(r2.minimizer, [2.0, 4.0])
  assert float(r2.value(r2.minimizer)) == 0.0
  (x0, x1), (y0, y1) = r2.bounds
  assert x0 <= 2.0 <= x1 and y0 <= 4.0 <= y1

  r0 = rosenbrock(a=0.0, dim=3)
  np.testing.assert_array_equal(r0.minimizer, np.zeros(3))
  assert float(r0.value(r0.minimizer)) == 0.0

  r5 = rosenbrock(dim=5)
  np.testing.assert_array_equal(r5.minimizer, np.ones(5))
  np.testing.assert_array_equal(r5.init, np.array([-1.2, 1.0, -1.2, 1.0, -1.2], np.float32))
  assert float(r5.value(r5.minimizer)) == 0.0
  assert r5.bounds is None

  b = beale()
  np.testing.assert_array_equal(b.minimizer, [3.0, 0.5])
  np.testing.assert_array_equal(b.init, [1.0, 1.0])
  assert float(b.value(b.minimizer)) == 0.0
  np.testing.assert_array_equal(b.grad(b.minimizer), [0.0, 0.0])
  assert float(b.value(b.init)) == pytest.approx(14.203125)
  assert b.bounds == ((-4.5, 4.5), (-4.5, 4.5))


def test_rosenbrock_value_matches_scipy_form():
  r = rosenbrock(dim=4)
  x = np.array([0.3, -0.7, 1.1, 0.2])
  expected = np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
  assert float(r.value(jnp.asarray(x, jnp.float32))) == pytest.approx(expected, rel=1e-5)


# Noisy gradients.


@pytest.mark.parametrize("noise", ["additive", "multiplicative"])
def test_noisy_gradients_are_unbiased_with_requested_variance(noise):
  sigma = 0.5
  base = quadratic(dim=4, condition_number=10.0)
  p = noisy(base, sigma, noise=noise)
  assert isinstance(p, NoisyProblem)
  x = p.init
  keys = jax.random.split(jax.random.key(0), 20_000)
  samples = np.asarray(jax.jit(jax.vmap(p.stochastic_grad, in_axes=(None, 0)))(x, keys))
  grad = np.asarray(base.grad(x))
  std = sigma * (np.ones_like(grad) if noise == "additive" else np.abs(grad))
  np.testing.assert_allclose(p.grad_variance(x), std**2, rtol=1e-5)
  standard_error = std / math.sqrt(len(keys))
  assert np.all(np.abs(samples.mean(axis=0) - grad) <= 5 * standard_error)
  np.testing.assert_allclose(samples.var(axis=0), std**2, rtol=0.05)
  value, sample = p.stochastic_value_and_grad(x, keys[0])
  assert float(value) == pytest.approx(float(base.value(x)))
  chex.assert_trees_all_close(sample, samples[0], rtol=1e-6)


@pytest.mark.parametrize("noise", ["additive", "multiplicative"])
def test_zero_noise_gives_exact_gradient(noise):
  base = rosenbrock()
  p = noisy(base, 0.0, noise=noise)
  chex.assert_trees_all_equal(p.stochastic_grad(p.init, jax.random.key(1)), base.grad(base.init))


def test_noisy_pass_throughs():
  base = quadratic(dim=3, condition_number=7.0)
  p = noisy(base, 0.1)
  assert p.value is base.value
  assert p.minimizer is base.minimizer and p.init is base.init
  assert (p.optimal_value, p.dim, p.name) == (0.0, 3, "quadratic")
  assert (p.mu, p.L, p.condition_number) == (1.0, 7.0, 7.0)
  chex.assert_trees_all_equal(p.grad(p.init), base.grad(base.init))
  with pytest.raises(AttributeError, match="features"):
    p.features
  assert noisy(beale(), 1.0).bounds == beale().bounds


# The Wilson et al. (2017) construction.


def test_wilson_construction():
  n = 50
  ls = wilson_least_squares(n=n, p=0.7)
  assert isinstance(ls, LeastSquares)
  d = 3 + 5 * n
  chex.assert_shape(ls.features, (n, d))
  chex.assert_shape([ls.labels], (n,))
  assert ls.dim == d
  x, y = np.asarray(ls.features), np.asarray(ls.labels)
  assert set(np.unique(y)) == {-1.0, 1.0}
  np.testing.assert_array_equal(x[:, 0], y)
  np.testing.assert_array_equal(x[:, 1:3], 1.0)
  for i in range(n):
    block = x[i, 3 + 5 * i : 8 + 5 * i]
    np.testing.assert_array_equal(block, [1, 0, 0, 0, 0] if y[i] > 0 else [1, 1, 1, 1, 1])
    assert x[i, 3:].sum() == block.sum()  # no unique feature outside its own block
  np.testing.assert_array_equal(ls.init, np.zeros(d))
  assert ls.optimal_value == 0.0


def test_wilson_min_norm_solution_interpolates_and_generalizes():
  ls = wilson_least_squares(n=50, p=0.7)
  x, y = np.asarray(ls.features, np.float64), np.asarray(ls.labels, np.float64)
  w = ls.minimizer
  np.testing.assert_allclose(ls.features @ w, ls.labels, atol=1e-5)
  np.testing.assert_allclose(w, np.linalg.pinv(x) @ y, atol=1e-5)
  x_test, y_test = ls.test_set(5000, jax.random.key(1))
  chex.assert_shape(x_test, (5000, ls.dim))
  np.testing.assert_array_equal(x_test[:, 0], y_test)
  np.testing.assert_array_equal(x_test[:, 1:3], 1.0)
  np.testing.assert_array_equal(x_test[:, 3:], 0.0)
  assert float(ls.accuracy(w, x_test, y_test)) == 1.0
  assert float(ls.accuracy(w, ls.features, ls.labels)) == 1.0
  # The constant predictor sign(feature 2) = +1 is right exactly on the positive points.
  constant = jnp.zeros(ls.dim).at[1].set(1.0)
  accuracy = float(ls.accuracy(constant, x_test, y_test))
  assert accuracy == pytest.approx(float(jnp.mean(y_test == 1.0)))
  assert accuracy == pytest.approx(0.7, abs=0.03)


def test_wilson_gradient_descent_from_zero_reaches_min_norm_solution():
  ls = wilson_least_squares(n=8)
  step = 1.0 / float(np.linalg.eigvalsh(np.asarray(ls.features @ ls.features.T)).max())
  w = jax.lax.fori_loop(0, 3000, lambda _, w: w - step * ls.grad(w), ls.init)
  assert float(ls.distance_to_minimizer(w)) < 1e-3


# Registry.


def test_registry():
  assert problems.names() == ("beale", "quadratic", "rosenbrock", "wilson_least_squares")
  for name in problems.names():
    assert problems.get(name).name == name
  assert problems.get("quadratic", dim=3, condition_number=2.0).L == 2.0
  with pytest.raises(ValueError, match="Did you mean 'rosenbrock'"):
    problems.get("rosenbrok")
  with pytest.raises(ValueError, match="Known: beale, quadratic"):
    problems.get("sphere")


# Validation: each bad argument is named in the message.


@pytest.mark.parametrize(
  ("build", "match"),
  [
    (lambda: quadratic(dim=0), "dim must be an integer >= 1, got 0"),
    (lambda: quadratic(dim=2.5), "dim"),
    (lambda: quadratic(condition_number=0.5), "condition_number must be a finite number >= 1"),
    (lambda: quadratic(condition_number=math.inf), "condition_number.*got inf"),
    (lambda: quadratic(condition_number=math.nan), "condition_number"),
    (lambda: quadratic(dim=1, condition_number=10.0), "condition_number must be 1 when dim=1"),
    (lambda: quadratic(mu=0.0), "mu must be a finite number > 0"),
    (lambda: quadratic(mu=-1.0), "mu"),
    (lambda: quadratic(spectrum="cubic"), "spectrum must be one of 'linear', 'geometric'"),
    (lambda: quadratic(dim=3, minimizer=jnp.zeros(4)), r"minimizer must have shape \(3,\)"),
    (lambda: quadratic(dtype=jnp.int32), "dtype must be a floating dtype"),
    (lambda: quadratic(optimal_value=math.nan), "optimal_value"),
    (lambda: quadratic_from_eigenvalues([1.0, 0.0]), "eigenvalues must all be finite and > 0"),
    (lambda: quadratic_from_eigenvalues(np.ones((2, 2))), "eigenvalues must be a non-empty 1-D"),
    (lambda: quadratic_from_eigenvalues([]), "eigenvalues"),
    (lambda: rosenbrock(dim=1), "dim must be an integer >= 2, got 1"),
    (lambda: rosenbrock(b=0.0), "b must be a finite number > 0"),
    (lambda: rosenbrock(a=2.0, dim=3), "a must be 0 or 1 when dim > 2"),
    (lambda: noisy(beale(), -0.1), "noise_scale must be a finite number >= 0, got -0.1"),
    (lambda: noisy(beale(), 0.1, noise="laplace"), "noise must be one of 'additive'"),
    (lambda: wilson_least_squares(n=0), "n must be an integer >= 1, got 0"),
    (lambda: wilson_least_squares(p=1.0), r"p must be a finite number in \(0, 1\), got 1.0"),
    (lambda: wilson_least_squares(p=0.0), "p must be"),
    (lambda: wilson_least_squares(n=2).test_set(0, jax.random.key(0)), "n_test"),
  ],
)
def test_invalid_arguments_raise(build, match):
  with pytest.raises(ValueError, match=match):
    build()
