"""Tests of optlab.strategies.adversarial: attacks by hand, the ε-ball, TRADES' formula,
the adversarial train step, errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import data, models
from optlab.strategies import adversarial as adv
from optlab.train import TrainState, split_model
from optlab.train.steps import cross_entropy, make_scan_epoch, make_train_step

W = jnp.array([[0.5, -1.0, 0.3], [1.5, 0.2, -0.7], [-0.4, 0.9, 0.1], [0.2, 0.3, -1.2]])
B = jnp.array([[0.1, -0.2, 0.05]])


def linear(x):
  return x @ W + B


def ce_input_grad_by_hand(x, y):
  """∇ₓ Σᵢ CE(xᵢW + b, yᵢ) = (softmax − onehot) Wᵀ, written out."""
  logits = np.asarray(x @ W + B, np.float64)
  p = np.exp(logits - logits.max(axis=1, keepdims=True))
  p /= p.sum(axis=1, keepdims=True)
  p[np.arange(len(y)), np.asarray(y)] -= 1.0
  return p @ np.asarray(W, np.float64).T


@pytest.fixture(scope="module")
def batch():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.uniform(0.2, 0.8, size=(6, 4)), jnp.float32)
  y = jnp.asarray(rng.integers(0, 3, size=6), jnp.int32)
  return x, y


@pytest.fixture(scope="module")
def trained():
  """A small MLP trained (clean) on digits scaled to [0, 1]: (logits_fn, x_test, y_test)."""
  ds = data.digits(flatten=True)
  x, y = np.asarray(ds.x, np.float32) / 16.0, np.asarray(ds.y, np.int32)
  model = models.MLP(64, (32,), 10, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model)
  tx = optax.adam(1e-2)

  @jax.jit
  def train(params):  # 150 full-batch Adam steps on 1,200 images: ~97% test accuracy
    def body(carry, _):
      params, opt_state = carry
      grads = jax.grad(lambda p: cross_entropy(nnx.merge(graphdef, p)(x[:1200]), y[:1200]))(
          params)
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None
    return jax.lax.scan(body, (params, tx.init(params)), length=150)[0][0]

  model = nnx.merge(graphdef, train(params))
  return model, jnp.asarray(x[1200:1400]), jnp.asarray(y[1200:1400])


def test_fgsm_linf_is_epsilon_sign_gradient_by_hand(batch):
  x, y = batch
  got = adv.fgsm(linear, x, y, epsilon=0.07)
  expected = np.asarray(x) + 0.07 * np.sign(ce_input_grad_by_hand(x, y))
  np.testing.assert_allclose(got, expected, atol=1e-6)


def test_fgsm_l2_steps_along_the_normalized_gradient_by_hand(batch):
  x, y = batch
  g = ce_input_grad_by_hand(x, y)
  expected = np.asarray(x) + 0.3 * g / np.linalg.norm(g, axis=1, keepdims=True)
  np.testing.assert_allclose(adv.fgsm(linear, x, y, epsilon=0.3, norm="l2"), expected, atol=1e-6)
  np.testing.assert_allclose(np.linalg.norm(expected - np.asarray(x), axis=1), 0.3, rtol=1e-5)


def test_fgsm_clips_to_the_data_bounds(batch):
  x, y = batch
  got = np.asarray(adv.fgsm(linear, x, y, epsilon=0.5, bounds=(0.0, 1.0)))
  expected = np.clip(np.asarray(x) + 0.5 * np.sign(ce_input_grad_by_hand(x, y)), 0.0, 1.0)
  np.testing.assert_allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd_one_step_from_the_center_by_hand(batch, norm):
  x, y = batch
  g = ce_input_grad_by_hand(x, y)
  direction = np.sign(g) if norm == "linf" else g / np.linalg.norm(g, axis=1, keepdims=True)
  # α < ε: the step stays inside the ball, so no projection.
  got = adv.pgd(linear, x, y, None, epsilon=0.5, step_size=0.1, steps=1, norm=norm,
                random_start=False)
  np.testing.assert_allclose(got, np.asarray(x) + 0.1 * direction, atol=1e-6)
  # α = ε, one step, no start: PGD is FGSM.
  one = adv.pgd(linear, x, y, None, epsilon=0.2, step_size=0.2, steps=1, norm=norm,
                random_start=False)
  np.testing.assert_allclose(one, adv.fgsm(linear, x, y, epsilon=0.2, norm=norm), atol=1e-6)


def test_project_by_hand():
  delta = jnp.array([[3.0, 4.0], [0.3, -0.1]])
  np.testing.assert_allclose(adv.project(delta, 0.5, "linf"), [[0.5, 0.5], [0.3, -0.1]])
  np.testing.assert_allclose(adv.project(delta, 1.0, "l2"), [[0.6, 0.8], [0.3, -0.1]], rtol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_random_start_is_inside_the_ball(norm, key):
  x = jnp.zeros((500, 64))
  delta = np.asarray(adv._random_start(key, x, 0.25, norm))
  size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
  assert size.max() <= 0.25 * (1 + 1e-5)
  assert size.min() > 0.2  # uniform in 64 dimensions: almost all mass near the surface


@pytest.mark.parametrize("norm,epsilon", [("linf", 0.1), ("l2", 1.0)])
def test_pgd_stays_in_the_ball_and_bounds_and_raises_the_loss(trained, key, norm, epsilon):
  model, x, y = trained
  x_adv = adv.pgd(model, x, y, key, epsilon=epsilon, steps=10, norm=norm, bounds=(0.0, 1.0))
  delta = np.asarray(x_adv - x)
  size = np.abs(delta).max(axis=1) if norm == "linf" else np.linalg.norm(delta, axis=1)
  assert size.max() <= epsilon * (1 + 1e-5) + 1e-6
  assert np.mean(size > 0.99 * epsilon) > 0.5  # the attack uses its budget
  assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
  clean = optax.softmax_cross_entropy_with_integer_labels(model(x), y)
  attacked = optax.softmax_cross_entropy_with_integer_labels(model(x_adv), y)
  assert float(attacked.mean()) > 2 * float(clean.mean())
  assert np.mean(np.asarray(attacked) >= np.asarray(clean) - 1e-5) > 0.95
  clean_acc = jnp.mean(jnp.argmax(model(x), -1) == y)
  assert float(jnp.mean(jnp.argmax(model(x_adv), -1) == y)) < float(clean_acc) - 0.1


def test_robust_accuracy_at_zero_epsilon_is_clean_accuracy_and_batching_is_exact(trained, key):
  model, x, y = trained
  clean = float(jnp.mean(jnp.argmax(model(x), -1) == y))
  zero = adv.make_attack(epsilon=0.0, steps=2, bounds=(0.0, 1.0))
  assert float(adv.robust_accuracy(model, x, y, zero, key, batch_size=64)) == pytest.approx(clean)
  fgsm = adv.make_attack("fgsm", epsilon=0.05, bounds=(0.0, 1.0))
  whole = adv.robust_accuracy(model, x, y, fgsm, key)
  batched = adv.robust_accuracy(model, x, y, fgsm, key, batch_size=64)  # 200 = 3·64 + 8
  assert float(whole) == pytest.approx(float(batched))


def test_attacks_jit_and_vmap_over_epsilon(trained, key):
  model, x, y = trained
  graphdef, state = nnx.split(model)

  def attacked_loss(state, epsilon):
    fn = nnx.merge(graphdef, state)
    x_adv = adv.pgd(fn, x, y, key, epsilon=epsilon, steps=3, bounds=(0.0, 1.0))
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(fn(x_adv), y))

  epsilons = jnp.array([0.0, 0.05, 0.1])
  batched = jax.jit(jax.vmap(attacked_loss, in_axes=(None, 0)))(state, epsilons)
  one_by_one = [attacked_loss(state, float(e)) for e in epsilons]
  np.testing.assert_allclose(batched, one_by_one, rtol=1e-4)
  assert batched[0] < batched[1] < batched[2]


def test_trades_loss_equals_its_formula_for_a_fixed_adversarial_batch(batch):
  x, y = batch
  x_adv = x + 0.05
  got = adv.trades_loss(linear, x, y, None, beta=3.0, epsilon=0.1, x_adv=x_adv)

  def log_softmax(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

  lp, lq = log_softmax(linear(x)), log_softmax(linear(x_adv))
  ce = -lp[np.arange(len(y)), np.asarray(y)].mean()
  kl = (np.exp(lp) * (lp - lq)).sum(axis=1).mean()
  assert float(got) == pytest.approx(ce + 3.0 * kl, rel=1e-5)
  zero = adv.trades_loss(linear, x, y, None, beta=0.0, epsilon=0.1, x_adv=x_adv)
  assert float(zero) == pytest.approx(ce, rel=1e-5)


def test_madry_loss_is_cross_entropy_at_the_pgd_example(batch, key):
  x, y = batch
  got = adv.madry_loss(linear, x, y, key, epsilon=0.1, steps=4, bounds=(0.0, 1.0))
  x_adv = adv.pgd(linear, x, y, key, epsilon=0.1, steps=4, bounds=(0.0, 1.0))
  expected = optax.softmax_cross_entropy_with_integer_labels(linear(x_adv), y).mean()
  assert float(got) == pytest.approx(float(expected), rel=1e-6)


def test_trades_attack_maximizes_the_kl(trained, key):
  model, x, _ = trained
  clean = jax.lax.stop_gradient(model(x))
  x_adv = adv.pgd(model, x, clean, key, epsilon=0.1, steps=5, bounds=(0.0, 1.0), loss="kl")
  assert float(adv.kl_divergence(model(x_adv), clean).mean()) > 0.1
  assert float(adv.kl_divergence(model(x), clean).max()) < 1e-5


@pytest.mark.parametrize("method", ["madry", "trades"])
def test_adversarial_train_step_is_sgd_on_the_loss_at_the_attack(batch, key, method):
  x, y = batch
  model = nnx.Linear(4, 3, rngs=nnx.Rngs(1))
  graphdef, _, params, rest = split_model(model)
  tx = optax.sgd(0.5)
  state = TrainState(jnp.zeros([], jnp.int32), params, rest, tx.init(params),
                     jnp.zeros([], jnp.int32))
  kw = {"epsilon": 0.1, "steps": 3, "bounds": (0.0, 1.0)}
  step = jax.jit(adv.make_adversarial_train_step(graphdef, tx, method=method, beta=2.0, key=key,
                                                 **kw))
  new_state, loss = step(state, x, y)

  def loss_of(p):
    fn = nnx.merge(graphdef, p, rest)
    frozen = nnx.merge(graphdef, jax.lax.stop_gradient(p), rest)
    step_key = jax.random.fold_in(key, 0)
    if method == "madry":
      return adv.madry_loss(fn, x, y, step_key, attack_logits_fn=frozen, **kw)
    return adv.trades_loss(fn, x, y, step_key, beta=2.0, attack_logits_fn=frozen, **kw)

  value, grads = jax.value_and_grad(loss_of)(params)
  assert float(loss) == pytest.approx(float(value), rel=1e-5)
  expected = jax.tree.map(lambda p, g: p - 0.5 * g, params, grads)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               new_state.params, expected)
  assert int(new_state.step) == 1
  if method == "madry":  # it composes with the scanned epoch (the key advances with the step)
    epoch = jax.jit(make_scan_epoch(adv.make_adversarial_train_step(
        graphdef, tx, method=method, key=key, **kw), batch_size=3))
    after, losses = epoch(state, x, y, key)
    assert losses.shape == (2,) and int(after.step) == 2 and bool(jnp.all(jnp.isfinite(losses)))


@pytest.mark.slow  # three compilations (~6 s on 2 cores)
def test_fit_adversarial_trains_and_reports_robust_accuracy():
  ds = data.digits(flatten=True)
  x, y = np.asarray(ds.x, np.float32)[:400] / 16.0, np.asarray(ds.y, np.int32)[:400]
  model = nnx.Linear(64, 10, rngs=nnx.Rngs(0))
  result = adv.fit_adversarial(model, optax.adam(1e-2), (x[:300], y[:300]), epsilon=0.05,
                               steps=2, bounds=(0.0, 1.0), validation=(x[300:], y[300:]),
                               epochs=3, batch_size=50)
  first, last = result.history[0], result.history[-1]
  assert result.status == "completed" and len(result.history) == 3 and last["step"] == 18
  assert last["train_loss"] < first["train_loss"]
  assert 0.0 <= last["val_robust_accuracy"] <= last["val_accuracy"] <= 1.0
  assert last["val_accuracy"] > 0.5


@pytest.mark.parametrize("call,match", [
    (lambda: adv.fgsm(linear, jnp.ones((1, 4)), jnp.zeros(1, jnp.int32), epsilon=-0.1),
     "epsilon must be"),
    (lambda: adv.pgd(linear, jnp.ones((1, 4)), jnp.zeros(1, jnp.int32), None, epsilon=0.1,
                     steps=0, random_start=False), "steps must be an integer ≥ 1, got 0"),
    (lambda: adv.pgd(linear, jnp.ones((1, 4)), jnp.zeros(1, jnp.int32), None, epsilon=0.1,
                     step_size=0.0, random_start=False), "step_size must be > 0, got 0.0"),
    (lambda: adv.pgd(linear, jnp.ones((1, 4)), jnp.zeros(1, jnp.int32), None, epsilon=0.1),
     "random_start=True needs a PRNG key"),
    (lambda: adv.make_attack(epsilon=0.1, norm="l1"), "unknown norm 'l1'; accepted: 'linf', 'l2'"),
    (lambda: adv.make_attack("cw", epsilon=0.1), "unknown kind 'cw'"),
    (lambda: adv.make_attack(epsilon=0.1, bounds=(1.0, 0.0)), "low < high"),
    (lambda: adv.make_attack(epsilon=0.1, steps=2.5), "steps must be an integer"),
    (lambda: adv.trades_loss(linear, jnp.ones((1, 4)), jnp.zeros(1, jnp.int32), None,
                             beta=-1.0, epsilon=0.1), "beta must be"),
    (lambda: adv.make_adversarial_train_step(None, optax.sgd(0.1), epsilon=0.1, method="fgsm"),
     "unknown method 'fgsm'"),
    (lambda: adv.make_adversarial_train_step(None, optax.sgd(0.1), epsilon=-1.0),
     "epsilon must be"),
    (lambda: adv.robust_accuracy(linear, jnp.ones((1, 4)), jnp.zeros(1, jnp.int32),
                                 adv.make_attack(epsilon=0.1), batch_size=0), "batch_size"),
])
def test_invalid_arguments_raise_clear_errors(call, match):
  with pytest.raises(ValueError, match=match):
    call()


def test_bounds_must_be_a_pair():
  with pytest.raises(TypeError, match="bounds must be None or a"):
    adv.make_attack(epsilon=0.1, bounds=1.0)


def test_madry_at_zero_epsilon_is_standard_training(batch, key):
  # PGD with ε = 0 returns x itself (zero start, zero step): the update is make_train_step's.
  x, y = batch
  graphdef, _, params, rest = split_model(nnx.Linear(4, 3, rngs=nnx.Rngs(2)))
  tx = optax.adam(0.1)
  state = TrainState(jnp.zeros([], jnp.int32), params, rest, tx.init(params),
                     jnp.zeros([], jnp.int32))
  adversarial = adv.make_adversarial_train_step(graphdef, tx, epsilon=0.0, steps=2, key=key)
  standard = make_train_step(graphdef, tx, cross_entropy)
  (a, loss_a), (b, loss_b) = adversarial(state, x, y), standard(state, x, y)
  assert float(loss_a) == pytest.approx(float(loss_b), rel=1e-6)
  jax.tree.map(lambda u, v: np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-7),
               a.params, b.params)
