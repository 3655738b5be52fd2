"""Cautious optimizers against the paper's masked update written out in NumPy float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.optim import adam, scale_by_adam, scale_by_learning_rate, sgd
from optlab.optim.cautious import cautious, cautious_adamw, cautious_lion

STEPS = 6
RNG = np.random.default_rng(3)
SHAPES = {"w": (4, 3), "b": (5,), "s": ()}
PARAMS0 = {k: RNG.normal(size=s) for k, s in SHAPES.items()}
# Gradients that keep their sign part of the time, so momentum and gradient disagree often.
GRADIENTS = [{k: RNG.normal(size=s) + 0.3 for k, s in SHAPES.items()} for _ in range(STEPS)]


def scale(phi, normalization):
  if normalization == "paper":
    return phi.size / (phi.sum() + 1.0)
  if normalization == "mean":
    return 1.0 / max(phi.mean(), 1e-3)
  return 1.0


def masked(step, g, normalization):
  """The paper's φ = 1[u ∘ g < 0] for a step u added to θ, with its rescaling."""
  phi = (step * g < 0).astype(np.float64)
  return step * phi * scale(phi, normalization)


def adam_steps(lr, b1=0.9, b2=0.999, eps=1e-8):
  m = {k: np.zeros(s) for k, s in SHAPES.items()}
  v = {k: np.zeros(s) for k, s in SHAPES.items()}
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    out = {}
    for k in SHAPES:
      m[k] = b1 * m[k] + (1 - b1) * g[k]
      v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
      out[k] = -lr * (m[k] / (1 - b1**t)) / (np.sqrt(v[k] / (1 - b2**t)) + eps)
    yield out


def sgd_momentum_steps(lr, mu):
  buf = {k: np.zeros(s) for k, s in SHAPES.items()}
  for g in GRADIENTS:
    out = {}
    for k in SHAPES:
      buf[k] = mu * buf[k] + g[k]  # torch.optim.SGD
      out[k] = -lr * buf[k]
    yield out


def lion_steps(lr, b1=0.9, b2=0.99):
  m = {k: np.zeros(s) for k, s in SHAPES.items()}
  for g in GRADIENTS:
    out = {}
    for k in SHAPES:
      out[k] = -lr * np.sign(b1 * m[k] + (1 - b1) * g[k])
      m[k] = b2 * m[k] + (1 - b2) * g[k]
    yield out


def cautious_reference(base_steps, normalization, decay=None):
  theta = {k: v.copy() for k, v in PARAMS0.items()}
  trajectory = []
  for g, step in zip(GRADIENTS, base_steps, strict=True):
    for k in SHAPES:
      new = theta[k] + masked(step[k], g[k], normalization)
      theta[k] = new + (decay(theta[k]) if decay else 0.0)
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
  return trajectory


def assert_trajectories_close(got, expected, rtol=2e-5, atol=2e-6):
  for got_t, expected_t in zip(got, expected, strict=True):
    for k in expected_t:
      np.testing.assert_allclose(got_t[k], expected_t[k], rtol=rtol, atol=atol, err_msg=k)


BASES = {
    "adam": (lambda: adam(0.05), lambda: adam_steps(0.05)),
    "sgd_momentum": (lambda: sgd(0.05, 0.9), lambda: sgd_momentum_steps(0.05, 0.9)),
    "optax_lion": (lambda: optax.lion(0.01, weight_decay=0.0), lambda: lion_steps(0.01)),
}


@pytest.mark.parametrize(("normalization", "jit"), [("paper", False), ("paper", True),
                                                   ("mean", True)],
                         ids=["paper-eager", "paper-jit", "mean-jit"])
@pytest.mark.parametrize("base", list(BASES))
def test_wrapper_matches_the_masked_update(base, normalization, jit):
  make_tx, make_steps = BASES[base]
  tx = cautious(make_tx(), normalization=normalization)
  assert_trajectories_close(run(tx, jit=jit), cautious_reference(make_steps(), normalization))


@pytest.mark.parametrize("base", list(BASES))
def test_masked_update_never_opposes_the_gradient(base):
  make_tx, _ = BASES[base]
  tx = cautious(make_tx())
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), PARAMS0)
  state = tx.init(params)
  some_masked = False
  for g in GRADIENTS:
    g = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), g)
    updates, state = tx.update(g, state, params)
    for u, grad in zip(jax.tree.leaves(updates), jax.tree.leaves(g), strict=True):
      assert np.all(np.asarray(u) * np.asarray(grad) <= 0)  # a step never climbs a coordinate
      some_masked |= bool(np.any(np.asarray(u) == 0))
  assert some_masked


