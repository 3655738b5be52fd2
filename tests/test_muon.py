"""Muon against its algorithm written out by hand (NumPy float64) and against optax.contrib."""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
import pytest
from flax import nnx

from optlab.models import TransformerLM
from optlab.optim.muon import (
  NS_COEFFS,
  as_matrix_shape,
  flax_attention_matrix_axes,
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


# ----------------------------------------------------------------------------------
# matrix_axes: flax's attention kernels as the layer's matrix.

DIMS = optax.contrib.MuonDimensionNumbers
ATTN_RNG = np.random.default_rng(11)  # its own stream: the tests above keep their draws
# query (d_in, heads, head_dim) = (4, 2, 4): the layer's matrix is (4, 8), wide, so Jordan's
# scale is √2 (the default view (8, 4) would give 1); out (heads, head_dim, d_out) = (2, 4, 4).
ATTN_SHAPES = {"attn": {"query": {"kernel": (4, 2, 4)}, "out": {"kernel": (2, 4, 4)}},
               "w": (4, 6), "b": (6,)}
ATTN_PARAMS0 = jax.tree.map(lambda s: ATTN_RNG.normal(size=s), ATTN_SHAPES,
                            is_leaf=lambda s: isinstance(s, tuple))
ATTN_GRADIENTS = [jax.tree.map(lambda x: ATTN_RNG.normal(size=x.shape), ATTN_PARAMS0)
                  for _ in range(3)]
# Each leaf's matrix, written out: the query kernel as (d_in, heads·head_dim).
ATTN_MATRIX = {"['attn']['query']['kernel']": (4, 8), "['attn']['out']['kernel']": (8, 4),
               "['w']": (4, 6)}


def attention_muon_reference(lr, beta, adam_lr, *, nesterov, steps, moonlight=False):
  """Muon (no decay) on each leaf reshaped by hand to ATTN_MATRIX, Adam for `b`; float64."""
  theta = {jax.tree_util.keystr(p): x.copy()
           for p, x in jax.tree_util.tree_flatten_with_path(ATTN_PARAMS0)[0]}
  buf = {k: np.zeros(x.shape) for k, x in theta.items()}
  m, v = np.zeros(6), np.zeros(6)
  trajectory = []
  for t in range(1, steps + 1):
    g = {jax.tree_util.keystr(p): x
         for p, x in jax.tree_util.tree_flatten_with_path(ATTN_GRADIENTS[t - 1])[0]}
    for k, (rows, cols) in ATTN_MATRIX.items():
      buf[k] = beta * buf[k] + (1 - beta) * g[k]
      update = (1 - beta) * g[k] + beta * buf[k] if nesterov else buf[k]
      o = newton_schulz_reference(update.reshape(rows, cols)).reshape(update.shape)
      scale = 0.2 * math.sqrt(max(rows, cols)) if moonlight else max(1, cols / rows) ** 0.5
      theta[k] = theta[k] - lr * scale * o
    m = 0.9 * m + 0.1 * g["['b']"]
    v = 0.95 * v + 0.05 * g["['b']"] ** 2
    theta["['b']"] = theta["['b']"] - adam_lr * (m / (1 - 0.9**t)) / (
        np.sqrt(v / (1 - 0.95**t)) + 1e-10)
    trajectory.append(dict(theta))
  return trajectory


def flat_trajectory(trajectory):
  return [{jax.tree_util.keystr(p): x for p, x in jax.tree_util.tree_flatten_with_path(t)[0]}
          for t in trajectory]


@pytest.mark.parametrize(("jit", "nesterov", "scaling"),
                         [(False, True, "jordan"), (True, True, "jordan"),
                          (True, False, "moonlight")],
                         ids=["eager-nesterov", "jit-nesterov", "jit-plain-moonlight"])
def test_attention_kernels_are_orthogonalized_as_the_layer_matrix(jit, nesterov, scaling):
  steps = 3 if jit else 2  # eager dispatch of every product is slow
  tx = muon(0.02, beta=0.9, adam_learning_rate=0.01, nesterov=nesterov, shape_scaling=scaling,
            matrix_axes=flax_attention_matrix_axes)
  got = flat_trajectory(run(tx, jit=jit, params0=ATTN_PARAMS0, gradients=ATTN_GRADIENTS[:steps]))
  expected = attention_muon_reference(0.02, 0.9, 0.01, nesterov=nesterov, steps=steps,
                                      moonlight=scaling == "moonlight")
  assert_trajectories_close(got, expected)
  # The view and the scale of the query kernel are the layer's, not the default's.
  assert as_matrix_shape((4, 2, 4), 1) == (4, 8) and as_matrix_shape((4, 2, 4)) == (8, 4)
  assert shape_scale((4, 2, 4), axes=1) == math.sqrt(2) and shape_scale((4, 2, 4)) == 1.0
  assert shape_scale((4, 2, 4), "moonlight", 0.2, axes=1) == 0.2 * math.sqrt(8)


def test_transformer_lm_attention_kernels_get_the_layer_view():
  # Shapes and paths only (nnx.eval_shape: no initializer is compiled or run).
  model = nnx.eval_shape(lambda: TransformerLM(11, 8, d_model=8, num_heads=2, num_layers=1,
                                               rngs=nnx.Rngs(0)))
  state = nnx.state(model, nnx.Param)
  for tree in (state, nnx.to_pure_dict(state)):
    specs = {jax.tree_util.keystr(p): (np.shape(x), s) for (p, x), s in zip(
        jax.tree_util.tree_flatten_with_path(tree)[0],
        jax.tree.leaves(flax_attention_matrix_axes(tree), is_leaf=lambda s: s is None),
        strict=True)}
    one = {k: shape for k, (shape, s) in specs.items() if s == 1}
    assert len(one) == 3 and set(one.values()) == {(8, 2, 4)}  # query, key, value
    assert all(re.search(r"\['(query|key|value)'\]\['kernel'\]", k) for k in one)
    out = [shape for k, (shape, s) in specs.items() if "['out']['kernel']" in k]
    assert out == [(2, 4, 8)]  # (heads, head_dim, d_out): the default view is right
    assert all(s is None for k, (_, s) in specs.items() if k not in one)
  # Muon on the model's params: the query kernel's update is NS of its (8, 8) matrix.
  params = jax.tree.map(lambda x: ATTN_RNG.normal(size=x.shape).astype(np.float32),
                        nnx.to_pure_dict(state))
  grads = jax.tree.map(lambda x: np.cos(3.0 * x + 1.0), params)
  only_qkv = matrix_mask(exclude=("embed", "bias", "ff_", "out"))  # a small program to compile
  tx = muon(1.0, beta=0.0, nesterov=False, muon_mask=only_qkv,
            matrix_axes=flax_attention_matrix_axes)
  updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)
  g = np.asarray(grads["blocks"][0]["attn"]["query"]["kernel"], np.float64)
  np.testing.assert_allclose(-np.asarray(updates["blocks"][0]["attn"]["query"]["kernel"]),
                             newton_schulz_reference(g.reshape(8, 8)).reshape(8, 2, 4),
                             rtol=1e-4, atol=1e-5)


