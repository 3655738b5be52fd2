"""The confusion matrix, from which precision, recall and F1 are computed."""

from __future__ import annotations

from typing import Any

import jax

from optlab.metrics import _scores


def confusion_matrix(
  predictions: Any,
  labels: Any,
  num_classes: int | None = None,
  *,
  sample_weight: Any = None,
  mask: Any = None,
  threshold: float = 0.5,
) -> jax.Array:
  """The C x C confusion matrix: Mᵢⱼ = Σₙ wₙ [yₙ = i] [ŷₙ = j].

  Rows are true classes and columns predicted classes, as in
  `sklearn.metrics.confusion_matrix` (note the argument order: predictions first,
  as in optax, where scikit-learn takes ``(y_true, y_pred)``). It is computed with
  one `jax.ops.segment_sum` over the flattened pairs, so it costs O(n + C²) and
  works under `jit` with `num_classes` static. An example whose label or prediction
  lies outside [0, C) is left out (e.g. a padding label of -1).

  Args:
    predictions: logits or probabilities of shape ``labels.shape + (C,)`` (argmax),
      integer class ids of ``labels.shape``, or binary positive-class scores of
      ``labels.shape`` (thresholded at `threshold`).
    labels: integer class ids, any shape.
    num_classes: C; read from the logits' last axis when omitted (2 for binary
      scores), required with integer class ids. Static under `jit`.
    sample_weight: optional weight per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example.
    threshold: the decision threshold for binary scores (0.5 for probabilities,
      0.0 for logits).

  Returns:
    An int32 (C, C) matrix of counts, or a float one of summed weights when
    `sample_weight` or `mask` is given.

  Example:
    >>> import jax.numpy as jnp
    >>> confusion_matrix(jnp.array([0, 1, 1, 2]), jnp.array([0, 1, 2, 2]), 3).tolist()
    [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
  """
  scores, _, _ = _scores.evaluate(
    "confusion_matrix", predictions, labels, num_classes, average=None, pos_label=1,
    sample_weight=sample_weight, mask=mask, threshold=threshold,
  )
  return scores["matrix"]
