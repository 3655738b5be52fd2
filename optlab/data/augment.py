"""Data augmentation in JAX on NHWC batches: pure functions of an explicit PRNG key.

Every function draws independent randomness per example from one key, works
under `jit` (pass the integer arguments such as `padding` as static) and under
`vmap` (e.g. over keys, to draw several augmented copies of a batch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

PAD_MODES = ("constant", "edge", "reflect", "wrap")


def _check_images(images: jax.Array) -> None:
  if images.ndim != 4:
    raise ValueError(f"images must be a batch (N, H, W, C), got shape {images.shape}")


def _translate(
  key: jax.Array, images: jax.Array, max_shift: int, mode: str
) -> jax.Array:
  """Pads H and W by `max_shift` and cuts each image back out at a random offset."""
  _check_images(images)
  if int(max_shift) != max_shift or max_shift < 0:
    raise ValueError(f"padding/max_shift must be an int >= 0, got {max_shift!r}")
  if mode not in PAD_MODES:
    raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
  if max_shift == 0:
    return images
  n, h, w, _ = images.shape
  s = int(max_shift)
  padded = jnp.pad(images, ((0, 0), (s, s), (s, s), (0, 0)), mode=mode)
  offsets = jax.random.randint(key, (n, 2), 0, 2 * s + 1)

  def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

  return jax.vmap(crop)(padded, offsets)


def random_crop(
  key: jax.Array, images: jax.Array, padding: int, mode: str = "constant"
) -> jax.Array:
  """Pad by `padding` pixels on each side, then crop back to H x W at a random position.

  The standard CIFAR/ResNet augmentation (He et al. 2016, padding 4). Each
  example gets its own offset in [0, 2·padding]² ; `padding=0` is the identity.

  Args:
    key: PRNG key.
    images: (N, H, W, C).
    padding: pixels added on each side (static under `jit`).
    mode: `jnp.pad` mode for the border: "constant" (zeros), "edge", "reflect", "wrap".

  Returns:
    Augmented images, same shape and dtype.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> random_crop(jax.random.key(0), jnp.ones((2, 8, 8, 3)), padding=2).shape
    (2, 8, 8, 3)
  """
  return _translate(key, images, padding, mode)


def random_shift(
  key: jax.Array, images: jax.Array, max_shift: int, mode: str = "constant"
) -> jax.Array:
  """Translate each image by its own random (dy, dx), each in [−max_shift, max_shift].

  Vacated pixels are filled by `mode` ("constant": zeros; "wrap": a cyclic
  roll). With zero fill this is `random_crop` with `padding=max_shift`.

  Args:
    key: PRNG key.
    images: (N, H, W, C).
    max_shift: largest shift in pixels (static under `jit`).
    mode: how vacated pixels are filled ("constant", "edge", "reflect", "wrap").
  """
  return _translate(key, images, max_shift, mode)


def horizontal_flip(key: jax.Array, images: jax.Array, p: float = 0.5) -> jax.Array:
  """Mirror each image left-right with probability `p`, independently per example.

  The same key picks the same examples, so flipping twice with one key is the identity.

  Args:
    key: PRNG key.
    images: (N, H, W, C).
    p: flip probability in [0, 1].
  """
  _check_images(images)
  if isinstance(p, int | float) and not 0.0 <= p <= 1.0:
    raise ValueError(f"p must be in [0, 1], got {p}")
  flip = jax.random.bernoulli(key, p, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def gaussian_noise(key: jax.Array, x: jax.Array, stddev: float) -> jax.Array:
  """x + stddev · N(0, I), noise in x's dtype (any shape; float inputs)."""
  if isinstance(stddev, int | float) and stddev < 0:
    raise ValueError(f"stddev must be >= 0, got {stddev}")
  x = jnp.asarray(x)
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise TypeError(f"x must be floating point, got dtype {x.dtype}")
  return x + jnp.asarray(stddev, x.dtype) * jax.random.normal(key, x.shape, x.dtype)


def mixup(
  key: jax.Array, x: jax.Array, y_onehot: jax.Array, alpha: float
) -> tuple[jax.Array, jax.Array]:
  """mixup (Zhang et al. 2018): convex combinations of pairs of examples and of their labels.

  x̃_i = λ_i x_i + (1 − λ_i) x_π(i),  ỹ_i = λ_i y_i + (1 − λ_i) y_π(i),
  with λ_i ~ Beta(α, α) drawn per example and π a random permutation of the
  batch. (The paper's reference code draws one λ per batch; per-example λ has
  the same marginal distribution.) Rows of ỹ sum to 1 when rows of y do.

  Args:
    key: PRNG key.
    x: inputs, (N, ...), floating point.
    y_onehot: one-hot (or soft) labels, (N, K).
    alpha: Beta concentration α > 0 (the paper uses 0.1–0.4 on ImageNet, 1 on CIFAR).

  Returns:
    (mixed x, mixed y), same shapes and dtypes as the inputs.

  Example:
    >>> import jax, jax.numpy as jnp
    >>> y = jax.nn.one_hot(jnp.arange(16) % 4, 4)  # a batch of 16, 4 classes
    >>> xm, ym = mixup(jax.random.key(0), jnp.ones((16, 3)), y, alpha=0.4)
    >>> bool(jnp.allclose(ym.sum(axis=1), 1.0))
    True
  """
  if isinstance(alpha, int | float) and alpha <= 0:
    raise ValueError(f"alpha must be > 0, got {alpha}")
  x, y_onehot = jnp.asarray(x), jnp.asarray(y_onehot)
  if x.ndim < 1 or y_onehot.ndim != 2 or x.shape[0] != y_onehot.shape[0]:
    raise ValueError(
      f"x (N, ...) and y_onehot (N, K) must share N, got shapes {x.shape} and {y_onehot.shape}"
    )
  n = x.shape[0]
  lam_key, perm_key = jax.random.split(key)
  lam = jax.random.beta(lam_key, alpha, alpha, (n,))
  perm = jax.random.permutation(perm_key, n)

  def mix(a: jax.Array) -> jax.Array:
    l = lam.reshape((n,) + (1,) * (a.ndim - 1)).astype(a.dtype)
    return l * a + (1 - l) * a[perm]

  return mix(x), mix(y_onehot)
