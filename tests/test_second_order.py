"""Newton's method and L-BFGS as optax transforms: the textbook iteration by hand, one exact
step on a quadratic, indefinite Hessians, the line search, and optax.lbfgs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import optim, problems
from optlab.optim.newton import NewtonState, lbfgs, newton


def rosenbrock_by_hand(z):
  x, y = z
  g = np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])
  h = np.array([[2 - 400 * (y - x**2) + 800 * x**2, -400 * x], [-400 * x, 200.0]])
  return g, h


def beale_by_hand(z):
  x, y = z
  g, h = np.zeros(2), np.zeros((2, 2))
  for i, c in enumerate((1.5, 2.25, 2.625), start=1):
    t = c - x + x * y**i
    dt = np.array([y**i - 1, i * x * y ** (i - 1)])
    d2t = np.array([[0.0, i * y ** (i - 1)], [i * y ** (i - 1), i * (i - 1) * x * y ** (i - 2)]])
    g += 2 * t * dt
    h += 2 * (np.outer(dt, dt) + t * d2t)
  return g, h


def newton_path(tx, problem, start, steps):
  """The iterates of `tx` on `problem` (jitted, float64 under enable_x64)."""
  x = jnp.asarray(start)
  state = tx.init(x)

  @jax.jit
  def step(x, state):
    updates, state = tx.update(problem.grad(x), state, x, value_fn=problem.value)
    return x + updates, state

  path = []
  for _ in range(steps):
    x, state = step(x, state)
    path.append(np.asarray(x))
  return np.stack(path), state


@pytest.mark.parametrize(("name", "by_hand", "start"), [
    ("rosenbrock", rosenbrock_by_hand, (-1.2, 1.0)), ("beale", beale_by_hand, (2.0, 0.2))])
def test_pure_newton_is_the_textbook_iteration(name, by_hand, start):
  z = np.array(start)
  expected = []
  for _ in range(6):
    g, h = by_hand(z)
    z = z - np.linalg.solve(h, g)  # x ← x − H⁻¹ ∇f(x)
    expected.append(z)
  with jax.enable_x64(True):
    for indefinite in ("none", "shift"):  # H is positive definite along these paths
      path, _ = newton_path(newton(max_backtracking_steps=0, indefinite=indefinite),
                            problems.get(name), start, 6)
      np.testing.assert_allclose(path, np.stack(expected), rtol=1e-9, atol=1e-12)


def one_step(tx, params, value_fn):
  """One jitted update of `tx` from `params` (fresh state)."""

  @jax.jit
  def update(params):
    return tx.update(jax.grad(value_fn)(params), tx.init(params), params, value_fn=value_fn)

  return update(params)


def quadratic(seed=0):
  """½ θᵀAθ − bᵀθ over a tree {matrix (3, 2), vector (4,)} flattened to 10 numbers."""
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(10, 10))
  a = q @ q.T + 0.5 * np.eye(10)
  b = rng.normal(size=10)

  def value(params):
    flat = jnp.concatenate([params["m"].ravel(), params["v"]])
    return 0.5 * flat @ jnp.asarray(a, flat.dtype) @ flat - jnp.asarray(b, flat.dtype) @ flat

  theta0 = {"m": rng.normal(size=(3, 2)), "v": rng.normal(size=4)}
  return value, theta0, np.linalg.solve(a, b)


@pytest.mark.parametrize(("x64", "rtol"), [(True, 1e-10), (False, 2e-4)])
def test_one_step_is_exact_on_a_quadratic(x64, rtol):
  value, theta0, minimizer = quadratic()
  with jax.enable_x64(x64):
    dtype = jnp.float64 if x64 else jnp.float32
    params = jax.tree.map(lambda x: jnp.asarray(x, dtype), theta0)
    tx = optim.get("newton")
    updates, state = one_step(tx, params, value)
    params = optax.apply_updates(params, updates)
  assert params["m"].dtype == dtype and params["m"].shape == (3, 2)
  flat = np.concatenate([np.ravel(params["m"]), params["v"]])
  np.testing.assert_allclose(flat, minimizer, rtol=rtol, atol=rtol)
  assert float(state.step_size) == 1.0 and float(state.shift) == 0.0


def test_damping_solves_the_levenberg_marquardt_system():
  z = np.array([-1.2, 1.0])
  g, h = rosenbrock_by_hand(z)
  with jax.enable_x64(True):
    path, _ = newton_path(newton(0.5, damping=10.0, max_backtracking_steps=0),
                          problems.rosenbrock(), z, 1)
  np.testing.assert_allclose(path[0], z - 0.5 * np.linalg.solve(h + 10.0 * np.eye(2), g),
                             rtol=1e-12)


def saddle(z):
  """x² − y² + y⁴/4: a saddle at 0, minima at (0, ±√2); H = diag(2, 3y² − 2)."""
  return z[0] ** 2 - z[1] ** 2 + 0.25 * z[1] ** 4


def test_indefinite_hessians_are_modified_into_descent_steps():
  z = jnp.array([1.0, 0.1])
  g = jax.grad(saddle)(z)
  results = {}
  for indefinite in ("shift", "abs", "none"):
    updates, state = one_step(newton(indefinite=indefinite, max_backtracking_steps=0), z, saddle)
    results[indefinite] = (np.asarray(z + updates), state)
  mu = 3 * 0.1**2 - 2  # the negative eigenvalue, −1.97
  delta = 1e-6 * 2.0
  shifted, state = results["shift"]
  tau = delta - mu + (-mu)
  np.testing.assert_allclose(float(state.shift), tau, rtol=1e-5)
  np.testing.assert_allclose(float(state.min_eigenvalue), mu, rtol=1e-5)
  np.testing.assert_allclose(shifted, z - g / (np.array([2.0, mu]) + tau), rtol=1e-5)
  assert saddle(shifted) < saddle(z)
  flipped, _ = results["abs"]  # saddle-free: |μ| along y, away from the saddle at y = 0
  np.testing.assert_allclose(flipped, z - g / np.array([2.0, -mu]), rtol=1e-5)
  assert abs(flipped[1]) > 0.1
  raw, _ = results["none"]  # plain Newton jumps to (near) the saddle point itself
  np.testing.assert_allclose(raw, [0.0, 0.0], atol=2e-3)


def test_line_search_makes_every_step_a_decrease():
  problem = problems.rosenbrock()
  with jax.enable_x64(True):
    path, state = newton_path(optim.get("newton"), problem, (-1.2, 1.0), 25)
    values = np.array([float(problem.value(x)) for x in path])
  assert np.all(np.diff(values) <= 0) and values[0] < float(problem.value(jnp.array([-1.2, 1.0])))
  assert values[-1] < 1e-20 and isinstance(state, NewtonState)
  # With no line search the same start has f jump to ~1.4e3 on the second step.
  with jax.enable_x64(True):
    pure, _ = newton_path(newton(max_backtracking_steps=0), problem, (-1.2, 1.0), 2)
  assert float(problem.value(jnp.asarray(pure[1]))) > 100


def test_on_beale_pure_newton_stops_at_a_saddle_and_the_safeguards_reach_the_minimum():
  """At Beale's standard start (1, 1), H is indefinite (eigenvalues ≈ −9.8 and 78.3)."""
  problem = problems.beale()
  with jax.enable_x64(True):
    pure, _ = newton_path(newton(max_backtracking_steps=0, indefinite="none"), problem,
                          (1.0, 1.0), 4)
    guarded, _ = newton_path(optim.get("newton"), problem, (1.0, 1.0), 10)
    saddle_gradient = problem.grad(jnp.asarray(pure[-1]))
  np.testing.assert_allclose(pure[-1], [0.0, 1.0], atol=1e-12)  # ∇f = 0, f = 14.2
  np.testing.assert_allclose(saddle_gradient, [0.0, 0.0], atol=1e-12)
  np.testing.assert_allclose(guarded[-1], [3.0, 0.5], atol=1e-10)


