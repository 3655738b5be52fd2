"""Tests of optlab.structure.pruning: masks, schedule, the prune transform, reports."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import models, optim
from optlab.structure import pruning
from optlab.structure.pruning import (
    magnitude_masks,
    parameter_paths,
    polynomial_sparsity_schedule,
    prune,
    rewind,
    sparsity_report,
)
from optlab.train.state import split_model


def _mlp_params(seed=0, hidden=(16,)):
  return split_model(models.MLP(8, hidden, 4, rngs=nnx.Rngs(seed)))[2]


def _count_false(tree) -> int:
  return int(sum(np.size(m) - np.count_nonzero(np.asarray(m)) for m in jax.tree.leaves(tree)))


def test_paths_are_the_same_for_nnx_state_and_plain_dicts():
  params = _mlp_params()
  paths = parameter_paths(params)
  assert paths == ["head/bias", "head/kernel", "layers/0/bias", "layers/0/kernel"]
  plain = {"head": {"bias": 0, "kernel": 0}, "layers": [{"bias": 0, "kernel": 0}]}
  assert parameter_paths(jax.tree.map(jnp.asarray, plain)) == paths


@pytest.mark.parametrize("optimizer", ["adam", "heavy_ball", "adamw"])
def test_pruned_weights_stay_exactly_zero_through_training(optimizer, getkey):
  params = _mlp_params()
  tx = optax.chain(optim.get(optimizer, learning_rate=0.05), prune(0.7))
  state = tx.init(params)

  @jax.jit
  def step(params, state, key):
    grads = jax.tree.map(lambda p: jax.random.normal(key, p.shape), params)
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params, state = step(params, state, getkey())
  masks = pruning.masks_of(state)
  first = jax.tree.map(np.asarray, params)
  for _ in range(200):
    params, state = step(params, state, getkey())
  for p, m, p0 in zip(jax.tree.leaves(params), jax.tree.leaves(masks), jax.tree.leaves(first),
                      strict=True):
    p, m = np.asarray(p), np.asarray(m)
    assert np.all(p[~m] == 0.0)  # exactly zero, bit for bit
    assert np.all(np.signbit(p[~m]) == np.signbit(np.zeros_like(p[~m])))  # +0, not -0
    assert np.all(p[m] != p0[m])  # the kept weights trained
  report = sparsity_report(params, masks)
  kernels = report["layers"]["layers/0/kernel"], report["layers"]["head/kernel"]
  assert [k["nonzero"] for k in kernels] == [128 - 90, 64 - 45]  # round(0.7 · n) pruned
  assert report["pruned"] == 90 + 45


def test_fit_trains_with_a_gradual_schedule_and_keeps_the_mask():
  from optlab import data
  from optlab.train import fit

  digits = data.digits(flatten=True)
  x = (np.asarray(digits.x) / 16.0).astype(np.float32)[:512]
  y = np.asarray(digits.y).astype(np.int32)[:512]
  model = models.MLP(64, (32,), 10, rngs=nnx.Rngs(0))
  schedule = polynomial_sparsity_schedule(0.8, begin_step=8, end_step=40, frequency=8)
  tx = optax.chain(optim.get("adam", learning_rate=3e-3), prune(schedule))
  result = fit(model, tx, (x, y), epochs=6, batch_size=64, progress=False)
  masks = pruning.masks_of(result.state.opt_state)
  report = sparsity_report(result.state.params, masks)
  assert report["layers"]["layers/0/kernel"]["nonzero"] == 2048 - round(0.8 * 2048)
  assert report["layers"]["head/kernel"]["nonzero"] == 320 - 256
  assert report["layers"]["layers/0/bias"]["sparsity"] < 0.5  # biases are not pruned
  params = nnx.state(result.model, nnx.Param)
  for p, m in zip(jax.tree.leaves(params), jax.tree.leaves(masks), strict=True):
    assert np.all(np.asarray(p)[~np.asarray(m)] == 0.0)
  assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_layer_and_global_scopes_prune_exact_counts():
  params = {"a": {"kernel": jnp.arange(1.0, 13.0).reshape(3, 4)},  # 12 weights, 1..12
            "b": {"kernel": 100.0 + jnp.arange(8.0).reshape(4, 2), "bias": jnp.zeros(2)}}
  layer = magnitude_masks(params, 0.5)
  assert _count_false(layer["a"]) == 6 and _count_false(layer["b"]["kernel"]) == 4
  assert np.asarray(layer["b"]["bias"]).all()  # biases are not selected by default
  np.testing.assert_array_equal(np.asarray(layer["a"]["kernel"]).ravel(),
                                np.arange(1, 13) > 6)
  glob = magnitude_masks(params, 0.5, scope="global")  # 10 of 20: all of a's smallest
  assert _count_false(glob["a"]) == 10 and _count_false(glob["b"]) == 0
  np.testing.assert_array_equal(np.asarray(glob["a"]["kernel"]).ravel(), np.arange(1, 13) > 10)
  # ⌊s·n + ½⌋ exactly, ties broken by position (all-equal weights).
  flat = {"w": jnp.ones((7, 3))}
  for s in (0.0, 0.1, 0.25, 0.5, 0.9, 0.99):
    assert _count_false(magnitude_masks(flat, s)) == int(np.floor(s * 21 + 0.5))


def test_previous_masks_make_pruning_monotone():
  w = {"w": jnp.array([[5.0, 1.0, 3.0, 4.0]])}
  first = magnitude_masks(w, 0.25)  # prunes 1.0
  np.testing.assert_array_equal(first["w"], [[True, False, True, True]])
  grown = {"w": jnp.array([[5.0, 9.0, 3.0, 4.0]])}  # the pruned weight would now be largest
  again = magnitude_masks(grown, 0.5, previous=first)
  np.testing.assert_array_equal(again["w"], [[True, False, False, True]])


def test_structured_pruning_zeros_whole_neurons_and_channels():
  rng = np.random.default_rng(0)
  params = {"head": {"bias": np.zeros(4, np.float32),
                     "kernel": rng.normal(size=(10, 4)).astype(np.float32)},
            "layers": [{"bias": np.ones(10, np.float32),
                        "kernel": rng.normal(size=(8, 10)).astype(np.float32)}]}
  masks = magnitude_masks(params, 0.3, structure="neurons", where="layers/*/kernel")
  kernel = np.asarray(masks["layers"][0]["kernel"])
  dead = ~kernel.all(axis=0)
  assert dead.sum() == 3 and np.all(~kernel[:, dead])  # whole columns (output units)
  np.testing.assert_array_equal(np.asarray(masks["layers"][0]["bias"]), ~dead)  # + their bias
  assert np.asarray(masks["head"]["kernel"]).all()
  norms = np.linalg.norm(np.asarray(params["layers"][0]["kernel"]), axis=0)
  assert norms[dead].max() <= norms[~dead].min()  # the smallest-norm neurons went
  pruned = pruning.apply_masks(params, masks)
  h = np.maximum(np.ones((2, 8)) @ np.asarray(pruned["layers"][0]["kernel"])
                 + np.asarray(pruned["layers"][0]["bias"])[None], 0.0)
  assert np.all(h[:, dead] == 0.0)  # the neurons are really gone

  conv = {"conv": {"kernel": rng.normal(size=(3, 3, 2, 8)).astype(np.float32),
                   "bias": np.ones(8, np.float32)},
          "dense": {"kernel": np.ones((8, 4), np.float32)}}
  masks = magnitude_masks(conv, 0.25, structure="channels")  # default: kernels with ndim ≥ 3
  k = np.asarray(masks["conv"]["kernel"])
  dead = ~k.reshape(-1, 8).all(axis=0)
  assert dead.sum() == 2 and np.all(~k[..., dead])
  assert np.asarray(masks["dense"]["kernel"]).all()


def test_schedule_matches_zhu_and_gupta_by_hand():
  s_f, s_i, t0, end, dt = 0.9, 0.1, 10, 70, 20  # n Δt = 60, n = 3
  schedule = polynomial_sparsity_schedule(s_f, t0, end, initial_sparsity=s_i, frequency=dt)
  by_hand = {t: s_f + (s_i - s_f) * (1 - (t - t0) / 60) ** 3 for t in (10, 30, 50, 70)}
  for t in range(0, 100):
    last = max((p for p in by_hand if p <= t), default=None)
    expected = 0.0 if last is None else by_hand[last]
    assert float(schedule(t)) == pytest.approx(expected, abs=1e-6), t
    assert bool(schedule.is_pruning_step(t)) == (t in by_hand), t
  # end_step off the Δt grid is one more pruning step, at s_f.
  odd = polynomial_sparsity_schedule(0.5, 0, 25, frequency=10)
  assert [t for t in range(40) if odd.is_pruning_step(t)] == [0, 10, 20, 25]
  assert float(odd(24)) == pytest.approx(0.5 - 0.5 * (1 - 20 / 25) ** 3)
  assert float(odd(25)) == pytest.approx(0.5)


def test_prune_follows_the_schedule_inside_jit():
  params = {"w": jax.random.normal(jax.random.key(0), (20, 10))}
  schedule = polynomial_sparsity_schedule(0.8, 2, 8, frequency=2)
  tx = optax.chain(optax.sgd(0.01, momentum=0.9), prune(schedule))
  state = tx.init(params)
  step = jax.jit(lambda p, s: tx.update(jax.tree.map(jnp.ones_like, p), s, p))
  for t in range(12):
    updates, state = step(params, state)
    params = optax.apply_updates(params, updates)
    expected = int(np.floor(float(schedule(t)) * 200 + 0.5))
    assert int(np.sum(np.asarray(params["w"]) == 0.0)) == expected, t


def test_one_shot_schedule_and_masks_with_sparsity():
  w = {"w": jnp.arange(1.0, 11.0).reshape(2, 5)}
  one_shot = pruning.PolynomialSparsity(0.3, 4, 4)  # begin == end: once, at step 4, to s_f
  assert [float(one_shot(t)) for t in (3, 4, 9)] == pytest.approx([0.0, 0.3, 0.3])
  assert [bool(one_shot.is_pruning_step(t)) for t in (3, 4, 5)] == [False, True, False]
  start = {"w": jnp.array([[True] * 4 + [False], [True] * 5])}  # 5.0 already pruned
  tx = prune(0.3, masks=start)
  state = tx.init(w)
  _, state = tx.update(jax.tree.map(jnp.zeros_like, w), state, w)
  kept = np.asarray(pruning.masks_of(state)["w"]).ravel()
  np.testing.assert_array_equal(kept, [False, False, True, True, False] + [True] * 5)
  with pytest.raises(TypeError, match="begin_step"):
    pruning.PolynomialSparsity(0.5, 1.5, 4)


def test_sparsity_can_be_vmapped():
  w = {"w": jax.random.normal(jax.random.key(0), (10, 10))}
  levels = jnp.array([0.0, 0.5, 0.9])
  masks = jax.vmap(lambda s: magnitude_masks(w, s, scope="global"))(levels)
  assert [100 - int(m.sum()) for m in masks["w"]] == [0, 50, 90]


def test_rewind_and_fixed_masks():
  early = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0]])}
  masks = {"w": jnp.array([[True, False], [False, True]])}
  np.testing.assert_array_equal(rewind(early, masks)["w"], [[1.0, 0.0], [0.0, 4.0]])
  tx = optax.chain(optax.adam(0.1), prune(masks=masks))
  state = tx.init(early)
  updates, state = tx.update({"w": jnp.ones((2, 2))}, state, early)
  after = np.asarray(optax.apply_updates(early, updates)["w"])
  assert after[0, 1] == 0.0 and after[1, 0] == 0.0 and after[0, 0] != 1.0
  with pytest.raises(ValueError, match="rewind"):
    rewind(early, {"v": masks["w"]})


def test_sparsity_report_counts():
  params = {"a": jnp.array([[0.0, 1.0], [2.0, 0.0]]), "b": jnp.array([0.0, 3.0])}
  r = sparsity_report(params, {"a": jnp.array([[False, True], [True, False]]),
                               "b": jnp.array([True, True])})
  assert r["size"] == 6 and r["nonzero"] == 3 and r["sparsity"] == 0.5 and r["pruned"] == 2
  assert r["layers"]["a"] == {"size": 4, "nonzero": 2, "sparsity": 0.5, "pruned": 2}


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_sparsity_outside_the_unit_interval_raises(bad):
  with pytest.raises(ValueError, match=r"sparsity.*\[0, 1\)"):
    prune(bad)
  with pytest.raises(ValueError, match=r"sparsity.*\[0, 1\)"):
    magnitude_masks({"w": jnp.ones((2, 2))}, bad)
  with pytest.raises(ValueError, match=r"final_sparsity.*\[0, 1\)"):
    polynomial_sparsity_schedule(bad, 0, 10)


def test_bad_arguments_raise_clear_errors():
  w = {"w": jnp.ones((2, 2))}
  with pytest.raises(TypeError, match="sparsity"):
    prune("0.5")
  with pytest.raises(ValueError, match="end_step"):
    polynomial_sparsity_schedule(0.5, 10, 5)
  with pytest.raises(ValueError, match="begin_step"):
    polynomial_sparsity_schedule(0.5, -1, 5)
  with pytest.raises(ValueError, match="frequency"):
    polynomial_sparsity_schedule(0.5, 0, 5, frequency=0)
  with pytest.raises(ValueError, match="initial_sparsity"):
    polynomial_sparsity_schedule(0.5, 0, 5, initial_sparsity=0.6)
  with pytest.raises(ValueError, match="power"):
    polynomial_sparsity_schedule(0.5, 0, 5, power=0)
  with pytest.raises(ValueError, match="scope"):
    prune(0.5, scope="model")
  with pytest.raises(ValueError, match="structure"):
    magnitude_masks(w, 0.5, structure="filters")
  with pytest.raises(ValueError, match=r"'head/kernal'.*matches no parameter"):
    prune(0.5, where=["layers/*/kernel", "head/kernal"]).init(_mlp_params())
  with pytest.raises(ValueError, match="update needs params"):
    tx = prune(0.5)
    tx.update(w, tx.init(w))
  with pytest.raises(ValueError, match="masks must have the structure"):
    prune(0.5, masks={"v": jnp.ones((2, 2), bool)}).init(w)
