"""Checks and conversions shared by the metrics.

Every metric works in two stages: `check_*` functions read only static
information (shapes, dtypes, Python arguments), so they run both eagerly and when a
metric is traced under `jax.jit`, and name the metric, the argument, what it got and
what it accepts; then one jitted kernel per metric does the arithmetic, so an eager
call dispatches one compiled program instead of dozens of small ones. Values inside
arrays are never checked (that would force a trace to a value): a label outside
[0, num_classes) is documented behaviour, not an error.
"""

from __future__ import annotations

import operator
from typing import Any

import jax
import jax.numpy as jnp

AVERAGES: tuple[str | None, ...] = ("binary", "macro", "micro", "weighted", None)

# How a metric reads its `predictions` (see `check_predictions`).
LOGITS, IDS, SCORES = "logits", "ids", "scores"


def check_int(where: str, name: str, value: Any, minimum: int) -> int:
  """Returns `value` as an int, or raises ValueError unless it is an integer >= `minimum`."""
  message = f"{where}: {name} must be an integer >= {minimum}, got {value!r}"
  if isinstance(value, bool):
    raise ValueError(message)
  try:
    integer = operator.index(value)
  except TypeError:
    raise ValueError(message) from None
  if integer < minimum:
    raise ValueError(message)
  return integer


def check_average(where: str, average: Any) -> str | None:
  """Returns `average`, or raises ValueError unless it is one of `AVERAGES`."""
  if not (average is None or isinstance(average, str)) or average not in AVERAGES:
    choices = ", ".join(repr(choice) for choice in AVERAGES)
    raise ValueError(f"{where}: average must be one of {choices}, got {average!r}")
  return average


def with_classes(shape: tuple[int, ...]) -> str:
  """Writes ``shape + (C,)`` for messages, e.g. "(32, C)"."""
  return "(" + ", ".join([*(str(size) for size in shape), "C"]) + ")"


def check_labels(where: str, labels: Any) -> jax.Array:
  """Returns `labels` as an array of integer (or bool) class ids, or raises TypeError."""
  labels = jnp.asarray(labels)
  if not (labels.dtype == jnp.bool_ or jnp.issubdtype(labels.dtype, jnp.integer)):
    raise TypeError(
      f"{where}: labels must be integer class ids, got dtype {labels.dtype} "
      f"(shape {labels.shape}); one-hot labels can be turned into ids with argmax"
    )
  return labels


def check_predictions(
  where: str, inputs: Any, labels: jax.Array
) -> tuple[jax.Array, str, int | None]:
  """Tells how to read what a model gives as class ids of `labels`'s shape.

  The rule, by shape and dtype of `inputs`:
    * shape ``labels.shape + (C,)``: logits, log-probabilities or probabilities over
      C classes (`LOGITS`); the prediction is the argmax over the last axis (ties:
      the first class).
    * shape ``labels.shape``, integer or bool dtype: class ids, used as they are (`IDS`).
    * shape ``labels.shape``, floating dtype: scores of the positive class 1 of a
      binary problem (`SCORES`); the prediction is ``inputs > threshold``.

  Returns:
    `inputs` as an array, its kind, and the number of classes it implies (C, 2 for
    binary scores and bool predictions, None for integer class ids).

  Raises:
    ValueError: when the shape fits none of the rules, naming both shapes.
  """
  inputs = jnp.asarray(inputs)
  if inputs.ndim == labels.ndim + 1 and inputs.shape[:-1] == labels.shape:
    if inputs.shape[-1] < 1:
      raise ValueError(f"{where}: logits have no classes (shape {inputs.shape})")
    return inputs, LOGITS, inputs.shape[-1]
  if inputs.shape != labels.shape:
    raise ValueError(
      f"{where}: predictions of shape {inputs.shape} do not match labels of shape "
      f"{labels.shape}; expected predictions of shape {labels.shape} (class ids, or "
      f"binary scores) or {with_classes(labels.shape)} (logits or probabilities)"
    )
  if inputs.dtype == jnp.bool_:
    return inputs, IDS, 2
  if jnp.issubdtype(inputs.dtype, jnp.integer):
    return inputs, IDS, None
  if jnp.issubdtype(inputs.dtype, jnp.floating):
    return inputs, SCORES, 2
  raise TypeError(f"{where}: predictions must be real numbers, got dtype {inputs.dtype}")