def test_failed_line_search_takes_no_step():
  tx = newton(max_backtracking_steps=3, indefinite="none")
  z = jnp.array([1.0, 0.1])  # every step decreases x[0], where f is NaN: never accepted

  def f(x):
    return jnp.where(x[0] < 1.0, jnp.nan, saddle(x))

  updates, state = one_step(tx, z, f)
  np.testing.assert_array_equal(updates, jnp.zeros(2))
  assert float(state.step_size) == 0.0 and int(state.value_evaluations) == 5


def test_lbfgs_entry_is_optax_lbfgs_and_converges():
  problem = problems.rosenbrock()
  with jax.enable_x64(True):
    ours, reference = optim.get("lbfgs"), optax.lbfgs()
    x = y = jnp.array([-1.2, 1.0])
    s_ours, s_ref = ours.init(x), reference.init(y)

    @jax.jit
    def step(x, s_ours, y, s_ref):
      v, g = jax.value_and_grad(problem.value)(x)
      u, s_ours = ours.update(g, s_ours, x, value=v, grad=g, value_fn=problem.value)
      v, g = jax.value_and_grad(problem.value)(y)
      w, s_ref = reference.update(g, s_ref, y, value=v, grad=g, value_fn=problem.value)
      return x + u, s_ours, y + w, s_ref

    for _ in range(40):
      x, s_ours, y, s_ref = step(x, s_ours, y, s_ref)
      np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    assert float(problem.value(x)) < 1e-12


def test_missing_arguments_and_bad_hyperparameters_raise():
  z = jnp.zeros(2)
  tx = newton()
  with pytest.raises(TypeError, match="needs the objective as a keyword argument"):
    tx.update(z, tx.init(z), z)
  with pytest.raises(ValueError, match="tree structure"):
    tx.update({"a": z}, tx.init(z), z, value_fn=saddle)
  with pytest.raises(ValueError, match="needs params"):
    tx.update(z, tx.init(z), value_fn=saddle)
  lb = lbfgs()
  with pytest.raises(TypeError, match="value, grad, value_fn"):
    lb.update(z, lb.init(z), z)
  plain = lbfgs(linesearch="none")  # no line search: no extra arguments needed
  updates, _ = plain.update(jnp.ones(2), plain.init(z), z)
  assert updates.shape == (2,)
  for kwargs, match in (({"damping": -1.0}, "damping must be"),
                        ({"indefinite": "clip"}, "indefinite must be one of"),
                        ({"min_curvature": 0.0}, "min_curvature must be"),
                        ({"backtracking_factor": 1.0}, "backtracking_factor must be"),
                        ({"max_backtracking_steps": -1}, "max_backtracking_steps must be")):
    with pytest.raises(ValueError, match=match):
      newton(**kwargs)
  with pytest.raises(ValueError, match="memory_size must be an int ≥ 1"):
    lbfgs(memory_size=0)
  with pytest.raises(ValueError, match="linesearch must be one of"):
    lbfgs(linesearch="backtracking")
