"""The non-finite check and skip of every train step: exact, once at most, per run under vmap."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab.train import TrainState
from optlab.train.steps import all_finite, apply_gradients

_check = jax.jit(all_finite)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16, jnp.complex64])
def test_all_finite_finds_one_bad_element_anywhere(dtype):
  # Every position of sizes around the vector widths (and their remainders).
  for n in (1, 7, 8, 9, 17, 33, 64, 70):
    base = np.random.default_rng(n).normal(size=n)
    for i in range(n):
      for bad in (np.nan, np.inf, -np.inf):
        x = base.copy()
        x[i] = bad
        tree = {"a": jnp.ones(3), "b": jnp.asarray(x, dtype)}
        assert not bool(_check(tree)), (n, i, bad)
    assert bool(_check({"a": jnp.ones(3), "b": jnp.asarray(base, dtype)}))


def test_all_finite_in_a_large_leaf_eager_and_compiled():
  x = np.random.default_rng(0).normal(size=(784, 512)).astype(np.float32)
  for i in np.random.default_rng(1).integers(0, x.size, 40):
    y = x.copy()
    y.flat[i] = np.nan
    assert not bool(_check([y])) and not bool(all_finite([jnp.asarray(y)]))
  assert bool(_check([x])) and bool(all_finite([jnp.asarray(x)]))


@pytest.mark.parametrize("sizes", [(8192, 128, 1280, 10), (40_000, 30_000, 512, 10)])
def test_all_finite_in_every_leaf_of_small_and_large_trees(sizes):
  # The first tree is checked as one concatenation, the second (over 65,536
  # elements) leaf by leaf: both find a bad value in any leaf, at either end.
  rng = np.random.default_rng(len(sizes))
  leaves = [rng.normal(size=n).astype(np.float32) for n in sizes]
  leaves[1] = leaves[1].astype(jnp.bfloat16)
  assert bool(_check(leaves))
  for which, leaf in enumerate(leaves):
    for position in (0, leaf.size - 1):
      for bad in (np.nan, np.inf, -np.inf):
        broken = list(leaves)
        broken[which] = leaf.copy()
        broken[which][position] = bad
        assert not bool(_check(broken)), (which, position, bad)


def test_all_finite_never_overflows_on_large_finite_values():
  big = jnp.full((10_000,), jnp.finfo(jnp.float32).max)
  assert bool(_check({"a": big, "b": -big, "c": big}))
  assert bool(all_finite({})) and bool(all_finite({"i": jnp.arange(5)}))


def _state(params, tx):
  return TrainState(jnp.zeros([], jnp.int32), params, {"counter": jnp.zeros([], jnp.int32)},
                    tx.init(params), jnp.zeros([], jnp.int32))


def test_a_finite_step_updates_once_and_a_skipped_one_changes_nothing():
  tx = optax.adam(0.1)
  params = {"w": jnp.arange(4.0), "b": jnp.ones(2)}
  state = _state(params, tx)
  grads = {"w": jnp.full(4, 0.5), "b": jnp.full(2, -1.0)}
  model_state = {"counter": jnp.ones([], jnp.int32)}
  step = jax.jit(apply_gradients, static_argnums=0, static_argnames="return_updates")

  updated, updates = step(tx, state, grads, model_state, finite=jnp.asarray(True),
                          return_updates=True)
  expected_updates, expected_opt = tx.update(grads, state.opt_state, params)

  def close(a, b):  # compiled vs eager rounding
    np.testing.assert_allclose(a, b, rtol=1e-6)

  jax.tree.map(close, updates, expected_updates)
  jax.tree.map(close, updated.params, optax.apply_updates(params, expected_updates))
  jax.tree.map(close, updated.opt_state, expected_opt)
  assert int(updated.opt_state[0].count) == 1  # applied exactly once
  assert (int(updated.step), int(updated.skipped), int(updated.model_state["counter"])) == (1, 0, 1)

  skipped, zeros = step(tx, state, grads, model_state, finite=jnp.asarray(False),
                        return_updates=True)
  jax.tree.map(np.testing.assert_array_equal, skipped.params, params)
  jax.tree.map(np.testing.assert_array_equal, skipped.opt_state, state.opt_state)
  jax.tree.map(lambda z: np.testing.assert_array_equal(z, np.zeros_like(z)), zeros)
  assert (int(skipped.step), int(skipped.skipped), int(skipped.model_state["counter"])) == (1, 1, 0)


def test_under_vmap_each_run_skips_on_its_own_flag():
  """A sweep's runs: a batched flag skips the runs whose step was not finite, only those."""
  tx = optax.sgd(0.1, momentum=0.9)
  runs = 3
  params = {"w": jnp.stack([jnp.arange(3.0) + r for r in range(runs)])}
  state = jax.vmap(lambda p: _state(p, tx))(params)
  grads = {"w": jnp.ones((runs, 3))}
  model_state = {"counter": jnp.ones((runs,), jnp.int32)}
  finite = jnp.asarray([True, False, True])

  batched = jax.jit(jax.vmap(lambda s, g, m, f: apply_gradients(tx, s, g, m, finite=f)))(
      state, grads, model_state, finite)
  for r in range(runs):
    one = jax.tree.map(lambda a, r=r: a[r], (state, grads, model_state))
    alone = apply_gradients(tx, *one, finite=finite[r])
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(lambda a, r=r: a[r], batched),
                 alone)
  np.testing.assert_array_equal(batched.skipped, [0, 1, 0])
  np.testing.assert_array_equal(batched.step, [1, 1, 1])


def test_skip_is_one_branch_whether_at_the_top_level_or_inside_a_scanned_epoch():
  tx = optax.sgd(0.1)
  state = _state({"w": jnp.ones(3)}, tx)

  def step(state, _=None):
    return apply_gradients(tx, state, {"w": jnp.ones(3)}, state.model_state,
                           finite=jnp.asarray(True)), None

  top = str(jax.make_jaxpr(step)(state))
  inside = str(jax.make_jaxpr(lambda s: jax.lax.scan(step, s, None, length=2))(state))
  for jaxpr in (top, inside):
    assert jaxpr.count("cond[") == 1 and "while[" not in jaxpr.replace("scan[", "")


def test_a_step_with_the_skip_stays_differentiable_forward_and_reverse():
  """Hypergradients through a train step: forward and reverse through the branch."""
  tx = optax.sgd(0.1, momentum=0.9)

  def loss_after_step(scale, finite=True):
    params = {"w": jnp.arange(3.0)}
    state = _state(params, tx)
    grads = {"w": scale * jnp.arange(1.0, 4.0)}
    new = apply_gradients(tx, state, grads, state.model_state, finite=jnp.asarray(finite))
    return jnp.sum(new.params["w"] ** 2)

  # d/ds Σ (w − 0.1·s·g)² = Σ −0.2·g·(w − 0.1·s·g), at s = 0.5.
  w, g = np.arange(3.0), np.arange(1.0, 4.0)
  expected = float(np.sum(-0.2 * g * (w - 0.05 * g)))
  for derivative in (jax.grad(loss_after_step), jax.jit(jax.grad(loss_after_step)),
                     lambda s: jax.jvp(loss_after_step, (s,), (1.0,))[1]):
    np.testing.assert_allclose(derivative(0.5), expected, rtol=1e-6)
  assert float(jax.grad(lambda s: loss_after_step(s, finite=False))(0.5)) == 0.0