def test_matches_optax_contrib_muon_given_equivalent_dimension_numbers():
  params0 = {"query": {"kernel": ATTN_RNG.normal(size=(4, 2, 4))},
             "out": {"kernel": ATTN_RNG.normal(size=(2, 4, 4))},
             "t": ATTN_RNG.normal(size=(3, 2, 5))}
  gradients = [jax.tree.map(lambda x: ATTN_RNG.normal(size=x.shape), params0) for _ in range(3)]
  dims = {"query": {"kernel": DIMS(reduction_axis=0, output_axis=(1, 2))},
          "out": {"kernel": DIMS(reduction_axis=(0, 1), output_axis=2)},
          # A transposed view: rows are axis 1, columns axes (0, 2).
          "t": DIMS(reduction_axis=1, output_axis=(0, 2))}
  theirs = optax.contrib.muon(0.02, beta=0.9, eps=1e-7, nesterov=False,
                              muon_weight_dimension_numbers=dims)
  expected = flat_trajectory(optax_run(theirs, params0, gradients))
  ours = muon(0.02, beta=0.9, eps=1e-7, nesterov=False, matrix_axes=dims)
  assert_trajectories_close(flat_trajectory(optax_run(ours, params0, gradients)), expected,
                            rtol=1e-5, atol=1e-6)
  # Moonlight's scale (optax's consistent_rms) of the views; the flax helper and the int form
  # give the same views as those dimension numbers.
  theirs = optax.contrib.muon(0.02, beta=0.9, eps=1e-7, nesterov=False, consistent_rms=0.2,
                              muon_weight_dimension_numbers=dims)
  ours = muon(0.02, beta=0.9, eps=1e-7, nesterov=False, shape_scaling="moonlight",
              matrix_axes=lambda p: {**flax_attention_matrix_axes(p), "t": dims["t"]})
  assert_trajectories_close(flat_trajectory(optax_run(ours, params0, gradients)),
                            flat_trajectory(optax_run(theirs, params0, gradients)),
                            rtol=1e-5, atol=1e-6)


