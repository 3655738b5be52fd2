"""Muon against its algorithm written out by hand (NumPy float64) and against optax.contrib."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest

from optlab.optim.muon import (
    NS_COEFFS,
    as_matrix_shape,
    matrix_mask,
    muon,
    orthogonalize,
    scale_by_muon,
    shape_scale,
)

STEPS = 5
RNG = np.random.default_rng(7)
SHAPES = {"w": (6, 10), "tall": (9, 4), "conv": (3, 3, 2, 4), "b": (5,), "s": ()}
PARAMS0 = {k: RNG.normal(size=s) for k, s in SHAPES.items()}
GRADIENTS = [{k: RNG.normal(size=s) for k, s in SHAPES.items()} for _ in range(STEPS)]

def newton_schulz_reference(x, steps=5, eps=1e-7):
  """Jordan's zeropower_via_newtonschulz5, in float64, on the leaf viewed as (fan_in, fan_out)."""
  a, b, c = NS_COEFFS
  m = x.reshape(-1, x.shape[-1])
  transposed = m.shape[0] > m.shape[1]
  if transposed:
    m = m.T
  m = m / (np.linalg.norm(m) + eps)
  for _ in range(steps):
    gram = m @ m.T
    m = a * m + (b * gram + c * gram @ gram) @ m
  if transposed:
    m = m.T
  return m.reshape(x.shape)


def muon_reference(lr, beta, wd, adam_lr, adam_b1, adam_b2, adam_eps, adam_wd, *, nesterov,
                   moonlight=False):
  """Muon for the matrices (and the conv kernel as a matrix), AdamW for the rest; float64."""
  theta = {k: v.copy() for k, v in PARAMS0.items()}
  buf = {k: np.zeros(s) for k, s in SHAPES.items()}
  m = {k: np.zeros(s) for k, s in SHAPES.items()}
  v = {k: np.zeros(s) for k, s in SHAPES.items()}
  trajectory = []
  for t in range(1, STEPS + 1):
    g = GRADIENTS[t - 1]
    for k, shape in SHAPES.items():
      if len(shape) >= 2:
        buf[k] = beta * buf[k] + (1 - beta) * g[k]
        update = (1 - beta) * g[k] + beta * buf[k] if nesterov else buf[k]
        fan_in, fan_out = math.prod(shape[:-1]), shape[-1]
        scale = 0.2 * math.sqrt(max(fan_in, fan_out)) if moonlight else max(1, fan_out / fan_in)**.5
        theta[k] = theta[k] * (1 - lr * wd) - lr * scale * newton_schulz_reference(update)
      else:
        m[k] = adam_b1 * m[k] + (1 - adam_b1) * g[k]
        v[k] = adam_b2 * v[k] + (1 - adam_b2) * g[k] ** 2
        m_hat, v_hat = m[k] / (1 - adam_b1**t), v[k] / (1 - adam_b2**t)
        theta[k] = theta[k] - adam_lr * (m_hat / (np.sqrt(v_hat) + adam_eps) + adam_wd * theta[k])
    trajectory.append({k: x.copy() for k, x in theta.items()})
  return trajectory


def run(tx, *, jit, params0=PARAMS0, gradients=GRADIENTS, dtype=jnp.float32):
  params = jax.tree.map(lambda x: jnp.asarray(x, dtype), params0)
  state = tx.init(params)

  def step(params, state, g):
    updates, state = tx.update(g, state, params)
    return optax.apply_updates(params, updates), state

  step = jax.jit(step) if jit else step
  trajectory = []
  for g in gradients:
    params, state = step(params, state, jax.tree.map(lambda x: jnp.asarray(x, dtype), g))
    trajectory.append(jax.tree.map(lambda x: np.asarray(x, np.float64), params))
  return trajectory


def assert_trajectories_close(got, expected, rtol=1e-4, atol=2e-5):
  for got_t, expected_t in zip(got, expected, strict=True):
    for k in expected_t:
      np.testing.assert_allclose(got_t[k], expected_t[k], rtol=rtol, atol=atol, err_msg=k)


@pytest.mark.parametrize(("jit", "nesterov"), [(False, True), (True, True), (True, False)],
                         ids=["eager-nesterov", "jit-nesterov", "jit-plain"])
def test_muon_matches_the_algorithm(jit, nesterov):
  hyper = dict(lr=0.02, beta=0.9, wd=0.1, adam_lr=0.01, adam_b1=0.8, adam_b2=0.95, adam_eps=1e-8,
               adam_wd=0.05)
  tx = muon(0.02, beta=0.9, weight_decay=0.1, adam_learning_rate=0.01, adam_b1=0.8, adam_b2=0.95,
            adam_eps=1e-8, adam_weight_decay=0.05, nesterov=nesterov)
  expected = muon_reference(**hyper, nesterov=nesterov)
  if jit:
    assert_trajectories_close(run(tx, jit=True), expected)
  else:  # eager dispatch of every Newton–Schulz product is slow: two steps suffice
    assert_trajectories_close(run(tx, jit=False, gradients=GRADIENTS[:2]), expected[:2])


