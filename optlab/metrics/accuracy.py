"""Accuracy and top-k accuracy."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp

from optlab.metrics import _inputs


def accuracy(
  predictions: Any,
  labels: Any,
  *,
  sample_weight: Any = None,
  mask: Any = None,
  threshold: float = 0.5,
) -> jax.Array:
  """The fraction of correct predictions: Σᵢ wᵢ [ŷᵢ = yᵢ] / Σᵢ wᵢ.

  `predictions` may be logits or probabilities of shape ``labels.shape + (C,)``
  (ŷ = argmax), integer class ids of ``labels.shape``, or floating scores of the
  positive class of a binary problem, of ``labels.shape`` (ŷ = [score > threshold]).
  Any leading shape works (e.g. (batch, time) for sequence models). A label outside
  [0, C) never matches, so it counts as an error: use `mask` for padding.

  Args:
    predictions: logits, probabilities, class ids or binary scores (see above).
    labels: integer class ids.
    sample_weight: optional weight wᵢ per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example
      (wᵢ = 0), e.g. the padding of a last, partial batch.
    threshold: the decision threshold for binary scores; 0.5 for probabilities,
      0.0 for logits. Unused for other inputs.

  Returns:
    A float scalar in [0, 1]; 0 when no example has weight.

  Example:
    >>> float(accuracy(jnp.array([[2.0, 1.0], [0.0, 3.0]]), jnp.array([0, 0])))
    0.5
  """
  where = "accuracy"
  labels = _inputs.check_labels(where, labels)
  predictions, kind, _ = _inputs.check_predictions(where, predictions, labels)
  sample_weight, mask = _inputs.check_weights(where, labels.shape, sample_weight, mask)
  return _accuracy(predictions, labels, sample_weight, mask, threshold, kind=kind)


@functools.partial(jax.jit, static_argnames="kind")
def _accuracy(
  predictions: jax.Array,
  labels: jax.Array,
  sample_weight: jax.Array | None,
  mask: jax.Array | None,
  threshold: Any,
  *,
  kind: str,
) -> jax.Array:
  predicted = _inputs.to_ids(predictions, kind, threshold)
  weights = _inputs.combine_weights(sample_weight, mask)
  return _inputs.weighted_mean(predicted == labels.astype(jnp.int32), weights)

def top_k_accuracy(
  logits: Any,
  labels: Any,
  k: int = 5,
  *,
  sample_weight: Any = None,
  mask: Any = None,
) -> jax.Array:
  """The fraction of examples whose label is among the k highest scores.

  Σᵢ wᵢ [#{c : sᵢc > sᵢyᵢ} < k] / Σᵢ wᵢ: an example counts as correct when fewer
  than k classes score strictly higher than its label, so ties are resolved in the
  label's favour (scikit-learn breaks ties by class order instead; the two agree
  whenever scores are distinct). A label outside [0, C) counts as an error.
  `top_k_accuracy(logits, labels, 1)` equals `accuracy(logits, labels)` without ties.

  Args:
    logits: scores (logits or probabilities) of shape ``labels.shape + (C,)``.
    labels: integer class ids.
    k: how many of the highest scores count, 1 <= k <= C (a Python int).
    sample_weight: optional weight per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example.

  Returns:
    A float scalar in [0, 1]; 0 when no example has weight.

  Example:
    >>> logits = jnp.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    >>> float(top_k_accuracy(logits, jnp.array([1, 0]), k=2))
    0.5
  """
  where = "top_k_accuracy"
  labels = _inputs.check_labels(where, labels)
  logits = _inputs.check_logits(where, logits, labels)
  num_classes = logits.shape[-1]
  k = _inputs.check_int(where, "k", k, 1)
  if k > num_classes:
    raise ValueError(f"{where}: k must be an integer in [1, num_classes={num_classes}], got {k}")
  sample_weight, mask = _inputs.check_weights(where, labels.shape, sample_weight, mask)
  return _top_k_accuracy(logits, labels, sample_weight, mask, k)


@jax.jit
def _top_k_accuracy(
  logits: jax.Array,
  labels: jax.Array,
  sample_weight: jax.Array | None,
  mask: jax.Array | None,
  k: jax.Array,
) -> jax.Array:
  # k is traced (it was checked above), so every k shares one compiled program.
  num_classes = logits.shape[-1]
  labels = labels.astype(jnp.int32)
  valid = (labels >= 0) & (labels < num_classes)
  safe_labels = jnp.where(valid, labels, 0)
  label_score = jnp.take_along_axis(logits, safe_labels[..., None], axis=-1)
  higher = jnp.sum(logits > label_score, axis=-1)
  weights = _inputs.combine_weights(sample_weight, mask)
  return _inputs.weighted_mean(valid & (higher < k), weights)
