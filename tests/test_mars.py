"""MARS-AdamW against the paper's algorithm (approximate version) written out in NumPy float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optim import adamw
from optlab.optim.mars import mars, scale_by_mars

STEPS = 6
RNG = np.random.default_rng(11)
# Gradient scales put the matrix above the clipping norm 1, the vector below it, and the
# scalar on both sides, so that both branches of Clip(c, 1) run.
SCALES = {"w": 1.0, "b": 0.05, "s": 0.8}
SHAPES = {"w": (4, 3), "b": (5,), "s": ()}
PARAMS0 = {k: RNG.normal(size=s) for k, s in SHAPES.items()}
GRADIENTS = [{k: SCALES[k] * RNG.normal(size=s) for k, s in SHAPES.items()} for _ in range(STEPS)]


def mars_reference(lr, b1, b2, eps, gamma, wd, *, correct_first_step=False, paper_decay=False):
  theta = {k: v.copy() for k, v in PARAMS0.items()}
  m = {k: np.zeros(s) for k, s in SHAPES.items()}
  v = {k: np.zeros(s) for k, s in SHAPES.items()}
  previous = {k: np.zeros(s) for k, s in SHAPES.items()}  # official code: last_grad = 0
  trajectory = []
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    for k in SHAPES:
      if t == 1 and not correct_first_step:
        previous[k] = g[k]  # the paper: x_1 = x_0, no correction at t = 1
      c = g[k] + gamma * (b1 / (1 - b1)) * (g[k] - previous[k])
      norm = np.sqrt(np.sum(c**2))
      if norm > 1:
        c = c / norm
      m[k] = b1 * m[k] + (1 - b1) * c
      v[k] = b2 * v[k] + (1 - b2) * c**2
      update = (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps)
      if paper_decay:
        theta[k] = theta[k] - lr * update - wd * theta[k]
      else:
        theta[k] = theta[k] - lr * (update + wd * theta[k])
      previous[k] = g[k]
    trajectory.append({k: x.copy() for k, x in theta.items()})
  return trajectory


def run(tx, *, jit, gradients=GRADIENTS):
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), PARAMS0)
  state = tx.init(params)

  def step(params, state, g):
    updates, state = tx.update(g, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step) if jit else step
  trajectory = []
  for g in gradients:
    params, state = step(params, state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g))
    trajectory.append(jax.tree.map(lambda x: np.asarray(x, np.float64), params))
  return trajectory, state


def assert_trajectories_close(got, expected, rtol=2e-5, atol=2e-6):
  for got_t, expected_t in zip(got, expected, strict=True):
    for k in expected_t:
      np.testing.assert_allclose(got_t[k], expected_t[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_mars_matches_the_algorithm(jit):
  # A large γ makes the correction matter (the paper's 0.025 with β₁ = 0.95 gives 0.475).
  tx = mars(0.01, b1=0.9, b2=0.99, eps=1e-8, gamma=0.5, weight_decay=0.1)
  got, state = run(tx, jit=jit)
  assert_trajectories_close(got, mars_reference(0.01, 0.9, 0.99, 1e-8, 0.5, 0.1))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6),
               state[0].previous_gradient, GRADIENTS[-1])


def test_mars_paper_defaults_and_conventions():
  got, _ = run(mars(), jit=True)
  assert_trajectories_close(got, mars_reference(3e-3, 0.95, 0.99, 1e-8, 0.025, 0.0))
  got, _ = run(mars(0.01, gamma=0.3, correct_first_step=True), jit=True)
  assert_trajectories_close(got, mars_reference(0.01, 0.95, 0.99, 1e-8, 0.3, 0.0,
                                                correct_first_step=True))
  got, _ = run(mars(0.01, weight_decay=0.01, decay_convention="paper"), jit=True)
  assert_trajectories_close(got, mars_reference(0.01, 0.95, 0.99, 1e-8, 0.025, 0.01,
                                                paper_decay=True))


def test_gamma_zero_on_small_gradients_is_adamw():
  small = [jax.tree.map(lambda g: 0.01 * g, grads) for grads in GRADIENTS]  # never clipped
  ours, _ = run(mars(0.01, gamma=0.0, weight_decay=0.1), jit=True, gradients=small)
  theirs, _ = run(adamw(0.01, 0.95, 0.99, 1e-8, 0.1, decay_convention="lr"), jit=True,
                  gradients=small)
  assert_trajectories_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_corrected_gradient_is_clipped_to_unit_norm():
  tx = scale_by_mars(b1=0.0, b2=0.0, eps=0.0, gamma=0.0)
  params = {"w": jnp.zeros(4)}
  # With β₁ = β₂ = 0, d = c/|c| elementwise: the signs of the clipped c. Check m instead.
  _, state = tx.update({"w": jnp.array([3.0, 4.0, 0.0, 0.0])}, tx.init(params))
  np.testing.assert_allclose(state.mu["w"], [0.6, 0.8, 0.0, 0.0], rtol=1e-6)
  _, state = tx.update({"w": jnp.array([0.3, 0.4, 0.0, 0.0])}, tx.init(params))
  np.testing.assert_allclose(state.mu["w"], [0.3, 0.4, 0.0, 0.0], rtol=1e-6)


def test_bfloat16_keeps_dtypes():
  tx = mars(0.01)
  params = {"w": jnp.ones((3, 2), jnp.bfloat16)}
  state = tx.init(params)
  updates, new_state = jax.jit(tx.update)(params, state, params)
  assert updates["w"].dtype == jnp.bfloat16
  assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"b1": 1.0}, "b1"),
        ({"b2": -0.1}, "b2"),
        ({"eps": -1.0}, "eps"),
        ({"gamma": -0.1}, "gamma"),
        ({"gamma": float("nan")}, "gamma"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"decay_convention": "torch"}, "decay_convention"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    mars(**kwargs)


def test_mismatched_trees_and_integer_params_raise():
  tx = mars()
  params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
  with pytest.raises(ValueError, match="tree structure"):
    tx.update({"w": jnp.zeros((2, 3))}, tx.init(params), params)
  with pytest.raises(TypeError, match="dtype"):
    tx.init({"w": jnp.zeros(3, jnp.int32)})