def test_muon_moonlight_scaling_and_paper_decay():
  tx = muon(0.02, beta=0.9, adam_learning_rate=0.01, shape_scaling="moonlight")
  expected = muon_reference(0.02, 0.9, 0.0, 0.01, 0.9, 0.95, 1e-10, 0.0, nesterov=True,
                            moonlight=True)
  assert_trajectories_close(run(tx, jit=True), expected)
  # "paper" decay: W − α s O − λ W; with G = 0 and W = 0 elsewhere, only the decay moves W.
  tx = muon(0.5, weight_decay=0.1, decay_convention="paper")
  params = {"w": jnp.ones((2, 3))}
  updates, _ = tx.update({"w": jnp.zeros((2, 3))}, tx.init(params), params)
  np.testing.assert_allclose(updates["w"], -0.1 * np.ones((2, 3)), rtol=1e-6)


def test_orthogonalized_singular_values_lie_in_the_quintic_band():
  g = RNG.normal(size=(32, 64))
  for x in (g, g.T):
    o = np.asarray(orthogonalize(jnp.asarray(x, jnp.float32)), np.float64)
    s = np.linalg.svd(o, compute_uv=False)
    assert 0.68 < s.min() and s.max() < 1.21, s
    # The singular vectors are those of x: U^T O V is diagonal (O ≈ U diag(p(σ)) V^T).
    u, _, vt = np.linalg.svd(x, full_matrices=False)
    core = u.T @ o @ vt.T
    assert np.abs(core - np.diag(np.diag(core))).max() < 1e-4
    np.testing.assert_allclose(np.sort(np.diag(core)), np.sort(s), rtol=1e-4)


def test_conv_kernels_are_orthogonalized_as_fan_in_by_fan_out_matrices():
  kernel = RNG.normal(size=(3, 3, 4, 8))  # flax layout (kh, kw, c_in, c_out)
  assert as_matrix_shape(kernel.shape) == (36, 8)
  o = orthogonalize(jnp.asarray(kernel, jnp.float32))
  assert o.shape == kernel.shape
  as_matrix = np.asarray(o, np.float64).reshape(36, 8)
  np.testing.assert_allclose(as_matrix, newton_schulz_reference(kernel.reshape(36, 8)),
                             rtol=1e-4, atol=1e-5)
  s = np.linalg.svd(as_matrix, compute_uv=False)
  assert 0.68 < s.min() and s.max() < 1.21, s
  assert shape_scale(kernel.shape) == 1.0  # fan_out 8 < fan_in 36
  # The kernel goes to Muon (not AdamW) by default: its update is orthogonal, not Adam's ±α.
  tx = muon(1.0, nesterov=False, beta=0.0)
  updates, _ = tx.update({"k": jnp.asarray(kernel, jnp.float32)},
                         tx.init({"k": jnp.zeros(kernel.shape)}), {"k": jnp.zeros(kernel.shape)})
  np.testing.assert_allclose(-np.asarray(updates["k"]), np.asarray(o), rtol=1e-5, atol=1e-6)


def optax_run(tx, params0, gradients):
  return run(tx, jit=True, params0=params0, gradients=gradients)


def test_matches_optax_contrib_muon_on_matrices():
  params0 = {"w": RNG.normal(size=(8, 12))}
  gradients = [{"w": RNG.normal(size=(8, 12))} for _ in range(3)]
  # Without Nesterov optax's bias correction is a scalar that the normalization removes.
  ours = muon(0.02, beta=0.9, eps=1e-7, nesterov=False)
  theirs = optax.contrib.muon(0.02, beta=0.9, eps=1e-7, nesterov=False)
  assert_trajectories_close(optax_run(ours, params0, gradients),
                            optax_run(theirs, params0, gradients), rtol=1e-5, atol=1e-6)
  # Moonlight's scaling is optax's consistent_rms.
  ours = muon(0.02, beta=0.9, eps=1e-7, nesterov=False, shape_scaling="moonlight")
  theirs = optax.contrib.muon(0.02, beta=0.9, eps=1e-7, nesterov=False, consistent_rms=0.2)
  assert_trajectories_close(optax_run(ours, params0, gradients),
                            optax_run(theirs, params0, gradients), rtol=1e-5, atol=1e-6)
  # With Nesterov the first step agrees (both directions are proportional to G_1).
  ours = muon(0.02, beta=0.9, eps=1e-7)
  theirs = optax.contrib.muon(0.02, beta=0.9, eps=1e-7)
  assert_trajectories_close(optax_run(ours, params0, gradients[:1]),
                            optax_run(theirs, params0, gradients[:1]), rtol=1e-5, atol=1e-6)


