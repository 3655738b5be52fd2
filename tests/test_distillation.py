"""Tests of optlab.structure.distillation: the loss against its formula written out by hand,
its limits and gradient scale, argument checks, and teacher -> student training through fit."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from optlab import models, optim
from optlab.structure.distillation import (
  distillation_loss,
  distillation_loss_fn,
  feature_matching_loss,
  pack_targets,
  soft_distillation_loss,
  soft_targets,
  teacher_logits,
  unpack_targets,
)
from optlab.train import fit


def _softmax(z: np.ndarray) -> np.ndarray:
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _by_hand(zs, zt, y, temperature, alpha):
  """Hinton et al.'s loss in float64 NumPy: α T² KL(p_t ‖ p_s) + (1 − α) CE(z_s, y)."""
  p = _softmax(zt / temperature)
  q = _softmax(zs / temperature)
  kl = np.sum(p * (np.log(p) - np.log(q)), axis=-1).mean()
  ce = -np.log(_softmax(zs)[np.arange(len(y)), y]).mean()
  return alpha * temperature**2 * kl + (1 - alpha) * ce


def _logits(seed: int, n: int = 8, c: int = 5, scale: float = 3.0):
  rng = np.random.default_rng(seed)
  zs = rng.normal(size=(n, c)) * scale
  zt = rng.normal(size=(n, c)) * scale
  return zs, zt, rng.integers(0, c, n)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 4.0, 20.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.9, 1.0])
def test_loss_equals_the_formula(temperature, alpha):
  zs, zt, y = _logits(int(temperature * 10 + alpha * 100))
  got = distillation_loss(jnp.asarray(zs, jnp.float32), jnp.asarray(zt, jnp.float32),
                          jnp.asarray(y), temperature=temperature, alpha=alpha)
  np.testing.assert_allclose(float(got), _by_hand(zs, zt, y, temperature, alpha), rtol=2e-5,
                             atol=1e-6)


def test_alpha_limits():
  zs, zt, y = (jnp.asarray(a) for a in _logits(0))
  zs, zt = zs.astype(jnp.float32), zt.astype(jnp.float32)
  ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(zs, y))
  # α = 0: exactly the hard-label cross-entropy, whatever the teacher and T.
  assert distillation_loss(zs, zt, y, temperature=7.0, alpha=0.0) == ce
  assert distillation_loss(zs, 5 * zt, y, temperature=2.0, alpha=0.0) == ce
  # α = 1: exactly the T²-scaled soft term; the labels do not matter.
  soft = soft_distillation_loss(zs, zt, temperature=3.0)
  assert distillation_loss(zs, zt, y, temperature=3.0, alpha=1.0) == soft
  assert distillation_loss(zs, zt, (y + 1) % 5, temperature=3.0, alpha=1.0) == soft
  # The soft term by hand, including the T² factor.
  np.testing.assert_allclose(float(soft), _by_hand(np.asarray(zs), np.asarray(zt), np.asarray(y),
                                                   3.0, 1.0), rtol=1e-5)
  # A student equal to its teacher has zero soft loss.
  assert float(soft_distillation_loss(zt, zt, temperature=3.0)) == pytest.approx(0.0, abs=1e-6)


def test_soft_gradient_is_t_times_q_minus_p_and_t_squared_keeps_it_order_one():
  zs, zt, _ = _logits(1, n=4, c=6)
  zs, zt = jnp.asarray(zs, jnp.float32), jnp.asarray(zt, jnp.float32)
  for temperature in (1.0, 3.0, 10.0):
    grad = jax.grad(lambda z, t=temperature: soft_distillation_loss(z, zt, temperature=t))(zs)
    p, q = soft_targets(zt, temperature), soft_targets(zs, temperature)
    np.testing.assert_allclose(grad, temperature * (q - p) / zs.shape[0], rtol=1e-4, atol=1e-6)
  # Hinton et al. eq. (3)-(4): for zero-mean logits and large T, the gradient of the
  # T²-scaled term tends to (z_s − z_t) / C per example, independent of T ...
  zs0, zt0 = zs - zs.mean(-1, keepdims=True), zt - zt.mean(-1, keepdims=True)
  limit = (zs0 - zt0) / zs.shape[1] / zs.shape[0]
  for temperature in (1000.0, 3000.0):  # the error is O(|z|² / T)
    grad = jax.grad(lambda z, t=temperature: soft_distillation_loss(z, zt0, temperature=t))(zs0)
    np.testing.assert_allclose(grad, limit, atol=2e-2 * float(jnp.abs(limit).max()))
  # ... so without the T² factor the soft gradients shrink as 1/T².
  def unscaled_norm(t):
    g = jax.grad(lambda z: soft_distillation_loss(z, zt0, temperature=t) / t**2)(zs0)
    return float(jnp.linalg.norm(g))

  assert unscaled_norm(1000.0) / unscaled_norm(2000.0) == pytest.approx(4.0, rel=1e-2)


