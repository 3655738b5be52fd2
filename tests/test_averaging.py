"""EMA and SWA of the parameters: exact averages of recorded iterates, nested states, and
evaluation at the average in `optlab.train.fit`."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import models, optim, train
from optlab.optim.averaging import averaged_params, ema, ema_params, swa, swa_params

STEPS = 12


def iterates(tx, steps=STEPS, seed=0):
  """Runs `tx` on a random quadratic in float64; returns θ_0 … θ_steps and the averages
  `averaged_params` gave after each step (index t: the average up to θ_t)."""
  rng = np.random.default_rng(seed)
  a = {"m": rng.uniform(0.5, 2.0, (2, 3)), "v": rng.uniform(0.5, 2.0, 4)}
  params = {"m": jnp.asarray(rng.normal(size=(2, 3))), "v": jnp.asarray(rng.normal(size=4))}
  state = tx.init(params)

  @jax.jit
  def step(params, state):
    g = jax.tree.map(lambda a_, p: a_ * p + 1.0, a, params)
    updates, state = tx.update(g, state, params)
    return optax.apply_updates(params, updates), state

  thetas, averages = [params], [averaged_params(params, state)]
  for _ in range(steps):
    params, state = step(params, state)
    thetas.append(params)
    averages.append(averaged_params(params, state))
  return [jax.tree.map(np.asarray, t) for t in thetas], averages, state


@pytest.mark.parametrize("debias", [False, True])
def test_ema_equals_the_average_of_the_recorded_iterates(debias):
  decay = 0.8
  with jax.enable_x64(True):
    thetas, averages, _ = iterates(ema(optim.sgd(0.1, momentum=0.9), decay, debias=debias))
  for t in range(STEPS + 1):
    for n in thetas[0]:
      if debias:  # (1−β) Σ_k β^{t−k} θ_k / (1 − β^{t+1})
        weights = (1 - decay) * decay ** np.arange(t, -1, -1.0)
        expected = sum(w * thetas[k][n] for k, w in enumerate(weights)) / (1 - decay ** (t + 1))
      else:  # E_0 = θ_0, E_k = β E_{k−1} + (1−β) θ_k
        expected = thetas[0][n]
        for k in range(1, t + 1):
          expected = decay * expected + (1 - decay) * thetas[k][n]
      np.testing.assert_allclose(averages[t][n], expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(("start_step", "every_k"), [(0, 1), (3, 2), (5, 4)])
def test_swa_equals_the_mean_of_the_selected_iterates(start_step, every_k):
  with jax.enable_x64(True):
    thetas, averages, state = iterates(swa(optim.sgd(0.1, momentum=0.9), start_step, every_k))
  for t in range(STEPS + 1):
    chosen = [s for s in range(start_step, t + 1, every_k)]
    for n in thetas[0]:
      expected = (np.mean([thetas[s][n] for s in chosen], axis=0) if chosen
                  else thetas[t][n])  # before the first averaged iterate: the iterate
      np.testing.assert_allclose(averages[t][n], expected, rtol=1e-13, atol=1e-14)
  # The state itself holds the iterates before the current one.
  assert int(state[1].num_averaged) == len(range(start_step, STEPS, every_k))


def test_average_is_exact_whatever_follows_in_the_chain():
  """The average observes the parameters, not the updates: a scale after it changes nothing."""
  with jax.enable_x64(True):
    tx = optax.chain(optim.sgd(0.2), swa_params(), optax.scale(0.5))
    thetas, averages, _ = iterates(tx, steps=5)
  for n in thetas[0]:
    np.testing.assert_allclose(averages[-1][n], np.mean([t[n] for t in thetas], axis=0),
                               rtol=1e-13)


def test_registry_entries_inject_and_are_found_in_nested_states():
  params = {"w": jnp.array([1.0, -1.0])}
  for name, kwargs in (("ema", {"decay": 0.5}), ("swa", {"start_step": 1})):
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     optim.get(name, inject=True, base="adam", learning_rate=0.1, **kwargs))
    state = tx.init(params)
    p = params
    for _ in range(3):
      updates, state = tx.update(p, state, p)
      p = optax.apply_updates(p, updates)
    average = averaged_params(p, state)
    assert average["w"].dtype == jnp.float32
    assert not np.allclose(average["w"], p["w"])
  with pytest.raises(ValueError, match="holds no EmaParamsState or SwaParamsState"):
    averaged_params(params, optim.adam().init(params))
  both = optax.chain(ema_params(0.9), swa_params())
  with pytest.raises(ValueError, match="holds 2"):
    averaged_params(params, both.init(params))


def test_bfloat16_params_with_a_float32_average():
  params = {"w": jnp.full(3, 1.0, jnp.bfloat16)}
  tx = optax.chain(optim.sgd(0.01), ema_params(0.99, state_dtype=jnp.float32))
  state = tx.init(params)
  assert state[1].ema["w"].dtype == jnp.float32
  updates, state = tx.update(params, state, params)
  average = averaged_params(optax.apply_updates(params, updates), state)
  assert average["w"].dtype == jnp.bfloat16 and state[1].ema["w"].dtype == jnp.float32


def test_bad_hyperparameters_and_inputs_raise():
  with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
    ema_params(1.0)
  with pytest.raises(ValueError, match="every_k must be an int ≥ 1"):
    swa_params(every_k=0)
  with pytest.raises(ValueError, match="start_step must be an int ≥ 0"):
    swa_params(start_step=-1)
  tx = ema_params()
  state = tx.init({"w": jnp.zeros(2)})
  with pytest.raises(ValueError, match="needs params"):
    tx.update({"w": jnp.zeros(2)}, state)
  with pytest.raises(ValueError, match="tree structure"):
    tx.update({"v": jnp.zeros(2)}, state, {"w": jnp.zeros(2)})


def test_fit_logs_the_metrics_of_the_averaged_parameters():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(256, 5)).astype(np.float32)
  y = (x @ rng.normal(size=5) > 0).astype(np.int32)
  model = models.MLP(5, (8,), 2, rngs=nnx.Rngs(0))
  tx = optim.get("swa", base="sgd", learning_rate=0.1, start_step=8, every_k=2)
  result = train.fit(model, tx, (x[:192], y[:192]), validation=(x[192:], y[192:]), epochs=2,
                     batch_size=32, progress=False, evaluate_at=averaged_params)
  averaged = averaged_params(result.state.params, result.state.opt_state)
  iterate = result.state.params
  assert not np.allclose(jax.tree.leaves(averaged)[0], jax.tree.leaves(iterate)[0])
  # The returned model holds the average, and the logged val metrics are its metrics.
  jax.tree.map(np.testing.assert_array_equal, nnx.state(result.model, nnx.Param), averaged)
  logits = result.model(jnp.asarray(x[192:]))
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y[192:])).mean()
  accuracy = float(jnp.mean(jnp.argmax(logits, -1) == y[192:]))
  last = result.history[-1]
  np.testing.assert_allclose(last["val_loss"], float(loss), rtol=1e-5)
  assert last["val_accuracy"] == pytest.approx(accuracy)