def test_matches_optax_contrib_muon_on_a_conv_kernel_given_dimension_numbers():
  params0 = {"k": RNG.normal(size=(3, 3, 2, 4))}
  gradients = [{"k": RNG.normal(size=(3, 3, 2, 4))} for _ in range(3)]
  dims = {"k": optax.contrib.MuonDimensionNumbers(reduction_axis=(0, 1, 2), output_axis=3)}
  ours = muon(0.02, beta=0.9, eps=1e-7, nesterov=False)
  theirs = optax.contrib.muon(0.02, beta=0.9, eps=1e-7, nesterov=False,
                              muon_weight_dimension_numbers=dims)
  assert_trajectories_close(optax_run(ours, params0, gradients),
                            optax_run(theirs, params0, gradients), rtol=1e-5, atol=1e-6)


def test_muon_mask_sends_excluded_matrices_to_adamw():
  params = {"embed": jnp.ones((10, 4)), "w": jnp.ones((4, 4))}
  grads = {"embed": jnp.full((10, 4), 0.5), "w": jnp.eye(4)}
  tx = muon(0.1, adam_learning_rate=0.01, muon_mask=matrix_mask(exclude=("embed",)))
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["embed"], -0.01 * np.ones((10, 4)), rtol=1e-4)  # Adam: ±α
  s = np.linalg.svd(-np.asarray(updates["w"]) / 0.1, compute_uv=False)
  assert np.all((s > 0.68) & (s < 1.21))
  fixed = muon(0.1, muon_mask={"embed": False, "w": True})
  fixed_updates, _ = fixed.update(grads, fixed.init(params), params)
  np.testing.assert_allclose(fixed_updates["w"], updates["w"], rtol=1e-6)


def test_bfloat16_iteration_is_close_to_float32():
  g = jnp.asarray(RNG.normal(size=(16, 24)), jnp.float32)
  o32 = jax.jit(orthogonalize)(g)
  o16 = jax.jit(lambda x: orthogonalize(x, dtype=jnp.bfloat16))(g)
  assert o16.dtype == jnp.float32
  np.testing.assert_allclose(o16, o32, atol=0.05)
  params = {"w": jnp.zeros((4, 6), jnp.bfloat16)}
  tx = scale_by_muon(ns_dtype=jnp.bfloat16)
  updates, state = jax.jit(tx.update)({"w": jnp.ones((4, 6), jnp.bfloat16)}, tx.init(params))
  assert updates["w"].dtype == jnp.bfloat16 and state.mu["w"].dtype == jnp.bfloat16


def test_zero_gradients_give_zero_updates():
  params = {"w": jnp.ones((3, 5))}
  tx = muon(0.1, eps=0.0)
  updates, _ = tx.update({"w": jnp.zeros((3, 5))}, tx.init(params), params)
  np.testing.assert_array_equal(updates["w"], np.zeros((3, 5)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"beta": 1.0}, "beta"),
        ({"eps": -1e-3}, "eps"),
        ({"adam_learning_rate": -1.0}, "adam_learning_rate"),
        ({"adam_b2": 1.5}, "b2"),
        ({"ns_steps": 2.5}, "ns_steps"),
        ({"ns_steps": -1}, "ns_steps"),
        ({"ns_coeffs": (1.0, 2.0)}, "ns_coeffs"),
        ({"shape_scaling": "spectral"}, "shape_scaling"),
        ({"ns_dtype": jnp.int32}, "ns_dtype"),
        ({"decay_convention": "torch"}, "decay_convention"),
    ],
)
def test_bad_hyperparameters_raise(kwargs, match):
  with pytest.raises(ValueError, match=match):
    muon(**kwargs)


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="ndim ≥ 2"):
    scale_by_muon().init({"b": jnp.zeros(3)})
  tx = muon(muon_mask={"b": True})
  with pytest.raises(ValueError, match="ndim ≥ 2"):
    tx.init({"b": jnp.zeros(3)})
  tx = muon(muon_mask={"b": True, "w": True})
  with pytest.raises(ValueError, match="tree structure"):
    tx.init({"b": jnp.zeros(3)})
  tx = muon()
  params = {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
  with pytest.raises(ValueError, match="tree structure"):
    tx.update({"w": jnp.zeros((2, 3))}, tx.init(params), params)
  with pytest.raises(TypeError, match="dtype"):
    muon().init({"w": jnp.zeros((2, 3), jnp.int32)})