def to_ids(inputs: jax.Array, kind: str, threshold: Any) -> jax.Array:
  """The int32 class ids of predictions of a `kind` from `check_predictions`."""
  if kind == LOGITS:
    return jnp.argmax(inputs, axis=-1).astype(jnp.int32)
  if kind == SCORES:
    return (inputs > threshold).astype(jnp.int32)
  return inputs.astype(jnp.int32)


def check_logits(where: str, logits: Any, labels: jax.Array) -> jax.Array:
  """Returns `logits`, or raises unless it is floating of shape ``labels.shape + (C,)``."""
  logits = jnp.asarray(logits)
  if not (logits.ndim == labels.ndim + 1 and logits.shape[:-1] == labels.shape):
    raise ValueError(
      f"{where}: logits of shape {logits.shape} do not match labels of shape "
      f"{labels.shape}; expected logits of shape {with_classes(labels.shape)}"
    )
  if logits.shape[-1] < 1:
    raise ValueError(f"{where}: logits have no classes (shape {logits.shape})")
  if not jnp.issubdtype(logits.dtype, jnp.floating):
    raise TypeError(f"{where}: logits must be floating, got dtype {logits.dtype}")
  return logits


def resolve_num_classes(
  where: str, num_classes: Any, implied: int | None, default: int | None = None
) -> int:
  """The number of classes: the argument, else what the inputs imply, else `default`.

  Raises:
    ValueError: when `num_classes` is not an integer >= 1, contradicts the width of
      the logits, or is missing for integer class ids with no default.
  """
  if num_classes is None:
    if implied is not None:
      return implied
    if default is not None:
      return default
    raise ValueError(
      f"{where}: num_classes is required when predictions are integer class ids "
      "(it is read from the last axis of logits)"
    )
  num_classes = check_int(where, "num_classes", num_classes, 1)
  if implied is not None and implied != num_classes:
    raise ValueError(
      f"{where}: num_classes={num_classes} contradicts the predictions, which imply "
      f"{implied} classes (the width of the logits, or 2 for binary scores)"
    )
  return num_classes


def check_weights(
  where: str, shape: tuple[int, ...], sample_weight: Any = None, mask: Any = None
) -> tuple[jax.Array | None, jax.Array | None]:
  """Returns `sample_weight` and `mask` as arrays (or None), checked against `shape`.

  Raises:
    ValueError: when either has a shape other than the labels' `shape`.
    TypeError: when `sample_weight` is not real.
  """
  checked = []
  for name, value in (("sample_weight", sample_weight), ("mask", mask)):
    if value is not None:
      value = jnp.asarray(value)
      if value.shape != shape:
        raise ValueError(
          f"{where}: {name} of shape {value.shape} does not match labels of shape {shape}"
        )
      real = jnp.issubdtype(value.dtype, jnp.number) or value.dtype == jnp.bool_
      if not real or jnp.issubdtype(value.dtype, jnp.complexfloating):
        raise TypeError(f"{where}: {name} must be real, got dtype {value.dtype}")
    checked.append(value)
  return checked[0], checked[1]


def combine_weights(sample_weight: jax.Array | None, mask: jax.Array | None) -> jax.Array | None:
  """One float weight per example: `sample_weight` (or 1), and 0 where `mask` is False.

  None when neither is given, meaning every example counts once.
  """
  weights = None
  if sample_weight is not None:
    weights = sample_weight.astype(jnp.promote_types(sample_weight.dtype, jnp.float32))
  if mask is not None:
    keep = mask.astype(jnp.bool_)
    weights = keep.astype(jnp.float32) if weights is None else jnp.where(keep, weights, 0)
  return weights


def safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
  """numerator / denominator, and 0 where the denominator is 0 (sklearn's zero_division=0).

  Both branches are finite, so gradients through it are finite too.
  """
  dtype = jnp.promote_types(jnp.result_type(numerator, denominator), jnp.float32)
  numerator = jnp.asarray(numerator, dtype)
  denominator = jnp.asarray(denominator, dtype)
  zero = denominator == 0
  return jnp.where(zero, jnp.zeros((), dtype), numerator / jnp.where(zero, 1, denominator))


def weighted_mean(values: jax.Array, weights: jax.Array | None) -> jax.Array:
  """Σ wᵢ vᵢ / Σ wᵢ over all elements (plain mean without weights); 0 when Σ wᵢ = 0."""
  values = values.astype(jnp.promote_types(values.dtype, jnp.float32))
  if weights is None:
    return safe_divide(jnp.sum(values), values.size)
  return safe_divide(jnp.sum(values * weights), jnp.sum(weights))
