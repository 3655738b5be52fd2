"""Precision, recall and F1 from the confusion matrix, with scikit-learn's averages.

For class c, with M the confusion matrix (rows true, columns predicted),
TPc = Mcc, Pc = Σᵢ Mᵢc (predicted as c) and Sc = Σⱼ Mcⱼ (support, truly c):

  precision_c = TPc / Pc,   recall_c = TPc / Sc,   F1_c = 2 TPc / (Pc + Sc)

(F1_c is the harmonic mean 2 PR / (P + R) whenever that is defined). `average`:

* ``"binary"``: the scores of class `pos_label` of a 2-class problem;
* ``"micro"``: the formulas on the summed counts ΣTP, ΣP, ΣS (for single-label
  data with every label in range, all three equal the accuracy);
* ``"macro"``: the unweighted mean over the classes that occur in the labels or the
  predictions (classes absent from both are left out, as scikit-learn does with its
  default ``labels=None``, and as torchmetrics does);
* ``"weighted"``: the mean over classes weighted by the support Sc;
* ``None``: the per-class scores, an array of length C.

Zero division: a ratio whose denominator is 0 is 0.0, as scikit-learn's
``zero_division=0`` (without its warning): precision of a class never predicted,
recall of a class absent from the labels, F1 of a class in neither, and any average
with nothing to average.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from optlab.metrics import _inputs, _scores
from optlab.metrics._scores import PrecisionRecallF1


def scores_from_confusion_matrix(
  matrix: jax.Array, average: str | None = "macro", pos_label: int = 1
) -> PrecisionRecallF1:
  """Precision, recall and F1 of a (C, C) confusion matrix (rows true, columns predicted).

  The formulas, averages and zero-division rule are those of `precision_recall_f1`;
  use this to score a matrix summed over batches (`confusion_matrix` is additive).

  Args:
    matrix: a (C, C) matrix of counts or summed weights.
    average: ``"binary"``, ``"macro"``, ``"micro"``, ``"weighted"`` or None.
    pos_label: the positive class for ``average="binary"``; ignored otherwise.

  Returns:
    A `PrecisionRecallF1` of scalars, or of (C,) arrays for ``average=None``.

  Example:
    >>> m = jnp.array([[3, 1], [0, 4]])
    >>> [round(float(s), 4) for s in scores_from_confusion_matrix(m, "binary")]
    [0.8, 1.0, 0.8889]
  """
  where = "scores_from_confusion_matrix"
  matrix = jnp.asarray(matrix)
  if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] < 1:
    raise ValueError(f"{where}: matrix must be square (C, C) with C >= 1, got {matrix.shape}")
  average = _inputs.check_average(where, average)
  pos_label = _scores.check_binary(where, matrix.shape[0], average, pos_label)
  return _scores.select(_scores.all_scores_jit(matrix), average, pos_label)


def _checked(
  where: str,
  predictions: Any,
  labels: Any,
  num_classes: Any,
  average: Any,
  pos_label: Any,
  sample_weight: Any,
  mask: Any,
  threshold: Any,
) -> PrecisionRecallF1:
  """Checks the arguments of a score and returns precision, recall and F1."""
  scores, average, pos_label = _scores.evaluate(
    where, predictions, labels, num_classes, average=average, pos_label=pos_label,
    sample_weight=sample_weight, mask=mask, threshold=threshold,
  )
  return _scores.select(scores, average, pos_label)


def precision_recall_f1(
  predictions: Any,
  labels: Any,
  num_classes: int | None = None,
  *,
  average: str | None = "binary",
  pos_label: int = 1,
  sample_weight: Any = None,
  mask: Any = None,
  threshold: float = 0.5,
) -> PrecisionRecallF1:
  """Precision TP/(TP+FP), recall TP/(TP+FN) and F1 2TP/(2TP+FP+FN), from one matrix.

  See the module docstring for the averages and the zero-division rule (0.0, as
  scikit-learn's ``zero_division=0``).

  Args:
    predictions: logits or probabilities of shape ``labels.shape + (C,)`` (argmax),
      integer class ids of ``labels.shape``, or binary positive-class scores of
      ``labels.shape`` (thresholded at `threshold`).
    labels: integer class ids, any shape. Ids outside [0, C) are left out.
    num_classes: C; read from the logits when omitted (2 for binary scores, and for
      ``average="binary"``); required for integer class ids otherwise. Static.
    average: ``"binary"`` (default, as scikit-learn), ``"macro"``, ``"micro"``,
      ``"weighted"``, or None for per-class scores. Static.
    pos_label: the positive class (0 or 1) for ``average="binary"``; ignored
      otherwise. Static.
    sample_weight: optional weight per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example.
    threshold: the decision threshold for binary scores (0.5 for probabilities,
      0.0 for logits).

  Returns:
    A `PrecisionRecallF1` of float scalars, or of (C,) arrays for ``average=None``.

  Example:
    >>> p, r, f = precision_recall_f1(jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 0, 1]))
    >>> [round(float(x), 4) for x in (p, r, f)]
    [0.6667, 1.0, 0.8]
  """
  scores = _checked(
    "precision_recall_f1", predictions, labels, num_classes, average, pos_label,
    sample_weight, mask, threshold,
  )
  return scores


def precision(
  predictions: Any,
  labels: Any,
  num_classes: int | None = None,
  *,
  average: str | None = "binary",
  pos_label: int = 1,
  sample_weight: Any = None,
  mask: Any = None,
  threshold: float = 0.5,
) -> jax.Array:
  """Precision: TPc / (TPc + FPc), the fraction of predictions of class c that are right.

  Matches ``sklearn.metrics.precision_score(labels, predictions, average=...,
  zero_division=0)``; see the module docstring for the averages.

  Args:
    predictions: logits or probabilities of shape ``labels.shape + (C,)`` (argmax),
      integer class ids of ``labels.shape``, or binary positive-class scores of
      ``labels.shape`` (thresholded at `threshold`).
    labels: integer class ids, any shape. Ids outside [0, C) are left out.
    num_classes: C; read from the logits when omitted (2 for binary scores, and for
      ``average="binary"``); required for integer class ids otherwise. Static.
    average: ``"binary"`` (default, as scikit-learn), ``"macro"``, ``"micro"``,
      ``"weighted"``, or None for per-class scores. Static.
    pos_label: the positive class (0 or 1) for ``average="binary"``; ignored
      otherwise. Static.
    sample_weight: optional weight per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example.
    threshold: the decision threshold for binary scores (0.5 for probabilities,
      0.0 for logits).

  Returns:
    A float scalar, or a (C,) array for ``average=None``.

  Example:
    >>> round(float(precision(jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 0, 1]))), 4)
    0.6667
  """
  scores = _checked(
    "precision", predictions, labels, num_classes, average, pos_label, sample_weight, mask,
    threshold,
  )
  return scores.precision


def recall(
  predictions: Any,
  labels: Any,
  num_classes: int | None = None,
  *,
  average: str | None = "binary",
  pos_label: int = 1,
  sample_weight: Any = None,
  mask: Any = None,
  threshold: float = 0.5,
) -> jax.Array:
  """Recall: TPc / (TPc + FNc), the fraction of examples of class c that are found.

  Matches ``sklearn.metrics.recall_score(labels, predictions, average=...,
  zero_division=0)``; see the module docstring for the averages.

  Args:
    predictions: logits or probabilities of shape ``labels.shape + (C,)`` (argmax),
      integer class ids of ``labels.shape``, or binary positive-class scores of
      ``labels.shape`` (thresholded at `threshold`).
    labels: integer class ids, any shape. Ids outside [0, C) are left out.
    num_classes: C; read from the logits when omitted (2 for binary scores, and for
      ``average="binary"``); required for integer class ids otherwise. Static.
    average: ``"binary"`` (default, as scikit-learn), ``"macro"``, ``"micro"``,
      ``"weighted"``, or None for per-class scores. Static.
    pos_label: the positive class (0 or 1) for ``average="binary"``; ignored
      otherwise. Static.
    sample_weight: optional weight per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example.
    threshold: the decision threshold for binary scores (0.5 for probabilities,
      0.0 for logits).

  Returns:
    A float scalar, or a (C,) array for ``average=None``.

  Example:
    >>> float(recall(jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 0, 1])))
    1.0
  """
  scores = _checked(
    "recall", predictions, labels, num_classes, average, pos_label, sample_weight, mask,
    threshold,
  )
  return scores.recall


def f1_score(
  predictions: Any,
  labels: Any,
  num_classes: int | None = None,
  *,
  average: str | None = "binary",
  pos_label: int = 1,
  sample_weight: Any = None,
  mask: Any = None,
  threshold: float = 0.5,
) -> jax.Array:
  """F1: 2 TPc / (2 TPc + FPc + FNc), the harmonic mean of precision and recall.

  Matches ``sklearn.metrics.f1_score(labels, predictions, average=...,
  zero_division=0)``; the macro F1 is the mean of per-class F1 (not the F1 of the
  mean precision and recall). See the module docstring for the averages.

  Args:
    predictions: logits or probabilities of shape ``labels.shape + (C,)`` (argmax),
      integer class ids of ``labels.shape``, or binary positive-class scores of
      ``labels.shape`` (thresholded at `threshold`).
    labels: integer class ids, any shape. Ids outside [0, C) are left out.
    num_classes: C; read from the logits when omitted (2 for binary scores, and for
      ``average="binary"``); required for integer class ids otherwise. Static.
    average: ``"binary"`` (default, as scikit-learn), ``"macro"``, ``"micro"``,
      ``"weighted"``, or None for per-class scores. Static.
    pos_label: the positive class (0 or 1) for ``average="binary"``; ignored
      otherwise. Static.
    sample_weight: optional weight per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example.
    threshold: the decision threshold for binary scores (0.5 for probabilities,
      0.0 for logits).

  Returns:
    A float scalar, or a (C,) array for ``average=None``.

  Example:
    >>> round(float(f1_score(jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 0, 1]))), 4)
    0.8
  """
  scores = _checked(
    "f1_score", predictions, labels, num_classes, average, pos_label, sample_weight, mask,
    threshold,
  )
  return scores.f1


def classification_report(
  predictions: Any,
  labels: Any,
  num_classes: int | None = None,
  *,
  target_names: Sequence[str] | None = None,
  sample_weight: Any = None,
  mask: Any = None,
  threshold: float = 0.5,
) -> dict[str, Any]:
  """Per-class and averaged precision, recall, F1 and support, as a dict.

  The layout of ``sklearn.metrics.classification_report(..., output_dict=True)``:
  one entry per class ``{"precision", "recall", "f1-score", "support"}`` (every
  class 0..C-1, including absent ones), then ``"accuracy"`` (ΣTP / ΣS), ``"macro
  avg"`` and ``"weighted avg"`` (support: the total). Values are JAX scalars, so the
  report can be built under `jit` (which hands dicts back with their keys sorted);
  ``jax.tree.map(float, report)`` gives floats.

  Args:
    predictions: logits, probabilities, class ids or binary scores, as for `precision`.
    labels: integer class ids, any shape. Ids outside [0, C) are left out.
    num_classes: C; read from the logits when omitted, required for class ids.
    target_names: optional C names for the classes' keys; default ``"0"``, ``"1"``, ...
    sample_weight: optional weight per example, of ``labels.shape``.
    mask: optional bool per example, of ``labels.shape``; False drops the example.
    threshold: the decision threshold for binary scores.

  Returns:
    A dict of dicts of scalars, as described above. Support is an int32 count, or a
    float sum of weights when `sample_weight` or `mask` is given.

  Example:
    >>> report = classification_report(jnp.array([0, 1, 1, 1]), jnp.array([0, 1, 0, 1]), 2)
    >>> report["1"]["support"].tolist(), round(float(report["1"]["precision"]), 4)
    (2, 0.6667)
    >>> float(report["accuracy"]), sorted(report)
    (0.75, ['0', '1', 'accuracy', 'macro avg', 'weighted avg'])
  """
  where = "classification_report"
  scores, _, _ = _scores.evaluate(
    where, predictions, labels, num_classes, average=None, pos_label=1,
    sample_weight=sample_weight, mask=mask, threshold=threshold,
  )
  num_classes = scores["matrix"].shape[0]
  if target_names is None:
    names = [str(c) for c in range(num_classes)]
  else:
    names = [str(name) for name in target_names]
    if len(names) != num_classes:
      raise ValueError(
        f"{where}: target_names has {len(names)} names for num_classes={num_classes}"
      )
    if len(set(names) | set(_SUMMARY_KEYS)) != len(names) + len(_SUMMARY_KEYS):
      raise ValueError(
        f"{where}: target_names must be distinct and differ from {_SUMMARY_KEYS}, got {names}"
      )
  precisions, recalls, f1s = (list(values) for values in scores["per_class"])
  supports = list(scores["support"])
  report: dict[str, Any] = {
    name: _row(precisions[c], recalls[c], f1s[c], supports[c]) for c, name in enumerate(names)
  }
  report["accuracy"] = scores["accuracy"]
  report["macro avg"] = _row(*scores["macro"], scores["total"])
  report["weighted avg"] = _row(*scores["weighted"], scores["total"])
  return report


_SUMMARY_KEYS = ("accuracy", "macro avg", "weighted avg")


def _row(
  precision: jax.Array, recall: jax.Array, f1: jax.Array, support: jax.Array
) -> dict[str, jax.Array]:
  return {"precision": precision, "recall": recall, "f1-score": f1, "support": support}