def test_no_gradient_flows_to_the_teacher():
  zs, zt, y = (jnp.asarray(a) for a in _logits(2))
  grad = jax.grad(lambda t: distillation_loss(zs, t, y, temperature=2.0, alpha=0.7))(zt)
  assert float(jnp.abs(grad).max()) == 0.0


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_raises(temperature):
  zs, zt, y = _logits(3)
  with pytest.raises(ValueError, match="temperature"):
    distillation_loss(zs, zt, y, temperature=temperature, alpha=0.5)
  with pytest.raises(ValueError, match="temperature"):
    distillation_loss_fn(temperature, 0.5)
  with pytest.raises(ValueError, match="temperature"):
    soft_targets(zs, temperature)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_bad_alpha_raises(alpha):
  zs, zt, y = _logits(4)
  with pytest.raises(ValueError, match=r"alpha.*\[0, 1\]"):
    distillation_loss(zs, zt, y, temperature=2.0, alpha=alpha)
  with pytest.raises(ValueError, match="alpha"):
    distillation_loss_fn(2.0, alpha)


def test_non_numbers_raise_type_errors():
  zs, zt, y = _logits(5)
  with pytest.raises(TypeError, match="temperature"):
    distillation_loss(zs, zt, y, temperature="4", alpha=0.5)
  with pytest.raises(TypeError, match="alpha"):
    distillation_loss(zs, zt, y, temperature=4.0, alpha=True)


def test_shape_mismatches_raise():
  zs, zt, y = _logits(6)
  with pytest.raises(ValueError, match="same shape"):
    distillation_loss(zs, zt[:, :4], y, temperature=2.0, alpha=0.5)
  with pytest.raises(ValueError, match="labels must have shape"):
    distillation_loss(zs, zt, y[:3], temperature=2.0, alpha=0.5)
  with pytest.raises(TypeError, match="integer"):
    distillation_loss(zs, zt, y.astype(np.float32), temperature=2.0, alpha=0.5)
  with pytest.raises(ValueError, match="class axis"):
    soft_distillation_loss(zs[:, :1], zt[:, :1], temperature=2.0)
  with pytest.raises(ValueError, match="pack_targets"):
    pack_targets(y, zt[:3])
  with pytest.raises(ValueError, match=r"\[0, 5\)"):
    pack_targets(y + 5, zt)
  with pytest.raises(ValueError, match="1-D integer"):
    pack_targets(y.astype(np.float32), zt)
  loss = distillation_loss_fn(2.0, 0.5)
  with pytest.raises(ValueError, match="pack_targets"):
    loss(jnp.asarray(zs), jnp.zeros((8, 3)))


def test_soft_targets():
  z = jnp.asarray([[2.0, 1.0, -1.0]])
  np.testing.assert_allclose(soft_targets(z, 1.0), jax.nn.softmax(z), rtol=1e-6)
  np.testing.assert_allclose(soft_targets(z, 3.0), _softmax(np.asarray(z) / 3.0), rtol=1e-6)
  np.testing.assert_allclose(soft_targets(z, 1e4), np.full((1, 3), 1 / 3), atol=1e-4)


def test_pack_and_unpack_are_exact():
  _, zt, y = _logits(7)
  packed = pack_targets(y, zt)
  assert packed.shape == (8, 6) and packed.dtype == np.float32
  labels, logits = unpack_targets(packed)
  np.testing.assert_array_equal(labels, y)
  assert labels.dtype == jnp.int32
  np.testing.assert_array_equal(logits, zt.astype(np.float32))


