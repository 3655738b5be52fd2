"""Tests of optlab.strategies.multitask: PCGrad's projection, the weightings' formulas and
dynamics, the multi-task step's gradient, fit_multitask, and the argument checks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab.strategies import multitask as mt


def _model(seed: int = 0, hidden: int = 8) -> mt.MultiTaskModel:
  rngs = nnx.Rngs(seed)
  trunk = nnx.Sequential(nnx.Linear(3, hidden, rngs=rngs), jax.nn.tanh)
  return mt.MultiTaskModel(trunk, {"a": nnx.Linear(hidden, 3, rngs=rngs),
                                   "b": nnx.Linear(hidden, 2, rngs=rngs)})


def _data(n: int = 32, seed: int = 0):
  x = np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)
  y = {"a": (np.digitize(x[:, 0], [-0.5, 0.5])).astype(np.int32),
       "b": (x[:, 1] > 0).astype(np.int32)}
  return x, y


def _task_gradients(model, x, y):
  """Per-task gradients of the model parameters, by hand (one jax.grad per task)."""
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(p, task):
    out = nnx.merge(graphdef, p, rest, copy=True)(x)[task]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(out, y[task]))

  grad = jax.jit(jax.grad(loss), static_argnums=1)  # eagerly: hundreds of ops, one by one
  return {t: grad(params, t) for t in model.tasks}, params


# ------------------------------------------------------------------------------- PCGrad

# Jitted: eager, the unrolled T × T loop under vmap dispatches (and first compiles) each op
# one by one, ~1 s per task count; one compilation per shape is ~0.3 s. The doctests of
# optlab/strategies/multitask/surgery.py run both functions eagerly.
_project = jax.jit(mt.pcgrad_project)
_pcgrad = jax.jit(mt.pcgrad, static_argnames="reduction")


def test_pcgrad_projects_conflicting_gradients_exactly(key):
  g = jnp.array([[1.0, 0.0], [-1.0, 1.0]])
  projected = np.asarray(_project(g, key))
  # g1 − (g1·g2/‖g2‖²) g2 = (1, 0) + ½(−1, 1); g2 − (g2·g1/‖g1‖²) g1 = (−1, 1) + (1, 0).
  np.testing.assert_allclose(projected, [[0.5, 0.5], [0.0, 1.0]], atol=1e-7)
  assert projected[0] @ np.asarray(g[1]) >= -1e-7 and projected[1] @ np.asarray(g[0]) >= -1e-7
  np.testing.assert_allclose(_pcgrad(g, key), [0.5, 1.5], atol=1e-7)
  np.testing.assert_allclose(_pcgrad(g, key, reduction="mean"), [0.25, 0.75], atol=1e-7)


def test_pcgrad_leaves_agreeing_gradients_unchanged(key):
  g = jnp.array([[1.0, 2.0], [0.5, -0.1], [3.0, 0.0]])  # every pair has g_i·g_j > 0
  np.testing.assert_array_equal(_project(g, key), g)
  np.testing.assert_allclose(_pcgrad(g, key), g.sum(0), rtol=1e-6)


def test_pcgrad_on_pytrees_removes_conflicts_for_every_order(getkey):
  rng = np.random.default_rng(0)
  project = _project
  for _ in range(2):
    tree = {"w": jnp.asarray(rng.normal(size=(4, 3, 2)), jnp.float32),
            "b": jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)}
    flat = np.concatenate([np.asarray(tree["b"]), np.asarray(tree["w"]).reshape(4, -1)], 1)
    out = project(tree, getkey())
    assert jax.tree.map(jnp.shape, out) == jax.tree.map(jnp.shape, tree)
    proj = np.concatenate([np.asarray(out["b"]), np.asarray(out["w"]).reshape(4, -1)], 1)
    # With two tasks the result is order-free; with more, each g_i^PC is projected off
    # every conflicting g_j met, so at least the last one in its order is not in conflict.
    for i in range(4):
      if all(flat[i] @ flat[j] >= 0 for j in range(4)):
        np.testing.assert_allclose(proj[i], flat[i], rtol=1e-6)
  two = {"w": jnp.asarray(rng.normal(size=(2, 7)), jnp.float32)}
  two["w"] = two["w"].at[1].set(-two["w"][0] + 0.3)
  p = np.asarray(project(two, getkey())["w"])
  g = np.asarray(two["w"])
  assert p[0] @ g[1] >= -1e-5 and p[1] @ g[0] >= -1e-5


def test_pcgrad_follows_algorithm_1_with_three_tasks(key):
  g = np.array([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0], [-1.0, -1.0, 1.0]], np.float32)
  orders = np.argsort(np.asarray(jax.random.uniform(key, (3, 3))), axis=1)
  expected = []
  for i in range(3):  # the same orders pcgrad_project draws
    order = orders[i]
    gi = g[i].copy()
    for j in order:
      if j != i and gi @ g[j] < 0:
        gi = gi - (gi @ g[j]) / (g[j] @ g[j]) * g[j]
    expected.append(gi)
  np.testing.assert_allclose(_project(jnp.asarray(g), key), expected, atol=1e-6)


def test_pcgrad_rejects_bad_input(key):
  with pytest.raises(ValueError, match="reduction"):
    mt.pcgrad(jnp.ones((2, 3)), key, reduction="max")
  with pytest.raises(ValueError, match="leading task axis"):
    mt.pcgrad_project({"a": jnp.ones((2, 3)), "b": jnp.ones((3, 3))}, key)


# ---------------------------------------------------------------------------- weightings


def test_fixed_weights_are_exact_in_the_step():
  model = _model()
  x, y = _data()
  grads, params = _task_gradients(model, x, y)
  w = mt.fixed({"b": 2.0, "a": 0.3})  # by name, in any order
  np.testing.assert_array_equal(w.init(("a", "b"))[1]["weights"],
                                mt.fixed([0.3, 2.0]).init(("a", "b"))[1]["weights"])
  graphdef, _, state = mt.init_multitask_state(_model(), optax.sgd(1.0), w)
  step = jax.jit(mt.make_multitask_step(graphdef, optax.sgd(1.0), ("a", "b"), weighting=w))
  new_state, logs = step(state, x, y)
  np.testing.assert_allclose(logs["weights"], [0.3, 2.0], rtol=1e-6)
  expected = jax.tree.map(lambda p, ga, gb: p - 0.3 * ga - 2.0 * gb, params, grads["a"],
                          grads["b"])
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6),
               new_state.params["model"], expected)
  loss_a, loss_b = np.asarray(logs["task_losses"])
  assert float(logs["loss"]) == pytest.approx(0.3 * loss_a + 2.0 * loss_b, rel=1e-6)


def test_pcgrad_step_applies_the_projection_of_the_weighted_task_gradients(key):
  model = _model()
  x, y = _data()
  grads, params = _task_gradients(model, x, y)
  graphdef, _, state = mt.init_multitask_state(_model(), optax.sgd(1.0), mt.fixed([0.5, 1.5]))
  step = mt.make_multitask_step(graphdef, optax.sgd(1.0), ("a", "b"),
                                weighting=mt.fixed([0.5, 1.5]), surgery=mt.pcgrad, key=key)
  new_state, _ = jax.jit(step)(state, x, y)
  stacked = jax.tree.map(lambda ga, gb: jnp.stack([0.5 * ga, 1.5 * gb]), grads["a"], grads["b"])
  combined = _pcgrad(stacked, jax.random.fold_in(key, 0))
  expected = jax.tree.map(lambda p, g: p - g, params, combined)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6),
               new_state.params["model"], expected)


@pytest.mark.parametrize("convention,scale,reg", [("classification", 1.0, 0.5),
                                                  ("regression", 0.5, 0.5), ("simple", 1.0, 1.0)])
def test_uncertainty_objective_equals_its_formula(convention, scale, reg):
  w = mt.uncertainty_weighting(convention)
  learnable, state = w.init(("a", "b"))
  s = jnp.array([0.4, -1.2])
  losses = jnp.array([0.7, 2.5])
  value = w.objective(losses, {"log_variance": s}, state)
  expected = np.sum(scale * np.exp(-np.asarray(s)) * np.asarray(losses) + reg * np.asarray(s))
  assert float(value) == pytest.approx(float(expected), rel=1e-6)
  np.testing.assert_allclose(jax.grad(w.objective)(losses, {"log_variance": s}, state),
                             scale * np.exp(-np.asarray(s)), rtol=1e-6)
  np.testing.assert_array_equal(learnable["log_variance"], [0.0, 0.0])


def test_uncertainty_weights_learn_toward_their_optimum():
  # s_i moves toward log(2 L_i) (classification form): up for the task with the larger loss.
  model = _model()
  x, y = _data()
  w = mt.uncertainty_weighting()
  graphdef, _, state = mt.init_multitask_state(model, optax.sgd(0.1), w)
  step = jax.jit(mt.make_multitask_step(graphdef, optax.sgd(0.1), ("a", "b"), weighting=w))
  state, logs = step(state, x, y)
  losses = np.asarray(logs["task_losses"])
  s = np.asarray(state.params["weighting"]["log_variance"])
  np.testing.assert_allclose(s, 0.1 * (losses - 0.5), rtol=1e-5)  # −lr ∂f/∂s = lr (L − ½)
  for _ in range(30):
    state, logs = step(state, x, y)
  s = np.asarray(state.params["weighting"]["log_variance"])
  target = np.log(2 * np.asarray(logs["task_losses"]))
  assert np.all(np.abs(s - target) < np.abs(0.0 - target))
  assert np.all(np.asarray(logs["weights"]) != 1.0)  # the effective weights exp(−s) moved


def test_gradnorm_weights_sum_to_the_task_count_and_favour_the_slower_task():
  w = mt.gradnorm(alpha=1.5, learning_rate=0.05)
  _, state = w.init(("fast", "slow"))
  update = jax.jit(w.update)  # 20 updates: one compilation, not 20 × the eager ops
  grads = {"trunk": {"kernel": jnp.ones((2, 3, 3))}}  # equal gradient norms for both tasks
  state = update(state, jnp.array([1.0, 1.0]), grads)  # records L(0)
  np.testing.assert_allclose(state.initial_losses, [1.0, 1.0])
  for t in range(20):
    losses = jnp.array([0.9 ** (t + 1), 0.99 ** (t + 1)])  # "fast" trains faster
    state = update(state, losses, grads)
    assert float(jnp.sum(state.weights)) == pytest.approx(2.0, rel=1e-6)
  assert state.weights[1] > 1.2 and state.weights[0] < 0.8
  # α = 0 equalizes the gradient norms: the task with the larger gradient gets less weight.
  w0 = mt.gradnorm(alpha=0.0, learning_rate=0.05)
  _, state = w0.init(("a", "b"))
  update = jax.jit(w0.update)
  big = {"trunk": jnp.stack([jnp.ones(4), 3 * jnp.ones(4)])}
  for _ in range(20):
    state = update(state, jnp.array([1.0, 1.0]), big)
  assert state.weights[0] > state.weights[1]
  assert float(jnp.sum(state.weights)) == pytest.approx(2.0, rel=1e-6)


def test_gradnorm_in_the_step_uses_the_shared_layer():
  model = _model()
  x, y = _data()
  w = mt.gradnorm(alpha=1.0, shared_path=("trunk", "layers", 0, "kernel"))
  graphdef, _, state = mt.init_multitask_state(model, optax.adam(1e-2), w)
  step = jax.jit(mt.make_multitask_step(graphdef, optax.adam(1e-2), ("a", "b"), weighting=w))
  for _ in range(3):
    state, _ = step(state, x, y)
  ws = state.model_state["weighting"]
  assert float(jnp.sum(ws.weights)) == pytest.approx(2.0, rel=1e-6)
  assert not np.allclose(ws.weights, 1.0) and int(ws.count) == 3
  bad = mt.gradnorm(shared_path=("trunk", "nope"))
  graphdef, _, state = mt.init_multitask_state(_model(), optax.sgd(0.1), bad)
  with pytest.raises(ValueError, match=r"trunk/nope.*trunk/layers/0/kernel"):  # when traced
    jax.eval_shape(mt.make_multitask_step(graphdef, optax.sgd(0.1), ("a", "b"), weighting=bad),
                   state, x, y)


# ------------------------------------------------------------------------------ fit, model


def test_fit_multitask_trains_and_logs_every_task():
  x, y = _data(96)
  result = mt.fit_multitask(_model(), optax.adam(3e-2), (x, y), validation=(x, y),
                            weighting=mt.uncertainty_weighting(), epochs=8, batch_size=32)
  first, last = result.history[0], result.history[-1]
  assert last["val_a_accuracy"] > 0.7 and last["val_b_accuracy"] > 0.8
  assert last["train_loss"] < first["train_loss"]
  assert {"weight_a", "weight_b", "train_a_loss", "val_b_loss"} <= set(last)
  epochs, acc = result.curve("val_a_accuracy")
  assert epochs.tolist() == list(range(8)) and acc.shape == (8,)
  out = result.model(jnp.asarray(x[:4]))
  assert out["a"].shape == (4, 3) and out["b"].shape == (4, 2)


def test_fit_multitask_with_pcgrad_is_reproducible():
  x, y = _data(64)
  run = functools.partial(mt.fit_multitask, tx=optax.sgd(0.1), train=(x, y),
                          surgery=mt.pcgrad, epochs=2, batch_size=16, seed=3)
  a, b = run(_model()), run(_model())
  jax.tree.map(np.testing.assert_array_equal, a.state.params, b.state.params)


def test_single_task_model_is_the_one_head_case():
  x, y = _data(64)
  rngs = nnx.Rngs(0)
  model = mt.MultiTaskModel(nnx.Linear(3, 4, rngs=rngs), {"a": nnx.Linear(4, 3, rngs=rngs)})
  result = mt.fit_multitask(model, optax.adam(1e-2), (x, {"a": y["a"]}), epochs=1,
                            batch_size=16)
  assert result.history[-1]["weight_a"] == 1.0


# ----------------------------------------------------------------------------- bad input


def test_invalid_arguments_raise_clear_errors():
  with pytest.raises(ValueError, match=r"weights must be finite numbers ≥ 0.*-1"):
    mt.fixed({"a": 1.0, "b": -1.0})
  with pytest.raises(ValueError, match=r"unknown: \['c'\]"):
    mt.fixed({"a": 1.0, "c": 1.0}).init(("a", "b"))
  with pytest.raises(ValueError, match="3 weights for 2 tasks"):
    mt.fixed([1.0, 1.0, 1.0]).init(("a", "b"))
  with pytest.raises(ValueError, match=r"alpha must be a finite number ≥ 0, got -0\.5"):
    mt.gradnorm(alpha=-0.5)
  with pytest.raises(ValueError, match="learning_rate"):
    mt.gradnorm(learning_rate=0.0)
  with pytest.raises(ValueError, match="convention must be one of"):
    mt.uncertainty_weighting("gaussian")
  with pytest.raises(ValueError, match="heads must be a non-empty"):
    mt.MultiTaskModel(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), {})
  with pytest.raises(TypeError, match=r"head 'a' must be an nnx\.Module"):
    mt.MultiTaskModel(nnx.Linear(3, 4, rngs=nnx.Rngs(0)), {"a": jnp.tanh})
  graphdef, _, _ = mt.init_multitask_state(_model(), optax.sgd(0.1), mt.fixed())
  with pytest.raises(ValueError, match=r"unknown: \['c'\], missing: \['b'\]"):
    mt.make_multitask_step(graphdef, optax.sgd(0.1), ("a", "b"), {"a": "cross_entropy",
                                                                  "c": "mse"})
  with pytest.raises(ValueError, match="unknown loss 'hinge'"):
    mt.make_multitask_step(graphdef, optax.sgd(0.1), ("a", "b"), "hinge")
  with pytest.raises(TypeError, match="weighting must be a Weighting"):
    mt.init_multitask_state(_model(), optax.sgd(0.1), "uncertainty")
  x, y = _data()
  with pytest.raises(ValueError, match=r"names tasks \['a'\].*\['a', 'b'\]"):
    mt.fit_multitask(_model(), optax.sgd(0.1), (x, {"a": y["a"]}), epochs=1)
  with pytest.raises(TypeError, match=r"must be \(x, \{task: y\}\)"):
    mt.fit_multitask(_model(), optax.sgd(0.1), (x, y["a"]), epochs=1)
