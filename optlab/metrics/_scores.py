"""The confusion matrix and every score computed from it, in one compiled kernel.

`confusion_matrix`, `precision`, `recall`, `f1_score`, `precision_recall_f1` and
`classification_report` all call `evaluate`, which checks the arguments and runs
`_evaluate`: one jitted program per input signature (kind of predictions, number
of classes, shapes, weights or not) that returns the matrix, the per-class scores
and every average. The public functions then pick what they need, in Python, so
an eager call costs one dispatch and a second metric on the same inputs costs no
new compilation; under an outer `jit` the unused outputs are dropped by XLA.

Formulas: for class c, with M the confusion matrix (rows true, columns predicted),
TPc = Mcc, Pc = Σᵢ Mᵢc (predicted as c) and Sc = Σⱼ Mcⱼ (support):
precision_c = TPc / Pc, recall_c = TPc / Sc, F1_c = 2 TPc / (Pc + Sc), each 0 when
its denominator is 0.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from optlab.metrics import _inputs


class PrecisionRecallF1(NamedTuple):
  """Precision, recall and F1, each a scalar or (with ``average=None``) a (C,) array."""

  precision: jax.Array
  recall: jax.Array
  f1: jax.Array


def confusion_from_ids(
  predicted: jax.Array, labels: jax.Array, num_classes: int, weights: jax.Array | None
) -> jax.Array:
  """Mᵢⱼ = Σₙ wₙ [yₙ = i] [ŷₙ = j] by one segment_sum; ids outside [0, C) are left out."""
  predicted = predicted.reshape(-1).astype(jnp.int32)
  labels = labels.reshape(-1).astype(jnp.int32)
  valid = (labels >= 0) & (labels < num_classes) & (predicted >= 0) & (predicted < num_classes)
  cell = jnp.where(valid, labels * num_classes + predicted, 0)
  if weights is None:
    counts = valid.astype(jnp.int32)
  else:
    counts = jnp.where(valid, weights.reshape(-1), 0)
  matrix = jax.ops.segment_sum(counts, cell, num_segments=num_classes * num_classes)
  return matrix.reshape(num_classes, num_classes)


def _ratios(
  true_positives: jax.Array, predicted: jax.Array, support: jax.Array
) -> PrecisionRecallF1:
  return PrecisionRecallF1(
    precision=_inputs.safe_divide(true_positives, predicted),
    recall=_inputs.safe_divide(true_positives, support),
    f1=_inputs.safe_divide(2 * true_positives, predicted + support),
  )


def _mean(scores: PrecisionRecallF1, weights: jax.Array) -> PrecisionRecallF1:
  def mean(values: jax.Array) -> jax.Array:
    w = weights.astype(values.dtype)
    return _inputs.safe_divide(jnp.sum(values * w), jnp.sum(w))

  return PrecisionRecallF1(*(mean(values) for values in scores))


def all_scores(matrix: jax.Array) -> dict[str, Any]:
  """Every score of a confusion matrix (traced inside kernels).

  Returns:
    A dict: ``"matrix"``; ``"support"`` (Sc) and ``"total"`` (ΣSc); per-class scores
    under ``"per_class"``; ``"micro"`` (the ratios of ΣTP, ΣP, ΣS); ``"macro"`` (the mean over
    classes with Sc + Pc > 0, as scikit-learn's default ``labels=None``);
    ``"weighted"`` (the mean weighted by Sc); ``"accuracy"`` (ΣTP / ΣS); and, for two
    classes, ``"binary"``: the per-class scores of class 0 and of class 1.
  """
  true_positives = jnp.diagonal(matrix)
  predicted = jnp.sum(matrix, axis=0)
  support = jnp.sum(matrix, axis=1)
  per_class = _ratios(true_positives, predicted, support)
  total = jnp.sum(support)
  scores: dict[str, Any] = {
    "matrix": matrix,
    "support": support,
    "total": total,
    "per_class": per_class,
    "micro": _ratios(jnp.sum(true_positives), total, total),
    "macro": _mean(per_class, (support + predicted) > 0),
    "weighted": _mean(per_class, support),
    "accuracy": _inputs.safe_divide(jnp.sum(true_positives), total),
  }
  if matrix.shape[0] == 2:
    scores["binary"] = tuple(PrecisionRecallF1(*(s[c] for s in per_class)) for c in (0, 1))
  return scores


def select(scores: dict[str, Any], average: str | None, pos_label: int) -> PrecisionRecallF1:
  """The scores for a checked `average` (and `pos_label` when binary)."""
  if average == "binary":
    return scores["binary"][pos_label]
  return scores["per_class" if average is None else average]


def check_binary(where: str, num_classes: int, average: str | None, pos_label: Any) -> int:
  """Checks a binary problem's classes and `pos_label`; returns it (0 when unused)."""
  if average != "binary":
    return 0
  if num_classes != 2:
    raise ValueError(
      f"{where}: average='binary' needs num_classes=2, got {num_classes}; for more classes "
      "choose average='macro', 'micro', 'weighted', or None (per class)"
    )
  if isinstance(pos_label, bool) or pos_label not in (0, 1):
    raise ValueError(f"{where}: pos_label must be 0 or 1 for average='binary', got {pos_label!r}")
  return int(pos_label)


def evaluate(
  where: str,
  predictions: Any,
  labels: Any,
  num_classes: Any,
  *,
  average: Any,
  pos_label: Any,
  sample_weight: Any,
  mask: Any,
  threshold: Any,
) -> tuple[dict[str, Any], str | None, int]:
  """Checks a metric's arguments, then computes `all_scores` in one kernel.

  Returns:
    The scores, the checked `average` and `pos_label`.
  """
  average = _inputs.check_average(where, average)
  labels = _inputs.check_labels(where, labels)
  predictions, kind, implied = _inputs.check_predictions(where, predictions, labels)
  default = 2 if average == "binary" else None
  num_classes = _inputs.resolve_num_classes(where, num_classes, implied, default)
  pos_label = check_binary(where, num_classes, average, pos_label)
  sample_weight, mask = _inputs.check_weights(where, labels.shape, sample_weight, mask)
  scores = _evaluate(
    predictions, labels, sample_weight, mask, threshold, kind=kind, num_classes=num_classes
  )
  return scores, average, pos_label


@functools.partial(jax.jit, static_argnames=("kind", "num_classes"))
def _evaluate(
  predictions: jax.Array,
  labels: jax.Array,
  sample_weight: jax.Array | None,
  mask: jax.Array | None,
  threshold: Any,
  *,
  kind: str,
  num_classes: int,
) -> dict[str, Any]:
  predicted = _inputs.to_ids(predictions, kind, threshold)
  weights = _inputs.combine_weights(sample_weight, mask)
  return all_scores(confusion_from_ids(predicted, labels, num_classes, weights))


all_scores_jit = jax.jit(all_scores)
