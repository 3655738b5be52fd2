"""Tests of optlab.strategies.transfer: paths and patterns, freezing (bit-exact), per-layer
learning rates against hand computations, and weight transfer."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import optim
from optlab.models import MLP
from optlab.strategies.transfer import (
  freeze,
  label_params,
  match_paths,
  parameter_paths,
  per_layer_learning_rates,
  train_only,
  transfer_weights,
)
from optlab.train import fit


def _params(model):
  return nnx.state(model, nnx.Param)


def _flat(tree):
  return {"/".join(str(getattr(k, "key", getattr(k, "name", k))) for k in path
                   if getattr(k, "name", None) != "value"): np.asarray(leaf)
          for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _bits(a):
  return np.asarray(a).view(np.uint32)


@pytest.fixture(scope="module")
def data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(96, 6)).astype(np.float32)
  y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 0.5).astype(np.int32)
  return x, y


# -- paths and patterns -------------------------------------------------------------------------


def test_parameter_paths_of_models_states_and_plain_trees():
  model = MLP(4, [8, 8], 3, normalization="batch", rngs=nnx.Rngs(0))
  assert parameter_paths(model) == [
    "head/bias", "head/kernel", "layers/0/bias", "layers/0/kernel", "layers/1/bias",
    "layers/1/kernel", "norms/0/bias", "norms/0/scale", "norms/1/bias", "norms/1/scale"]
  assert parameter_paths(_params(model)) == parameter_paths(model)
  assert parameter_paths({"a": [1.0, {"b": 2.0}]}) == ["a/0", "a/1/b"]


def test_glob_prefix_and_regex_patterns():
  tree = {"layers": {1: {"w": 0.0}, 10: {"w": 0.0}}, "head": {"w": 0.0, "b": 0.0}}
  assert match_paths(tree, "layers/1") == ["layers/1/w"]  # a whole component, not "layers/10"
  assert match_paths(tree, "layers/1*") == ["layers/1/w", "layers/10/w"]
  assert match_paths(tree, "*/w") == ["head/w", "layers/1/w", "layers/10/w"]
  assert match_paths(tree, ["head", "layers/10/"]) == ["head/b", "head/w", "layers/10/w"]
  assert match_paths(tree, "re:layers/\\d+/w") == ["layers/1/w", "layers/10/w"]
  assert match_paths(tree, re.compile(r"head/[wb]")) == ["head/b", "head/w"]
  with pytest.raises(ValueError, match="matches no parameter"):
    match_paths(tree, re.compile("head"))  # a regex matches the whole path


def test_label_params_errors_name_the_problem():
  params = _params(MLP(4, [8], 3, rngs=nnx.Rngs(0)))
  labels = label_params(params, {"head": "h", "layers/*/kernel": "k"}, default="rest")
  assert _flat(labels) == {"head/bias": "h", "head/kernel": "h", "layers/0/bias": "rest",
                           "layers/0/kernel": "k"}
  with pytest.raises(ValueError, match=r"'hed' matches no parameter; available paths: "
                     r"head/bias, head/kernel, layers/0/bias, layers/0/kernel"):
    label_params(params, {"hed": "h"}, default="rest")
  with pytest.raises(ValueError, match=r"ambiguous: parameter 'head/kernel' is matched by "
                     r"'head' \(label 'a'\) and by '\*/kernel' \(label 'b'\)"):
    label_params(params, {"head": "a", "*/kernel": "b"}, default="c")
  # The same label twice is not ambiguous.
  label_params(params, {"head": "a", "*/kernel": "a"}, default="c")
  with pytest.raises(ValueError, match="no pattern matches layers/0/bias, layers/0/kernel"):
    label_params(params, {"head": "a"})
  with pytest.raises(TypeError, match="pattern must be a str"):
    label_params(params, {3: "a"})
  with pytest.raises(ValueError, match="not a valid regular expression"):
    label_params(params, {"re:(": "a"})


def test_bad_arguments_raise_clear_errors():
  params = _params(MLP(4, [8], 3, rngs=nnx.Rngs(0)))
  with pytest.raises(ValueError, match=r"freeze: patterns: pattern 'backbone' matches no "
                     r"parameter; available paths: head/bias"):
    freeze(optax.adam(1e-3), "backbone").init(params)
  with pytest.raises(ValueError, match="train_only: patterns: pattern 'heads'"):
    train_only(optax.adam(1e-3), ["layers", "heads"]).init(params)
  with pytest.raises(TypeError, match="freeze: patterns"):
    freeze(optax.adam(1e-3), 3)
  with pytest.raises(ValueError, match="non-empty sequence"):
    freeze(optax.adam(1e-3), [])
  with pytest.raises(TypeError, match=r"tx: expected an optax\.GradientTransformation"):
    freeze("adam", "head")
  with pytest.raises(ValueError, match=r"rates\['head'\]: a learning rate .* got -0.1"):
    per_layer_learning_rates("sgd", {"head": -0.1}, default=0.1)
  with pytest.raises(ValueError, match="rates must be a non-empty mapping"):
    per_layer_learning_rates("sgd", {})
  with pytest.raises(ValueError, match=r"adamm"):
    per_layer_learning_rates("adamm", {"head": 0.1})
  with pytest.raises(ValueError, match="no pattern matches layers/0/bias"):
    per_layer_learning_rates("sgd", {"head": 0.1}).init(params)  # no default
  with pytest.raises(ValueError, match="ambiguous"):
    per_layer_learning_rates("sgd", {"head": 0.1, "*/bias": 0.2}, default=0.0).init(params)


# -- freezing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("make_tx", [
  lambda: optax.adamw(3e-2, weight_decay=0.5),
  lambda: optim.get("adamw", learning_rate=3e-2, weight_decay=0.05),
], ids=["optax.adamw", "optlab.adamw"])
def test_frozen_parameters_do_not_change_by_a_single_bit(data, make_tx):
  model = MLP(6, [16, 16], 3, rngs=nnx.Rngs(1))
  before = _flat(_params(model))
  tx = freeze(make_tx(), ["layers/0", "re:layers/1/b.*"])
  result = fit(model, tx, data, epochs=8, batch_size=16, progress=False)
  assert result.state.step == 8 * 6
  after = _flat(_params(result.model))
  frozen = {"layers/0/bias", "layers/0/kernel", "layers/1/bias"}
  for path in before:
    if path in frozen:
      np.testing.assert_array_equal(_bits(after[path]), _bits(before[path]), err_msg=path)
    else:
      assert not np.array_equal(after[path], before[path]), path
  # No optimizer state for the frozen leaves: Adam's moments hold only the trainable ones.
  moments = sum(np.size(x) for x in jax.tree.leaves(result.state.opt_state)
                if np.ndim(x) > 0)
  trainable = sum(np.size(v) for k, v in before.items() if k not in frozen)
  assert moments == 2 * trainable


def test_train_only_is_a_linear_probe(data):
  model = MLP(6, [16], 3, rngs=nnx.Rngs(2))
  before = _flat(_params(model))
  result = fit(model, train_only(optax.adam(1e-2), "head"), data, epochs=3, batch_size=32,
               progress=False)
  after = _flat(_params(result.model))
  for path in ("layers/0/bias", "layers/0/kernel"):
    np.testing.assert_array_equal(_bits(after[path]), _bits(before[path]))
  assert not np.array_equal(after["head/kernel"], before["head/kernel"])


# -- per-layer learning rates -------------------------------------------------------------------


def _random_like(tree, seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda p: jnp.asarray(rng.normal(size=p.shape), jnp.float32), tree)


def test_per_layer_sgd_updates_are_exactly_lr_times_gradient():
  params = _params(MLP(4, [8, 8], 3, rngs=nnx.Rngs(0)))
  rates = {"layers/0": 1e-3, "layers/1": 0.0, "head": 0.5}
  tx = per_layer_learning_rates("sgd", rates)
  state, update = tx.init(params), jax.jit(tx.update)
  for step in range(3):
    grads = _random_like(params, step)
    updates, state = update(grads, state, params)
    g, u = _flat(grads), _flat(updates)
    for path in g:
      lr = next(r for p, r in rates.items() if path.startswith(p + "/"))
      np.testing.assert_array_equal(u[path], np.float32(-lr) * g[path], err_msg=path)


def test_per_layer_adam_matches_a_hand_computation():
  params = _params(MLP(4, [8], 3, rngs=nnx.Rngs(0)))
  b1, b2, eps = 0.9, 0.999, 1e-8
  lrs = {"head": 1e-2, "layers": 1e-4}
  tx = per_layer_learning_rates(optax.adam, {"head": 10.0}, learning_rate=1e-3, b1=b1, b2=b2,
                                eps=eps)  # multipliers: head 10 × 1e-3, the rest 1 × 1e-3
  lrs = {"head": 1e-2, "layers": 1e-3}
  state, update = tx.init(params), jax.jit(tx.update)
  m = {k: np.zeros_like(v) for k, v in _flat(params).items()}
  v = {k: np.zeros_like(x) for k, x in _flat(params).items()}
  for t in range(1, 4):
    grads = _random_like(params, 10 + t)
    updates, state = update(grads, state, params)
    g, u = _flat(grads), _flat(updates)
    for path in g:
      m[path] = b1 * m[path] + (1 - b1) * g[path]
      v[path] = b2 * v[path] + (1 - b2) * g[path] ** 2
      m_hat, v_hat = m[path] / (1 - b1**t), v[path] / (1 - b2**t)
      expected = -lrs[path.split("/")[0]] * m_hat / (np.sqrt(v_hat) + eps)
      np.testing.assert_allclose(u[path], expected, rtol=2e-5, atol=1e-9, err_msg=path)


def test_per_layer_rates_accept_schedules_and_a_zero_freezes():
  params = _params(MLP(4, [8], 3, rngs=nnx.Rngs(0)))
  schedule = optax.linear_schedule(0.1, 0.0, 4)
  tx = per_layer_learning_rates(optax.sgd, {"head": schedule, "layers": 0})
  state = tx.init(params)
  assert all(np.size(x) <= 1 for x in jax.tree.leaves(state))  # sgd, frozen: no buffers
  grads = jax.tree.map(jnp.ones_like, params)
  for expected in (0.1, 0.075):
    updates, state = tx.update(grads, state, params)
    u = _flat(updates)
    np.testing.assert_allclose(u["head/bias"], -expected, rtol=1e-6)
    assert not np.any(u["layers/0/kernel"])


# -- weight transfer ----------------------------------------------------------------------------


def test_transfer_copies_the_backbone_exactly_and_keeps_the_new_head():
  source = MLP(6, [16, 8], 5, normalization="batch", rngs=nnx.Rngs(0))
  stats = nnx.state(source, nnx.BatchStat)  # batch statistics away from their initial values
  nnx.update(source, jax.tree.map(lambda a: a + 0.5, stats))
  target = MLP(6, [16, 8], 2, normalization="batch", rngs=nnx.Rngs(1))
  head_before = _flat(_params(target))["head/kernel"].copy()
  copied = transfer_weights(source, target)
  assert "head/kernel" not in copied and "norms/0/mean" in copied and "layers/1/kernel" in copied
  s = _flat(nnx.state(source, nnx.Any(nnx.Param, nnx.BatchStat)))
  t = _flat(nnx.state(target, nnx.Any(nnx.Param, nnx.BatchStat)))
  assert sorted(copied) == sorted(k for k in s if not k.startswith("head"))
  for path in copied:
    np.testing.assert_array_equal(_bits(t[path]), _bits(s[path]), err_msg=path)
  np.testing.assert_array_equal(t["head/kernel"], head_before)
  # A copy, not a shared buffer: training the target leaves the source alone.
  assert t["layers/0/kernel"] is not s["layers/0/kernel"]
  only_first = transfer_weights(source, MLP(6, [16, 4], 2, rngs=nnx.Rngs(2)), include="layers/0",
                                exclude=None, variables=nnx.Param)
  assert only_first == ["layers/0/bias", "layers/0/kernel"]


def test_transfer_refuses_mismatches():
  source = MLP(6, [16, 8], 5, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"shape mismatch at 'layers/1/bias': source \(8,\), "
                     r"target \(4,\)"):
    transfer_weights(source, MLP(6, [16, 4], 5, rngs=nnx.Rngs(1)))
  with pytest.raises(ValueError, match="the target has no variable 'layers/1/bias'"):
    transfer_weights(source, MLP(6, [16], 5, rngs=nnx.Rngs(1)))
  with pytest.raises(ValueError, match=r"exclude: pattern 'classifier' matches no parameter; "
                     r"available paths: head/bias"):
    transfer_weights(source, MLP(6, [16, 8], 3, rngs=nnx.Rngs(1)), exclude="classifier")
  with pytest.raises(ValueError, match="shape mismatch at 'head/bias'"):
    transfer_weights(source, MLP(6, [16, 8], 3, rngs=nnx.Rngs(1)), exclude=None)
  with pytest.raises(TypeError, match=r"target must be an nnx\.Module"):
    transfer_weights(source, _params(source))
