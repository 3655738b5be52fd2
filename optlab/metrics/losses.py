"""Cross-entropy and the quantities derived from it: bits per character, perplexity."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from optlab.metrics import _inputs


def integer_label_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy ``logsumexp(z) − z_y`` with integer labels.

  The same values and gradients as ``optax.softmax_cross_entropy_with_integer_labels``
  (bit for bit eagerly; compiled, within an ulp, as XLA fuses them differently),
  but the label's logit is picked by a mask, ``Σ_c [c = y] z_c``, instead of a
  gather, so the gradient holds no scatter. Two reasons: a scatter
  is a slow serial loop on CPU, and XLA:CPU's multi-output fusion
  (``OPTLAB_XLA_CPU_FUSION=1``, see :mod:`optlab._xla_flags`) aborts the process
  when it merges two scatters that share their indices, which is what the
  gradients of two cross-entropies on the same labels are (jaxlib 0.10.2).
  A label outside ``[0, C)`` gives NaN, as optax's does.

  Example:
    >>> import optax
    >>> z = jnp.array([[2.0, 0.0, -1.0]])
    >>> bool(jnp.allclose(integer_label_cross_entropy(z, jnp.array([0])),
    ...                   optax.softmax_cross_entropy_with_integer_labels(z, jnp.array([0]))))
    True
  """
  classes = logits.shape[-1]
  labels = labels[..., None]
  hit = jax.lax.broadcasted_iota(labels.dtype, (*labels.shape[:-1], classes), labels.ndim - 1)
  hit = hit == labels
  label_logits = jnp.sum(jnp.where(hit, logits, jnp.zeros((), logits.dtype)), axis=-1)
  losses = jax.nn.logsumexp(logits, axis=-1) - label_logits
  in_range = (labels[..., 0] >= 0) & (labels[..., 0] < classes)
  return jnp.where(in_range, losses, jnp.asarray(jnp.nan, losses.dtype))


def cross_entropy(
  logits: Any,
  labels: Any,
  *,
  sample_weight: Any = None,
  mask: Any = None,
) -> jax.Array:
  """The mean softmax cross-entropy, in nats: Σᵢ wᵢ (logsumexp(zᵢ) − zᵢ,yᵢ) / Σᵢ wᵢ.

  Computed stably by `integer_label_cross_entropy` (optax's values, no gather). The input is
  *logits* (unnormalized log-probabilities): scikit-learn's `log_loss` takes
  probabilities instead; pass ``jnp.log(probabilities)`` here to get the same value.
  Labels must lie in [0, C) (an id outside that range gives a meaningless value;
  drop such examples with `mask`).

  Args:
    logits: shape ``labels.shape + (C,)``, floating.
    labels: integer class ids, any shape (e.g. (batch, time) for sequence models).
    sample_weight: optional weight wᵢ per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example.

  Returns:
    A float scalar ≥ 0; 0 when no example has weight.

  Example:
    >>> round(float(cross_entropy(jnp.zeros((4, 8)), jnp.array([0, 1, 2, 3]))), 4)
    2.0794
  """
  return _checked_cross_entropy("cross_entropy", logits, labels, sample_weight, mask, "nats")


_UNITS = ("nats", "bits", "perplexity")


def _checked_cross_entropy(
  where: str, logits: Any, labels: Any, sample_weight: Any, mask: Any, unit: str
) -> jax.Array:
  labels = _inputs.check_labels(where, labels)
  logits = _inputs.check_logits(where, logits, labels)
  sample_weight, mask = _inputs.check_weights(where, labels.shape, sample_weight, mask)
  return _cross_entropy(logits, labels, sample_weight, mask)[_UNITS.index(unit)]


@jax.jit
def _cross_entropy(
  logits: jax.Array, labels: jax.Array, sample_weight: jax.Array | None, mask: jax.Array | None
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The mean cross-entropy in nats, in bits, and its exponential, in one program."""
  losses = integer_label_cross_entropy(logits, labels.astype(jnp.int32))
  loss = _inputs.weighted_mean(losses, _inputs.combine_weights(sample_weight, mask))
  return loss, loss / math.log(2.0), jnp.exp(loss)


def log_loss(
  logits: Any,
  labels: Any,
  *,
  sample_weight: Any = None,
  mask: Any = None,
) -> jax.Array:
  """`cross_entropy` under its scikit-learn name: −Σᵢ wᵢ log softmax(zᵢ)_yᵢ / Σᵢ wᵢ.

  Takes logits, not probabilities (see `cross_entropy`).

  Example:
    >>> round(float(log_loss(jnp.log(jnp.array([[0.8, 0.2]])), jnp.array([0]))), 4)
    0.2231
  """
  return _checked_cross_entropy("log_loss", logits, labels, sample_weight, mask, "nats")


def bits_per_character(
  logits: Any,
  targets: Any,
  *,
  sample_weight: Any = None,
  mask: Any = None,
) -> jax.Array:
  """Bits per character of a character language model: cross_entropy / ln 2.

  The mean number of bits the model needs to encode each target character; a
  uniform model over C characters scores log₂ C.

  Args:
    logits: next-character logits of shape ``targets.shape + (C,)``.
    targets: the next characters' integer ids, e.g. shape (batch, time).
    sample_weight: optional weight per character, of ``targets.shape``.
    mask: optional bool per character, of ``targets.shape``; False drops it.

  Returns:
    A float scalar ≥ 0.

  Example:
    >>> float(bits_per_character(jnp.zeros((2, 3, 4)), jnp.zeros((2, 3), jnp.int32)))
    2.0
  """
  return _checked_cross_entropy(
    "bits_per_character", logits, targets, sample_weight, mask, "bits"
  )


def perplexity(
  logits: Any,
  targets: Any,
  *,
  sample_weight: Any = None,
  mask: Any = None,
) -> jax.Array:
  """Perplexity: exp(cross_entropy), the effective number of equally likely choices.

  The exponential of the mean per-token cross-entropy (so 2^bits_per_character);
  a uniform model over C tokens scores C.

  Args:
    logits: next-token logits of shape ``targets.shape + (C,)``.
    targets: the next tokens' integer ids, e.g. shape (batch, time).
    sample_weight: optional weight per token, of ``targets.shape``.
    mask: optional bool per token, of ``targets.shape``; False drops it.

  Returns:
    A float scalar ≥ 1 (1 when no token has weight).

  Example:
    >>> round(float(perplexity(jnp.zeros((5, 10)), jnp.arange(5))), 4)
    10.0
  """
  return _checked_cross_entropy("perplexity", logits, targets, sample_weight, mask, "perplexity")