def test_sign_convention_of_steps_and_directions():
  g = {"w": jnp.array([1.0, -2.0, 3.0])}
  # A step that goes down the gradient on the first two coordinates and up on the third.
  up_last = optax.GradientTransformation(
      lambda p: optax.EmptyState(), lambda u, s, p=None: ({"w": jnp.array([-1.0, 1.0, 1.0])}, s))
  updates, _ = cautious(up_last, normalization="none").update(g, optax.EmptyState())
  np.testing.assert_array_equal(updates["w"], [-1.0, 1.0, 0.0])
  # The same as a direction (to be multiplied by −α): its signs mean the opposite.
  updates, _ = cautious(up_last, normalization="none", updates_are="directions").update(
      g, optax.EmptyState())
  np.testing.assert_array_equal(updates["w"], [0.0, 0.0, 1.0])
  # Masking Adam's direction before −α is masking Adam's step after it.
  grads = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), GRADIENTS[0])
  params = jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), PARAMS0)
  steps = cautious(adam(0.1))
  directions = optax.chain(cautious(scale_by_adam(), updates_are="directions"),
                           scale_by_learning_rate(0.1))
  a, _ = steps.update(grads, steps.init(params), params)
  b, _ = directions.update(grads, directions.init(params), params)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6), a, b)


def test_wrapper_equals_base_when_all_signs_agree():
  params = {"w": jnp.zeros((3, 4)), "b": jnp.zeros(5)}
  g = {"w": jnp.full((3, 4), 0.5), "b": jnp.arange(1.0, 6.0)}
  base = sgd(0.1)
  expected, _ = base.update(g, base.init(params), params)
  tx = cautious(sgd(0.1), normalization="mean")
  got, _ = tx.update(g, tx.init(params), params)
  jax.tree.map(np.testing.assert_array_equal, got, expected)
  tx = cautious(sgd(0.1), normalization="paper")  # the paper's d/(‖φ‖₀ + 1) = d/(d + 1)
  got, _ = tx.update(g, tx.init(params), params)
  jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e * e.size / (e.size + 1), rtol=1e-6),
               got, expected)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("convention", ["paper", "lr"])
def test_cautious_adamw_masks_the_adam_step_not_the_decay(convention, jit):
  lr, wd = 0.05, 0.1
  if convention == "paper":
    decay = lambda theta: -wd * theta  # noqa: E731
  else:
    decay = lambda theta: -lr * wd * theta  # noqa: E731
  tx = cautious_adamw(lr, weight_decay=wd, decay_convention=convention)
  expected = cautious_reference(adam_steps(lr), "paper", decay)
  assert_trajectories_close(run(tx, jit=jit), expected)


def test_cautious_lion_is_the_wrapper_around_lion():
  expected = cautious_reference(lion_steps(0.01), "mean", lambda theta: -0.01 * 0.5 * theta)
  assert_trajectories_close(run(cautious_lion(0.01, weight_decay=0.5, normalization="mean"),
                                jit=True), expected)


def test_a_fully_masked_leaf_gives_a_zero_update():
  g = {"w": jnp.array([1.0, 2.0, 3.0])}
  ascent = optax.scale(0.1)  # u = +0.1 g climbs every coordinate
  for normalization in ("paper", "mean", "none"):
    updates, _ = cautious(ascent, normalization=normalization).update(g, optax.EmptyState())
    np.testing.assert_array_equal(updates["w"], np.zeros(3))
    assert np.all(np.isfinite(updates["w"]))


def test_bfloat16_keeps_dtypes():
  tx = cautious_adamw(0.01)
  params = {"w": jnp.ones((3, 2), jnp.bfloat16)}
  state = tx.init(params)
  updates, new_state = jax.jit(tx.update)(params, state, params)
  assert updates["w"].dtype == jnp.bfloat16
  assert jax.tree.map(lambda x: x.dtype, new_state) == jax.tree.map(lambda x: x.dtype, state)


def test_bad_inputs_raise():
  with pytest.raises(TypeError, match="GradientTransformation"):
    cautious(adam)
  with pytest.raises(ValueError, match="normalization"):
    cautious(adam(), normalization="l1")
  with pytest.raises(ValueError, match="updates_are"):
    cautious(adam(), updates_are="gradients")
  with pytest.raises(ValueError, match="min_fraction"):
    cautious(adam(), min_fraction=0.0)
  with pytest.raises(ValueError, match="b1"):
    cautious_adamw(b1=1.0)
  with pytest.raises(ValueError, match="learning_rate"):
    cautious_lion(-1.0)
  with pytest.raises(ValueError, match="b2"):
    cautious_lion(b2=1.0)
  tx = cautious(optax.lion(0.1))
  params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
  with pytest.raises(ValueError, match="tree structure"):
    tx.update({"w": jnp.zeros((2, 3))}, tx.init(params), params)
