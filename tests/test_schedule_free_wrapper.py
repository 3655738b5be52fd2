"""Schedule-free as a wrapper (Defazio et al. 2024): the y, z, x sequences written out by hand,
optax.contrib's schedule_free_sgd / schedule_free_adamw, and optlab bases from the registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

from optlab import optim
from optlab.optim.averaging import find_state
from optlab.optim.schedule_free import (
    ScheduleFreeState,
    schedule_free,
    schedule_free_adamw,
    schedule_free_eval,
    schedule_free_sgd,
)

STEPS = 9


def problem(seed=0):
  """f(θ) = Σ ½ a θ² + b θ per leaf, on a matrix and a vector (float64 NumPy)."""
  rng = np.random.default_rng(seed)
  a = {"m": rng.uniform(0.5, 3.0, (3, 4)), "v": rng.uniform(0.5, 3.0, 5)}
  b = {"m": rng.normal(size=(3, 4)), "v": rng.normal(size=5)}
  theta0 = {"m": rng.normal(size=(3, 4)), "v": rng.normal(size=5)}
  return a, b, theta0


def run(tx, a, b, theta0, steps=STEPS):
  """The parameters y_t and the evaluation points x_t after each step (jitted)."""
  params = jax.tree.map(jnp.asarray, theta0)
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    g = jax.tree.map(lambda a_, b_, y: a_ * y + b_, a, b, params)
    updates, state = tx.update(g, state, params)
    return optax.apply_updates(params, updates), state

  ys, xs, states = [], [], []
  for _ in range(steps):
    params, state = step(params, state)
    ys.append(params)
    xs.append(schedule_free_eval(params, state))
    states.append(state)
  return ys, xs, states


def sgd_by_hand(a, b, theta0, rates, b1, power, weight_decay=0.0):
  """Defazio et al. (2024), Eq. 5-7 with SGD (Algorithm 1's weights, no Adam)."""
  z = {n: x.copy() for n, x in theta0.items()}
  x = {n: v.copy() for n, v in theta0.items()}
  y = {n: v.copy() for n, v in theta0.items()}
  max_lr = weight_sum = 0.0
  ys, xs = [], []
  for rate in rates:
    g = {n: a[n] * y[n] + b[n] for n in y}
    z = {n: z[n] - rate * (g[n] + weight_decay * y[n]) for n in z}
    max_lr = max(max_lr, rate)
    weight_sum += max_lr**power
    c = max_lr**power / weight_sum if weight_sum > 0 else 0.0
    x = {n: (1 - c) * x[n] + c * z[n] for n in x}
    y = {n: (1 - b1) * z[n] + b1 * x[n] for n in z}
    ys.append(y)
    xs.append(x)
  return ys, xs


def adamw_by_hand(a, b, theta0, lr, b1, b2, eps, weight_decay, warmup, steps):
  """Algorithm 1 of the paper (schedule-free AdamW), line by line."""
  z = {n: v.copy() for n, v in theta0.items()}
  x = {n: v.copy() for n, v in theta0.items()}
  nu = {n: np.zeros_like(v) for n, v in theta0.items()}
  squares = 0.0
  ys, xs = [], []
  for t in range(1, steps + 1):
    y = {n: (1 - b1) * z[n] + b1 * x[n] for n in z}
    g = {n: a[n] * y[n] + b[n] for n in y}
    nu = {n: b2 * nu[n] + (1 - b2) * g[n] ** 2 for n in g}
    gamma = lr * np.sqrt(1 - b2**t) * min(1.0, t / warmup)
    z = {n: z[n] - gamma * g[n] / (np.sqrt(nu[n]) + eps) - gamma * weight_decay * y[n] for n in z}
    squares += gamma**2
    c = gamma**2 / squares
    x = {n: (1 - c) * x[n] + c * z[n] for n in x}
    ys.append({n: (1 - b1) * z[n] + b1 * x[n] for n in z})
    xs.append(x)
  return ys, xs


def assert_sequences_close(actual, expected, rtol=1e-12, atol=1e-12):
  assert len(actual) == len(expected)
  for got, want in zip(actual, expected, strict=True):
    for n in want:
      np.testing.assert_allclose(got[n], want[n], rtol=rtol, atol=atol)


@pytest.mark.parametrize(("b1", "power", "warmup"), [(0.9, 2.0, 0), (0.5, 1.0, 4), (1.0, 2.0, 3)])
def test_sgd_matches_the_sequences_written_by_hand(b1, power, warmup):
  a, b, theta0 = problem(1)
  lr, decay = 0.2, 0.01
  rates = [lr * (min(1.0, (t + 1) / warmup) if warmup else 1.0) for t in range(STEPS)]
  expected_y, expected_x = sgd_by_hand(a, b, theta0, rates, b1, power, decay)
  with jax.enable_x64(True):
    ys, xs, _ = run(schedule_free_sgd(lr, b1, decay, power, warmup), a, b, theta0)
  assert_sequences_close(ys, expected_y)
  assert_sequences_close(xs, expected_x)


def test_adamw_paper_convention_matches_algorithm_1():
  a, b, theta0 = problem(2)
  settings = {"lr": 0.05, "b1": 0.9, "b2": 0.99, "eps": 1e-8, "weight_decay": 0.1, "warmup": 3}
  expected_y, expected_x = adamw_by_hand(a, b, theta0, **settings, steps=STEPS)
  with jax.enable_x64(True):
    tx = schedule_free_adamw(settings["lr"], settings["b1"], settings["b2"], settings["eps"],
                             settings["weight_decay"], warmup_steps=settings["warmup"])
    ys, xs, _ = run(tx, a, b, theta0)
  assert_sequences_close(ys, expected_y)
  assert_sequences_close(xs, expected_x)


def test_schedule_free_over_optlab_sgd_equals_optax_schedule_free_sgd():
  a, b, theta0 = problem(3)
  with jax.enable_x64(True):
    ours = run(optim.get("schedule_free", base="sgd", learning_rate=0.1), a, b, theta0)
    named = run(optim.get("schedule_free_sgd", learning_rate=0.1), a, b, theta0)
    reference = run(optax.contrib.schedule_free_sgd(0.1, b1=0.9), a, b, theta0)
  for got in (ours, named):
    assert_sequences_close(got[0], reference[0], rtol=1e-10, atol=1e-12)
    assert_sequences_close(got[1], reference[1], rtol=1e-10, atol=1e-12)


def test_over_optlab_adam_without_momentum_equals_optax_schedule_free_adamw():
  a, b, theta0 = problem(4)
  with jax.enable_x64(True):
    generic = run(schedule_free(optim.adam(0.05, b1=0.0), 0.05, b1=0.9), a, b, theta0)
    reference = run(optax.contrib.schedule_free_adamw(0.05, b1=0.9), a, b, theta0)
    named = run(schedule_free_adamw(0.05, weight_decay=0.1, bias_correction="optax"), a, b, theta0)
    decayed = run(optax.contrib.schedule_free_adamw(0.05, weight_decay=0.1), a, b, theta0)
  for got, want in ((generic, reference), (named, decayed)):
    assert_sequences_close(got[0], want[0], rtol=1e-10, atol=1e-12)
    assert_sequences_close(got[1], want[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("base", "hyperparams"), [
    ("sgd", {}), ("adam", {"b1": 0.0}), ("nesterov", {"momentum": 0.5})])
def test_z_takes_the_base_steps_at_y_and_x_averages_z(base, hyperparams):
  """For any base: z_{t+1} − z_t is the base's update for ∇f(y_t), and with a constant
  rate x_{t+1} is the plain mean of z_2 … z_{t+1}."""
  a, b, theta0 = problem(5)
  b1 = 0.8
  with jax.enable_x64(True):
    tx = optim.get("schedule_free", base=base, learning_rate=0.05, b1=b1,
                   base_hyperparams=hyperparams)
    ys, xs, states = run(tx, a, b, theta0)
    inner = optim.get(base, learning_rate=0.05, **hyperparams)
    inner_state = inner.init(jax.tree.map(jnp.asarray, theta0))
    y, z = theta0, theta0
    zs = []
    for t in range(STEPS):
      g = {n: a[n] * y[n] + b[n] for n in y}
      step, inner_state = inner.update(g, inner_state, jax.tree.map(jnp.asarray, y))
      z = {n: z[n] + np.asarray(step[n]) for n in z}
      zs.append(z)
      sf = find_state(states[t], ScheduleFreeState, "test")
      for n in z:
        np.testing.assert_allclose(sf.z[n], z[n], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(xs[t][n], np.mean([w[n] for w in zs], axis=0), rtol=1e-10)
        np.testing.assert_allclose(ys[t][n], (1 - b1) * z[n] + b1 * xs[t][n], rtol=1e-10)
      y = ys[t]


def test_b1_zero_is_the_base_optimizer_with_polyak_averaging():
  a, b, theta0 = problem(6)
  with jax.enable_x64(True):
    ys, xs, _ = run(schedule_free(optim.heavy_ball(0.05, 0.9), 0.05, b1=0.0), a, b, theta0)
    params = jax.tree.map(jnp.asarray, theta0)
    tx = optim.heavy_ball(0.05, 0.9)
    state = tx.init(params)
    iterates = []
    for _ in range(STEPS):
      g = jax.tree.map(lambda a_, b_, y: a_ * y + b_, a, b, params)
      updates, state = tx.update(g, state, params)
      params = optax.apply_updates(params, updates)
      iterates.append(params)
  assert_sequences_close(ys, iterates, rtol=1e-12)
  for t in range(STEPS):
    for n in theta0:
      np.testing.assert_allclose(xs[t][n], np.mean([w[n] for w in iterates[:t + 1]], axis=0),
                                 rtol=1e-10)


def test_eval_reads_optax_states_too_and_finds_nested_states():
  params = {"w": jnp.array([1.0, -2.0, 3.0])}
  tx = optax.contrib.schedule_free_sgd(0.3)
  state = tx.init(params)
  updates, state = tx.update(params, state, params)
  params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(schedule_free_eval(params, state)["w"],
                             optax.contrib.schedule_free_eval_params(state, params)["w"])
  nested = optax.chain(optax.clip(1.0), optim.get("schedule_free_adamw", inject=True))
  nested_state = nested.init(params)
  np.testing.assert_array_equal(schedule_free_eval(params, nested_state)["w"], params["w"])


def test_bad_hyperparameters_and_inputs_raise():
  with pytest.raises(ValueError, match=r"b1 must be in \[0, 1\]"):
    schedule_free(optim.sgd(0.1), 0.1, b1=1.5)
  with pytest.raises(ValueError, match="weight_lr_power must be"):
    schedule_free(optim.sgd(0.1), 0.1, weight_lr_power=-1.0)
  with pytest.raises(ValueError, match="learning_rate"):
    schedule_free(optim.sgd(0.1), -0.1)
  with pytest.raises(ValueError, match="warmup_steps must be an int ≥ 0"):
    schedule_free_sgd(warmup_steps=-1)
  with pytest.raises(ValueError, match="bias_correction must be one of"):
    schedule_free_adamw(bias_correction="pytorch")
  with pytest.raises(TypeError, match=r"base must be an optax\.GradientTransformation"):
    schedule_free("sgd", 0.1)
  tx = schedule_free(optim.sgd(0.1), 0.1)
  state = tx.init({"w": jnp.zeros(2)})
  with pytest.raises(ValueError, match="needs params"):
    tx.update({"w": jnp.zeros(2)}, state)
  with pytest.raises(ValueError, match="tree structure"):
    tx.update({"v": jnp.zeros(2)}, state, {"w": jnp.zeros(2)})
  with pytest.raises(ValueError, match="holds no ScheduleFreeState"):
    schedule_free_eval({"w": jnp.zeros(2)}, optim.adam().init({"w": jnp.zeros(2)}))