def test_loss_fn_packed_labels_and_traced_hyperparameters():
  zs, zt, y = _logits(8)
  zs, zt, y = jnp.asarray(zs, jnp.float32), jnp.asarray(zt, jnp.float32), jnp.asarray(y)
  packed = jnp.asarray(pack_targets(np.asarray(y), np.asarray(zt)))
  loss = distillation_loss_fn(4.0, 0.8)
  assert loss(zs, packed) == distillation_loss(zs, zt, y, temperature=4.0, alpha=0.8)
  # Plain labels (fit's validation set): the cross-entropy.
  ce = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(zs, y))
  assert loss(zs, y) == ce
  # T and α may be traced (vmapped over a grid inside one program).
  temps, alphas = jnp.asarray([1.0, 2.0, 8.0]), jnp.asarray([0.0, 0.5, 1.0])
  batched = jax.jit(jax.vmap(lambda t, a: distillation_loss(zs, zt, y, temperature=t, alpha=a)))
  for got, t, a in zip(batched(temps, alphas), temps, alphas, strict=True):
    want = distillation_loss(zs, zt, y, temperature=float(t), alpha=float(a))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_teacher_logits_match_the_model_in_eval_mode_and_keep_its_mode():
  teacher = models.MLP(4, [16], 3, dropout=0.5, rngs=nnx.Rngs(0))
  x = np.random.default_rng(0).normal(size=(37, 4)).astype(np.float32)
  logits = teacher_logits(teacher, x, batch_size=8)  # chunks of 8, the last one padded
  assert logits.shape == (37, 3)
  np.testing.assert_allclose(logits, teacher(jnp.asarray(x), deterministic=True), rtol=1e-5,
                             atol=1e-6)
  assert teacher.dropout.deterministic is False  # still in training mode
  with pytest.raises(TypeError, match=r"nnx\.Module"):
    teacher_logits(lambda a: a, x)
  with pytest.raises(ValueError, match="batch_size"):
    teacher_logits(teacher, x, batch_size=0)


def test_teacher_to_student_through_fit():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(96, 6)).astype(np.float32)
  y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 1).astype(np.int32)
  teacher = models.MLP(6, [32], 3, rngs=nnx.Rngs(0))
  fit(teacher, optim.get("adam", learning_rate=1e-2), (x, y), epochs=8, batch_size=16,
      progress=False)
  targets = pack_targets(y, teacher_logits(teacher, x))
  student = models.MLP(6, [4], 3, rngs=nnx.Rngs(1))
  before = soft_distillation_loss(student(jnp.asarray(x)), targets[:, 1:], temperature=4.0)
  result = fit(student, optim.get("adam", learning_rate=1e-2), (x, targets), epochs=8,
               batch_size=16, loss=distillation_loss_fn(4.0, 1.0), validation=(x, y),
               progress=False)
  assert result.status == "completed"
  assert np.isfinite(result.history[-1]["train_loss"])
  assert "val_accuracy" in result.history[-1]  # validation keeps plain labels
  after = soft_distillation_loss(result.model(jnp.asarray(x)), targets[:, 1:], temperature=4.0)
  assert float(after) < 0.5 * float(before)  # the student moved toward the teacher
  # fit's last training loss is the distillation loss (α = 1: the soft term).
  assert result.history[-1]["train_loss"] == pytest.approx(float(after), rel=0.5)


def test_feature_matching_loss():
  rng = np.random.default_rng(0)
  fs, ft = rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
  w = rng.normal(size=(3, 4))
  want = np.mean((fs @ w - ft) ** 2)
  np.testing.assert_allclose(feature_matching_loss(fs, ft, projection=w), want, rtol=1e-5)
  np.testing.assert_allclose(feature_matching_loss(fs, ft, projection=lambda f: f @ w), want,
                             rtol=1e-5)
  np.testing.assert_allclose(feature_matching_loss(ft, 2 * ft), np.mean(ft**2), rtol=1e-5)
  grad = jax.grad(lambda t: feature_matching_loss(jnp.asarray(ft), t))(jnp.asarray(2 * ft))
  assert float(jnp.abs(grad).max()) == 0.0  # the teacher's features are constants
  with pytest.raises(ValueError, match="give a projection"):
    feature_matching_loss(fs, ft)
  with pytest.raises(ValueError, match="projection must be"):
    feature_matching_loss(fs, ft, projection=np.ones((4, 4)))
