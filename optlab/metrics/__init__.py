"""Classification metrics in JAX: accuracy, confusion matrix, precision/recall/F1, losses.

Every metric is a pure function of arrays, `jax.jit`-able with its Python arguments
(`num_classes`, `average`, `pos_label`, `k`) static, and checked on static shapes so
a mistake raises a `ValueError` naming both shapes, eagerly or under `jit`. The
argument order is optax's: ``(predictions, labels)`` (scikit-learn's is
``(y_true, y_pred)``).

Predictions may be given in any of three forms, told apart by shape and dtype:
logits or probabilities of shape ``labels.shape + (C,)`` (argmax is taken), integer
class ids of ``labels.shape``, or floating scores of the positive class of a binary
problem, of ``labels.shape`` (thresholded: ``score > threshold``, 0.5 by default).
Precision, recall and F1 are computed from the confusion matrix with scikit-learn's
averages, and 0.0 where a ratio would divide by zero (its ``zero_division=0``).
Metrics take an optional per-example `sample_weight` and `mask` (e.g. for a padded
last batch). `get(name)` returns a metric ``(logits, labels) -> scalar`` by name
and `greater_is_better(name)` says which way it improves.

Example:
  >>> import jax.numpy as jnp
  >>> from optlab import metrics
  >>> logits = jnp.array([[2.0, 0.5, 0.1], [0.1, 0.3, 2.0], [0.2, 1.5, 0.1]])
  >>> labels = jnp.array([0, 1, 1])
  >>> round(float(metrics.accuracy(logits, labels)), 4)
  0.6667
  >>> metrics.confusion_matrix(logits, labels).tolist()
  [[1, 0, 0], [0, 1, 1], [0, 0, 0]]
  >>> round(float(metrics.get("f1_macro")(logits, labels)), 4)
  0.5556
"""

from optlab.metrics.accuracy import accuracy, top_k_accuracy
from optlab.metrics.classification import (
  PrecisionRecallF1,
  classification_report,
  f1_score,
  precision,
  precision_recall_f1,
  recall,
  scores_from_confusion_matrix,
)
from optlab.metrics.confusion import confusion_matrix
from optlab.metrics.losses import bits_per_character, cross_entropy, log_loss, perplexity
from optlab.metrics.registry import MetricFn, get, greater_is_better, names

__all__ = [
  "MetricFn",
  "PrecisionRecallF1",
  "accuracy",
  "bits_per_character",
  "classification_report",
  "confusion_matrix",
  "cross_entropy",
  "f1_score",
  "get",
  "greater_is_better",
  "log_loss",
  "names",
  "perplexity",
  "precision",
  "precision_recall_f1",
  "recall",
  "scores_from_confusion_matrix",
  "top_k_accuracy",
]
