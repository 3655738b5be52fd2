"""Lookahead (Zhang et al. 2019): Algorithm 1 by hand in NumPy, optax.lookahead, the registry."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import optim
from optlab.optim.lookahead import LookaheadState, lookahead, lookahead_slow_params

STEPS = 11
LR, MOMENTUM = 0.05, 0.9


def problem(seed=0):
  """f(θ) = Σ ½ a θ² + b θ per leaf (a > 0), on a matrix and a vector, in float64."""
  rng = np.random.default_rng(seed)
  a = {"m": rng.uniform(0.5, 3.0, (3, 4)), "v": rng.uniform(0.5, 3.0, 5)}
  b = {"m": rng.normal(size=(3, 4)), "v": rng.normal(size=5)}
  theta0 = {"m": rng.normal(size=(3, 4)), "v": rng.normal(size=5)}
  return a, b, theta0


def grad(a, b, theta):
  return {k: a[k] * theta[k] + b[k] for k in theta}


def algorithm_1(a, b, theta0, k, alpha, steps, *, reset=False):
  """The paper's nested loops, written out: inner SGD with momentum (PyTorch form).

  Returns the fast weights after each of `steps` inner steps (synchronized ones are
  the new slow weights) and the slow weights at those times.
  """
  phi = {n: x.copy() for n, x in theta0.items()}
  theta = {n: x.copy() for n, x in theta0.items()}
  buf = {n: np.zeros_like(x) for n, x in theta0.items()}
  fast, slow = [], []
  done = 0
  while done < steps:
    theta = {n: phi[n].copy() for n in phi}  # θ_{t,0} ← φ_{t−1}
    for _ in range(k):
      g = grad(a, b, theta)
      buf = {n: MOMENTUM * buf[n] + g[n] for n in g}
      theta = {n: theta[n] - LR * buf[n] for n in g}
      done += 1
      if done % k == 0:
        phi = {n: phi[n] + alpha * (theta[n] - phi[n]) for n in phi}
        if reset:
          buf = {n: np.zeros_like(x) for n, x in buf.items()}
        fast.append({n: x.copy() for n, x in phi.items()})
      else:
        fast.append({n: x.copy() for n, x in theta.items()})
      slow.append({n: x.copy() for n, x in phi.items()})
      if done == steps:
        break
  return fast, slow


def run_lookahead(tx, theta0, a, b, steps, jit):
  params = jax.tree.map(jnp.asarray, theta0)
  state = tx.init(params)

  def step(params, state):
    g = jax.tree.map(lambda a_, b_, t: a_ * t + b_, a, b, params)
    updates, state = tx.update(g, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step) if jit else step
  fast, slow = [], []
  for _ in range(steps):
    params, state = step(params, state)
    fast.append(params)
    slow.append(lookahead_slow_params(params, state))
  return fast, slow


@pytest.mark.parametrize(("k", "alpha", "reset", "jit"), [
    (1, 0.5, False, True), (2, 0.8, False, False), (3, 0.5, True, True), (5, 0.5, False, True)])
def test_matches_algorithm_1_written_by_hand(k, alpha, reset, jit):
  a, b, theta0 = problem(k)
  expected_fast, expected_slow = algorithm_1(a, b, theta0, k, alpha, STEPS, reset=reset)
  with jax.enable_x64(True):
    tx = lookahead(optim.sgd(LR, momentum=MOMENTUM), k, alpha, reset_state=reset)
    fast, slow = run_lookahead(tx, theta0, a, b, STEPS, jit)
  for t in range(STEPS):
    for n in theta0:
      np.testing.assert_allclose(fast[t][n], expected_fast[t][n], rtol=1e-12, atol=1e-12)
      np.testing.assert_allclose(slow[t][n], expected_slow[t][n], rtol=1e-12, atol=1e-12)
      assert fast[t][n].dtype == jnp.float64


@pytest.mark.parametrize(("k", "reset"), [(2, False), (4, True)])
def test_slow_and_fast_weights_equal_optax_lookahead(k, reset):
  a, b, theta0 = problem(10 + k)
  base = optax.sgd(LR, momentum=MOMENTUM)
  with jax.enable_x64(True):
    ours, ours_slow = run_lookahead(lookahead(base, k, 0.6, reset_state=reset), theta0, a, b,
                                    STEPS, True)
    reference = optax.lookahead(base, k, 0.6, reset_state=reset)
    params = optax.LookaheadParams.init_synced(jax.tree.map(jnp.asarray, theta0))
    state = reference.init(params)
    for t in range(STEPS):
      g = grad(a, b, params.fast)
      updates, state = reference.update(g, state, params)
      params = optax.apply_updates(params, updates)
      for n in theta0:
        np.testing.assert_allclose(ours_slow[t][n], params.slow[n], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ours[t][n], params.fast[n], rtol=1e-12, atol=1e-12)


def test_slow_step_size_one_is_the_inner_optimizer():
  a, b, theta0 = problem(3)
  with jax.enable_x64(True):
    fast, _ = run_lookahead(lookahead(optim.sgd(LR, momentum=MOMENTUM), 3, 1.0), theta0, a, b,
                            7, True)
    plain, _ = run_lookahead(lookahead(optim.sgd(LR, momentum=MOMENTUM), 1000, 0.5), theta0, a,
                             b, 7, True)
  for n in theta0:
    np.testing.assert_allclose(fast[-1][n], plain[-1][n], rtol=1e-12)


def test_registry_entry_wraps_a_base_by_name_and_injects():
  params = {"w": jnp.array([1.0, -2.0])}
  tx = optim.get("lookahead", inject=True, base="adam", learning_rate=0.1, sync_period=2,
                 base_hyperparams={"b1": 0.5})
  reference = lookahead(optim.adam(0.1, b1=0.5), 2, 0.5)
  chained = optax.chain(optax.clip_by_global_norm(10.0), tx)
  s1, s2 = chained.init(params), reference.init(params)
  p1 = p2 = params

  @jax.jit
  def steps(p1, s1, p2, s2):
    for _ in range(4):
      u1, s1 = chained.update(jax.tree.map(lambda x: 2 * x, p1), s1, p1)
      u2, s2 = reference.update(jax.tree.map(lambda x: 2 * x, p2), s2, p2)
      p1, p2 = optax.apply_updates(p1, u1), optax.apply_updates(p2, u2)
    return p1, s1, p2, s2

  p1, s1, p2, s2 = steps(p1, s1, p2, s2)
  np.testing.assert_allclose(p1["w"], p2["w"], rtol=1e-6)
  # The slow weights are found inside the chain and the inject_hyperparams state.
  np.testing.assert_allclose(lookahead_slow_params(p1, s1)["w"], s2.slow["w"], rtol=1e-6)
  assert isinstance(s2, LookaheadState) and s1[1].hyperparams["slow_step_size"] == 0.5


def test_bfloat16_parameters_keep_their_dtype():
  params = {"w": jnp.ones(4, jnp.bfloat16)}
  tx = optim.get("lookahead", inject=True, learning_rate=0.1, sync_period=2)
  state = tx.init(params)
  for _ in range(3):
    updates, state = tx.update(params, state, params)
    params = optax.apply_updates(params, updates)
  assert params["w"].dtype == jnp.bfloat16
  assert lookahead_slow_params(params, state)["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sync_period": 0}, "sync_period must be an int ≥ 1"),
    ({"slow_step_size": 1.5}, r"slow_step_size must be in \[0, 1\]"),
])
def test_bad_hyperparameters_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    lookahead(optim.sgd(0.1), **kwargs)


def test_bad_inputs_raise_clear_errors():
  with pytest.raises(TypeError, match=r"base must be an optax\.GradientTransformation"):
    lookahead("sgd")
  with pytest.raises(TypeError, match="sync_period must be an int"):
    lookahead(optim.sgd(0.1), sync_period=2.5)
  tx = lookahead(optim.sgd(0.1))
  state = tx.init({"w": jnp.zeros(2)})
  with pytest.raises(ValueError, match="needs params"):
    tx.update({"w": jnp.zeros(2)}, state)
  with pytest.raises(ValueError, match="holds no LookaheadState"):
    lookahead_slow_params({"w": jnp.zeros(2)}, optim.adam().init({"w": jnp.zeros(2)}))
  with pytest.raises(ValueError, match="unknown optimizer 'adamm'"):
    optim.get("lookahead", base="adamm")
  with pytest.raises(TypeError, match="base must be a registry name"):
    optim.get("lookahead", base=optim.sgd(0.1))
  with pytest.raises(TypeError, match="base 'sgd' has no hyperparameter 'b1'"):
    optim.get("lookahead", base="sgd", base_hyperparams={"b1": 0.5})
  with pytest.raises(ValueError, match="learning_rate=, not in base_hyperparams"):
    optim.get("lookahead", base="sgd", base_hyperparams={"learning_rate": 0.1})