def test_default_view_is_unchanged():
  params = {k: jnp.asarray(PARAMS0[k], jnp.float32) for k in ("w", "tall", "conv")}
  grads = {k: jnp.asarray(GRADIENTS[0][k], jnp.float32) for k in params}
  default = scale_by_muon()
  expected, _ = jax.jit(default.update)(grads, default.init(params))
  for spec in (lambda p: jax.tree.map(lambda _: None, p), {"w": -1, "tall": 1, "conv": 3},
               {"w": DIMS(0, 1), "tall": DIMS(0, 1), "conv": DIMS((0, 1, 2), 3)}):
    tx = scale_by_muon(matrix_axes=spec)
    got, _ = jax.jit(tx.update)(grads, tx.init(params))
    for k in params:
      np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
  # A 3-D leaf without a spec keeps the default view (d_in·heads, head_dim).
  q = jnp.asarray(ATTN_RNG.normal(size=(4, 2, 4)), jnp.float32)
  np.testing.assert_allclose(np.asarray(orthogonalize(q)).reshape(8, 4),
                             newton_schulz_reference(np.asarray(q, np.float64).reshape(8, 4)),
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"attn": {"kernel": 1}}, r"tree structure.*no spec for leaves \['w'\]"),
        ({"attn": {"kernel": 1}, "w": None, "x": 1}, r"tree structure.*lack: \['x'\]"),
        ({"attn": {"kernel": 3}, "w": None}, r"\['attn'\]\['kernel'\].*rows=3 is out of range"),
        ({"attn": {"kernel": 0}, "w": None}, r"\['attn'\]\['kernel'\].*rows=0 is out of range"),
        ({"attn": {"kernel": DIMS(0, 5)}, "w": None}, r"\['attn'\]\['kernel'\].*out of range"),
        ({"attn": {"kernel": DIMS(0, 1)}, "w": None}, r"kernel'\].*\[2\].*2 dims"),
        ({"attn": {"kernel": DIMS((0, 1), (1, 2))}, "w": None}, "repeat an axis"),
        ({"attn": {"kernel": "rows"}, "w": None}, r"kernel'\].*spec must be None"),
        ({"attn": {"kernel": True}, "w": None}, "spec must be None"),
        ({"attn": {"kernel": 1}, "w": 2}, r"\['w'\].*rows=2 is out of range"),
    ],
)
def test_bad_matrix_axes_raise(spec, match):
  params = {"attn": {"kernel": jnp.zeros((4, 2, 4))}, "w": jnp.zeros((4, 3))}
  with pytest.raises(ValueError, match=match):
    scale_by_muon(matrix_axes=spec).init(params)
  with pytest.raises(ValueError, match=match):
    muon(matrix_axes=lambda p: spec).init(params)


def test_matrix_axes_in_muon_skip_adamw_leaves_and_need_static_when_injected():
  params = {"attn": {"kernel": jnp.ones((4, 2, 4))}, "b": jnp.zeros(3)}
  grads = {"attn": {"kernel": jnp.ones((4, 2, 4))}, "b": jnp.ones(3)}
  # AdamW's leaves: their entry is ignored (here an int that would not fit a vector).
  tx = muon(0.1, matrix_axes={"attn": {"kernel": 1}, "b": 1})
  updates, _ = tx.update(grads, tx.init(params), params)
  assert updates["attn"]["kernel"].shape == (4, 2, 4)
  # A tree that misses a leaf, even AdamW's, does not match the params.
  with pytest.raises(ValueError, match=r"no spec for leaves \['b'\]"):
    muon(matrix_axes={"attn": {"kernel": 1}}).init(params)
  # Injected: matrix_axes must be static (else it would be taken for a schedule).
  factory = optax.inject_hyperparams(muon, static_args=("ns_steps", "ns_coeffs", "ns_dtype",
                                                        "muon_mask", "matrix_axes"))
  tx = factory(learning_rate=0.1, matrix_axes=flax_attention_matrix_axes)
  tx.update(grads, tx.init(params), params)
  # The registry lists it as static: optim.get(..., inject=True) keeps the view.
  from optlab import optim

  axes = {"attn": {"kernel": 1}, "b": None}
  registered = optim.get("muon", inject=True, learning_rate=0.1, matrix_axes=axes)
  direct = muon(0.1, matrix_axes=axes)
  got, _ = registered.update(grads, registered.init(params), params)
  want, _ = direct.update(grads, direct.init(params), params)
  np.testing.assert_allclose(got["attn"]["kernel"], want["attn"]["kernel"], rtol=1e-6)
  with pytest.raises(ValueError, match="static_args"):
    flax_attention_matrix_axes(jnp.zeros([], jnp.int32))
  with pytest.raises(ValueError, match="static_args"):
    scale_by_muon(matrix_axes=jnp.asarray(1))
