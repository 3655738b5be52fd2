"""Packed parameters: round trips, gradients, and packed optimizers equal to unpacked ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import optim
from optlab.optim.packed import PackedState, Packing, pack, packed


def _tree(seed=0):
  rng = np.random.default_rng(seed)
  return {
      "dense": {"w": jnp.asarray(rng.normal(size=(5, 3)), jnp.float32),
                "b": jnp.asarray(rng.normal(size=(3,)), jnp.float32)},
      "scale": jnp.asarray(1.5, jnp.float32),
      "empty": jnp.zeros((0, 4), jnp.float32),
      "half": jnp.asarray(rng.normal(size=(2, 2)), jnp.bfloat16),
      "steps": jnp.arange(3, dtype=jnp.int32),
  }


def test_round_trip_keeps_shapes_dtypes_and_values():
  tree = _tree()
  buffers, packing = pack(tree)
  assert [b.dtype for b in buffers] == [jnp.float32, jnp.bfloat16, jnp.int32]
  assert packing.buffer_sizes == (19, 4, 3)
  assert packing.num_leaves == 6 and packing.num_params == 26
  back = packing.unpack(buffers)
  assert jax.tree.structure(back) == jax.tree.structure(tree)
  for a, b in zip(jax.tree.leaves(tree), jax.tree.leaves(back), strict=True):
    assert a.shape == b.shape and a.dtype == b.dtype
    np.testing.assert_array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32))


def test_packing_is_static_and_hashable():
  a, b = Packing.of(_tree(0)), Packing.of(_tree(1))
  assert a == b and hash(a) == hash(b)
  assert Packing.of(jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _tree())) == a


def test_unpack_keeps_leading_batch_dimensions():
  tree = {"w": jnp.ones((2, 3)), "b": jnp.arange(4.0)}
  packing = Packing.of(tree)
  (buffer,) = packing.pack(tree)
  batched = packing.unpack((jnp.stack([buffer, 2 * buffer, 3 * buffer]),))
  assert batched["w"].shape == (3, 2, 3) and batched["b"].shape == (3, 4)
  np.testing.assert_array_equal(batched["b"][2], 3 * jnp.arange(4.0))
  vmapped = jax.vmap(packing.unpack)((jnp.stack([buffer, buffer]),))
  assert vmapped["w"].shape == (2, 2, 3)


def test_gradient_with_respect_to_buffers_is_one_concatenation():
  tree = {f"w{i}": jnp.full((3, 2), float(i)) for i in range(20)}
  packing = Packing.of(tree)
  buffers = packing.pack(tree)

  def loss(tree):
    return sum(jnp.sum(jnp.sin(x) * (i + 1)) for i, x in enumerate(jax.tree.leaves(tree)))

  grads = jax.grad(lambda b: loss(packing.unpack(b)))(buffers)
  np.testing.assert_array_equal(grads[0], packing.pack(jax.grad(loss)(tree))[0])
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda b: loss(packing.unpack(b))))(buffers))
  assert "pad" not in jaxpr and jaxpr.count("concatenate") == 1
  # forward mode works too (lax.split is linear)
  _, tangent = jax.jvp(lambda b: loss(packing.unpack(b)), (buffers,), (grads,))
  assert np.isfinite(tangent)


def _run(tx, params, grads, steps=3):
  state = tx.init(params)

  @jax.jit
  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  for _ in range(steps):
    params, state = step(params, state, grads)
  return params, state


def _mixed_tree(seed):
  rng = np.random.default_rng(seed)
  shapes = [(6, 4), (4,), (3, 2, 2), (1,), (9,)]
  return {f"l{i}": jnp.asarray(rng.normal(size=s), jnp.float32) for i, s in enumerate(shapes)}


@pytest.mark.parametrize("make_tx", [
    lambda: optax.sgd(0.1),
    lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    lambda: optim.heavy_ball(0.1, momentum=0.9),
    lambda: optim.rmsprop(1e-2),
    lambda: optax.adagrad(1e-1),
], ids=["sgd", "nesterov", "heavy_ball", "rmsprop", "adagrad"])
def test_packed_elementwise_optimizers_equal_unpacked_exactly(make_tx):
  params, grads = _mixed_tree(0), _mixed_tree(1)
  packing = Packing.of(params)
  expected, _ = _run(make_tx(), params, grads)
  got, _ = _run(packed(make_tx(), packing), packing.pack(params), packing.pack(grads))
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(packing.unpack(got)), strict=True):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make_tx", [
    lambda: optax.adam(1e-2),
    lambda: optim.adam(1e-2),
    lambda: optim.adamw(1e-2, weight_decay=0.1),
    lambda: optax.chain(optax.clip_by_global_norm(0.5), optax.adamw(1e-2)),
], ids=["optax_adam", "adam", "adamw", "clip_adamw"])
def test_packed_adam_equals_unpacked_up_to_rounding(make_tx):
  # XLA's algebraic simplifier rewrites m̂/(√v̂+ε) (a division by the bias
  # correction) differently for arrays of different sizes, so Adam on one long
  # buffer and on small leaves can differ in the last bit; the global norm
  # sums in another order.
  params, grads = _mixed_tree(0), _mixed_tree(1)
  packing = Packing.of(params)
  expected, _ = _run(make_tx(), params, grads)
  got, state = _run(packed(make_tx(), packing), packing.pack(params), packing.pack(grads))
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(packing.unpack(got)), strict=True):
    np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7)
  assert len(jax.tree.leaves(state)) <= 6  # one μ and one ν buffer, counts


@pytest.mark.parametrize("make_tx", [
    lambda: optax.adamw(1e-2, mask=lambda p: {k: v.ndim > 1 for k, v in p.items()}),
    lambda: optax.lamb(1e-2),
    lambda: optax.adafactor(1e-2),
], ids=["masked_adamw", "lamb", "adafactor"])
def test_packed_per_leaf_runs_shape_dependent_transforms_on_the_tree(make_tx):
  params, grads = _mixed_tree(0), _mixed_tree(1)
  packing = Packing.of(params)
  expected, expected_state = _run(make_tx(), params, grads)
  tx = packed(make_tx(), packing, per_leaf=True)
  got, state = _run(tx, packing.pack(params), packing.pack(grads))
  for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(packing.unpack(got)), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  assert isinstance(state, PackedState) and len(state.buffers) <= 3
  assert len(jax.tree.leaves(expected_state)) > len(state.buffers)


def test_packed_step_passes_a_handful_of_arrays():
  params = {f"layer{i}": jnp.asarray(np.ones(i + 1, np.float32)) for i in range(50)}
  packing = Packing.of(params)
  tx = packed(optim.adam(1e-3), packing)
  buffers = packing.pack(params)
  state = tx.init(buffers)
  assert len(jax.tree.leaves((buffers, state))) == 5  # params; count, μ, ν; the rate's count
  updates, _ = jax.jit(tx.update)(buffers, state, buffers)
  assert updates[0].shape == (packing.num_params,)


def test_bad_inputs_name_the_problem():
  with pytest.raises(TypeError, match=r"leaf \[.a.\] is str"):
    Packing.of({"a": "not an array"})
  packing = Packing.of({"w": jnp.ones((2, 2))})
  with pytest.raises(ValueError, match="structure"):
    packing.pack({"v": jnp.ones((2, 2))})
  with pytest.raises(ValueError, match=r"leaf \['w'\] has shape \(3,\)"):
    packing.pack({"w": jnp.ones(3)})
  with pytest.raises(ValueError, match="tuple of 1 buffer"):
    packing.unpack(jnp.ones(4))
  with pytest.raises(ValueError, match="buffer 0 has shape"):
    packing.unpack((jnp.ones(5),))
  with pytest.raises(TypeError, match="packing must be"):
    packed(optax.adam(1e-3), {"w": 1})
  tx = packed(optax.adam(1e-3), packing)
  with pytest.raises(ValueError, match=r"packed\.init"):
    tx.init({"w": jnp.ones((2, 2))})
