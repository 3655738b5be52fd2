"""optlab.data.augment: shapes, jit == eager, vmap, per-example randomness, exact identities."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import data

AUGMENTATIONS = {
  "random_crop": functools.partial(data.random_crop, padding=3),
  "random_shift_wrap": functools.partial(data.random_shift, max_shift=2, mode="wrap"),
  "horizontal_flip": data.horizontal_flip,
  "gaussian_noise": functools.partial(data.gaussian_noise, stddev=0.1),
  "mixup": lambda key, images: data.mixup(key, images, LABELS, alpha=0.4)[0],
}
# Tests reuse one batch shape: on CPU each new shape of a PRNG op costs a compile of ~1 s.
N = 16
LABELS = data.one_hot(jnp.arange(N) % 4, 4)


def _images(n=N, h=8, w=9, c=3, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(n, h, w, c)), jnp.float32)


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_shape_dtype_keys_jit_and_vmap(name, key):
  """Eager calls, one per key, equal jit(vmap(fn)) over the keys; different keys differ."""
  fn = AUGMENTATIONS[name]
  images = _images()
  keys = jax.random.split(key, 2)
  eager = [fn(k, images) for k in keys]
  assert eager[0].shape == images.shape and eager[0].dtype == images.dtype
  assert not np.array_equal(eager[0], eager[1])
  batched = jax.jit(jax.vmap(fn, in_axes=(0, None)))(keys, images)
  assert batched.shape == (2, *images.shape)
  for i in range(2):
    if name in ("gaussian_noise", "mixup"):  # fused arithmetic may move the last ulp
      np.testing.assert_allclose(batched[i], eager[i], rtol=1e-6, atol=1e-6)
    else:
      np.testing.assert_array_equal(batched[i], eager[i])


def test_jit_equals_eager_for_the_same_key(key):
  images = _images()
  fn = AUGMENTATIONS["random_crop"]
  np.testing.assert_array_equal(jax.jit(fn)(key, images), fn(key, images))


def test_flip_twice_is_identity(key):
  images = _images()
  once = data.horizontal_flip(key, images)
  np.testing.assert_array_equal(data.horizontal_flip(key, once), images)
  flipped = np.asarray(images)[:, :, ::-1]
  per_example = [np.array_equal(o, f) for o, f in zip(np.asarray(once), flipped, strict=True)]
  assert 0 < sum(per_example) < len(per_example)  # per-example coin flips
  np.testing.assert_array_equal(data.horizontal_flip(key, images, p=1.0), flipped)
  np.testing.assert_array_equal(data.horizontal_flip(key, images, p=0.0), images)


def test_crop_with_zero_padding_is_identity(key):
  images = _images()
  np.testing.assert_array_equal(data.random_crop(key, images, padding=0), images)
  np.testing.assert_array_equal(data.random_shift(key, images, max_shift=0), images)


def _shifted(image, dy, dx):
  """image moved by (dy, dx) with zero fill."""
  h, w, _ = image.shape
  out = np.zeros_like(image)
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
    image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
  return out


def test_crop_is_a_zero_filled_translation_per_example(key):
  images = np.asarray(_images())
  out = np.asarray(AUGMENTATIONS["random_crop"](key, jnp.asarray(images)))  # padding 3
  shifts = []
  for image, result in zip(images, out, strict=True):
    found = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
             if np.array_equal(_shifted(image, dy, dx), result)]
    assert len(found) == 1
    shifts.append(found[0])
  assert len(set(shifts)) > 5  # offsets drawn per example


def test_wrap_shift_is_a_roll(key):
  images = np.asarray(_images())
  out = np.asarray(AUGMENTATIONS["random_shift_wrap"](key, jnp.asarray(images)))  # max 2
  for image, result in zip(images, out, strict=True):
    assert any(np.array_equal(np.roll(image, (dy, dx), axis=(0, 1)), result)
               for dy in range(-2, 3) for dx in range(-2, 3))


def test_gaussian_noise_statistics(key):
  x = jnp.zeros_like(_images())  # 3456 draws
  noise = data.gaussian_noise(jax.random.key(42), x, stddev=0.5)
  assert abs(float(noise.mean())) < 0.03 and abs(float(noise.std()) - 0.5) < 0.02
  np.testing.assert_array_equal(data.gaussian_noise(key, x, 0.0), x)
  with pytest.raises(TypeError, match="floating"):
    data.gaussian_noise(key, jnp.zeros(3, jnp.int32), 1.0)


def test_mixup_is_a_convex_combination(key):
  n = N
  y = LABELS
  x = jnp.eye(n)  # example i is e_i: mixed x reveals (λ_i, π(i))
  xm, ym = data.mixup(key, x, y, alpha=0.4)
  assert xm.shape == x.shape and ym.shape == y.shape and ym.dtype == y.dtype
  np.testing.assert_allclose(ym.sum(axis=1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(xm.sum(axis=1), 1.0, rtol=1e-6)
  assert float(xm.min()) >= 0.0 and float(ym.min()) >= 0.0
  np.testing.assert_allclose(ym, xm @ y, rtol=1e-5, atol=1e-6)  # labels mixed like inputs
  lam = np.diag(np.asarray(xm))
  assert len(np.unique(np.round(lam, 6))) > n // 2  # a λ per example


def test_mixup_errors(key):
  images = _images()
  with pytest.raises(ValueError, match="alpha"):
    data.mixup(key, images, LABELS, alpha=0.0)
  with pytest.raises(ValueError, match="share N"):
    data.mixup(key, images, LABELS[:3], alpha=1.0)


def test_augment_errors(key):
  with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
    data.random_crop(key, jnp.zeros((4, 4)), padding=1)
  with pytest.raises(ValueError, match="padding"):
    data.random_crop(key, _images(), padding=-1)
  with pytest.raises(ValueError, match="mode"):
    data.random_shift(key, _images(), max_shift=1, mode="mirror")
  with pytest.raises(ValueError, match="p must be"):
    data.horizontal_flip(key, _images(), p=1.5)
