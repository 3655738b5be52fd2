"""Adam-mini against the paper's Algorithm 1 written out in NumPy float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optim import adam
from optlab.optim.adam_mini import adam_mini, blocks_by_path, scale_by_adam_mini

STEPS = 6
RNG = np.random.default_rng(5)
# "attn" stands for an nnx.MultiHeadAttention query kernel (in, heads, head_dim).
SHAPES = {"w": (4, 6), "attn": (4, 2, 3), "b": (5,), "s": ()}
PARAMS0 = {k: RNG.normal(size=s) for k, s in SHAPES.items()}
GRADIENTS = [{k: RNG.normal(size=s) * (1 + np.arange(np.prod(s, dtype=int)).reshape(s) % 3)
              for k, s in SHAPES.items()} for _ in range(STEPS)]


def adam_mini_reference(lr, b1, b2, eps, wd, kept, *, paper_decay=False):
  """kept[k]: the axes of leaf k with one second moment per index; the mean is over the rest."""
  theta = {k: v.copy() for k, v in PARAMS0.items()}
  m = {k: np.zeros(s) for k, s in SHAPES.items()}
  reduced = {k: tuple(a for a in range(len(s)) if a not in kept[k]) for k, s in SHAPES.items()}
  v = {k: np.zeros(np.mean(np.zeros(s), axis=reduced[k], keepdims=True).shape)
       for k, s in SHAPES.items()}
  trajectory = []
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    for k in SHAPES:
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * np.mean(g[k] ** 2, axis=reduced[k], keepdims=True)
      update = (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps)
      if paper_decay:
        theta[k] = theta[k] - lr * update - wd * theta[k]
      else:
        theta[k] = theta[k] - lr * (update + wd * theta[k])
    trajectory.append({k: x.copy() for k, x in theta.items()})
  return trajectory


def run(tx, *, jit):
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), PARAMS0)
  state = tx.init(params)

  def step(params, state, g):
    updates, state = tx.update(g, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step) if jit else step
  trajectory = []
  for g in GRADIENTS:
    params, state = step(params, state, jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g))
    trajectory.append(jax.tree.map(lambda x: np.asarray(x, np.float64), params))
  return trajectory, state


def assert_trajectories_close(got, expected, rtol=2e-5, atol=2e-6):
  for got_t, expected_t in zip(got, expected, strict=True):
    for k in expected_t:
      np.testing.assert_allclose(got_t[k], expected_t[k], rtol=rtol, atol=atol, err_msg=k)


ONE_PER_LEAF = {k: () for k in SHAPES}


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_one_second_moment_per_leaf(jit):
  got, state = run(adam_mini(0.02, 0.9, 0.99, 1e-8, weight_decay=0.1), jit=jit)
  assert_trajectories_close(got, adam_mini_reference(0.02, 0.9, 0.99, 1e-8, 0.1, ONE_PER_LEAF))
  nu = state[0].nu
  assert {k: nu[k].shape for k in SHAPES} == {"w": (1, 1), "attn": (1, 1, 1), "b": (1,), "s": ()}
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(nu))


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_blocks_per_row_per_head_and_per_coordinate(jit):
  rule = blocks_by_path({r"\['w'\]": (0,), "attn": (1,), r"\['b'\]": "all"})
  kept = {"w": (0,), "attn": (1,), "b": (0,), "s": ()}
  got, state = run(adam_mini(0.02, 0.9, 0.99, 1e-8, block_axes=rule), jit=jit)
  assert_trajectories_close(got, adam_mini_reference(0.02, 0.9, 0.99, 1e-8, 0.0, kept))
  nu = state[0].nu
  assert {k: nu[k].shape for k in SHAPES} == {"w": (4, 1), "attn": (1, 2, 1), "b": (5,), "s": ()}


def test_a_raw_callable_rule_and_negative_axes():
  seen = []

  def rule(path, shape):
    seen.append((jax.tree_util.keystr(path), shape))
    return (-1,) if len(shape) >= 2 else None

  kept = {"w": (1,), "attn": (2,), "b": (), "s": ()}
  got, _ = run(adam_mini(0.02, 0.9, 0.99, 1e-8, block_axes=rule), jit=True)
  assert_trajectories_close(got, adam_mini_reference(0.02, 0.9, 0.99, 1e-8, 0.0, kept))
  assert ("['w']", (4, 6)) in seen


def test_one_block_per_coordinate_is_adam():
  ours, _ = run(adam_mini(0.02, block_axes=lambda path, shape: "all"), jit=True)
  theirs, _ = run(adam(0.02), jit=True)
  assert_trajectories_close(ours, theirs, rtol=1e-6, atol=1e-7)


def test_paper_decay_convention():
  got, _ = run(adam_mini(0.02, weight_decay=0.01, decay_convention="paper"), jit=True)
  expected = adam_mini_reference(0.02, 0.9, 0.999, 1e-8, 0.01, ONE_PER_LEAF, paper_decay=True)
  assert_trajectories_close(got, expected)


def test_bfloat16_keeps_dtypes_with_float32_block_moments():
  tx = adam_mini(0.01)
  params = {"w": jnp.ones((3, 2), jnp.bfloat16)}
  state = tx.init(params)
  updates, new_state = jax.jit(tx.update)(params, state, params)
  assert updates["w"].dtype == jnp.bfloat16
  assert state[0].mu["w"].dtype == jnp.bfloat16 and state[0].nu["w"].dtype == jnp.float32
  assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)


def test_zero_gradients_with_zero_eps_give_zero_updates():
  tx = scale_by_adam_mini(eps=0.0)
  params = {"w": jnp.zeros((2, 3))}
  updates, _ = tx.update({"w": jnp.zeros((2, 3))}, tx.init(params))
  np.testing.assert_array_equal(updates["w"], np.zeros((2, 3)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"b1": 1.0}, "b1"),
        ({"b2": 1.5}, "b2"),
        ({"eps": -1.0}, "eps"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"decay_convention": "torch"}, "decay_convention"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    adam_mini(**kwargs)


def test_bad_block_rules_raise():
  params = {"w": jnp.zeros((2, 3))}
  with pytest.raises(TypeError, match="block_axes"):
    adam_mini(block_axes=(0,))
  with pytest.raises(ValueError, match="axis 2"):
    adam_mini(block_axes=lambda path, shape: (2,)).init(params)
  with pytest.raises(ValueError, match="repeated"):
    adam_mini(block_axes=lambda path, shape: (0, -2)).init(params)
  with pytest.raises(ValueError, match="'rows'"):
    adam_mini(block_axes=lambda path, shape: "rows").init(params)
  tx = adam_mini()
  both = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
  with pytest.raises(ValueError, match="tree structure"):
    tx.update({"w": jnp.zeros((2, 3))}, tx.init(both), both)
  with pytest.raises(TypeError, match="dtype"):
    tx.init({"w": jnp.zeros(3, jnp.int32)})
