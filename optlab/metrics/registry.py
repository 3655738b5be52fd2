"""Metrics by name, for trainers and early stopping: `get`, `names`, `greater_is_better`.

Every registered metric is a function ``(logits, labels, *, sample_weight=None,
mask=None) -> scalar``, `jit`-able, with the number of classes read from the
logits' last axis. The names follow scikit-learn's scorers (``"f1_macro"``,
``"precision_weighted"``, ...); the binary ones (``"precision"``, ``"recall"``,
``"f1"``) score class 1 of two-class logits. Besides the listed ``"top5_accuracy"``,
any ``"top{k}_accuracy"`` with k >= 1 is understood.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from optlab.metrics.accuracy import accuracy, top_k_accuracy
from optlab.metrics.classification import f1_score, precision, recall
from optlab.metrics.losses import bits_per_character, cross_entropy, log_loss, perplexity

MetricFn = Callable[..., jax.Array]


class _Entry(NamedTuple):
  fn: MetricFn
  greater_is_better: bool


def _averaged(score: MetricFn, short: str, average: str) -> MetricFn:
  """`score` with a fixed `average`, as a named ``(logits, labels)`` metric."""

  def metric(
    logits: Any, labels: Any, *, sample_weight: Any = None, mask: Any = None
  ) -> jax.Array:
    return score(logits, labels, average=average, sample_weight=sample_weight, mask=mask)

  name = short if average == "binary" else f"{short}_{average}"
  metric.__name__ = metric.__qualname__ = name
  metric.__doc__ = f"``{score.__name__}(logits, labels, average={average!r})``."
  return metric


def _top_k(k: int) -> MetricFn:
  """`top_k_accuracy` with a fixed `k`, as a named ``(logits, labels)`` metric."""

  def metric(
    logits: Any, labels: Any, *, sample_weight: Any = None, mask: Any = None
  ) -> jax.Array:
    return top_k_accuracy(logits, labels, k, sample_weight=sample_weight, mask=mask)

  metric.__name__ = metric.__qualname__ = f"top{k}_accuracy"
  metric.__doc__ = f"``top_k_accuracy(logits, labels, k={k})``."
  return metric


_METRICS: dict[str, _Entry] = {
  "accuracy": _Entry(accuracy, True),
  "top5_accuracy": _Entry(_top_k(5), True),
  "loss": _Entry(cross_entropy, False),
  "cross_entropy": _Entry(cross_entropy, False),
  "log_loss": _Entry(log_loss, False),
  "bits_per_character": _Entry(bits_per_character, False),
  "perplexity": _Entry(perplexity, False),
}
for _score, _short in ((precision, "precision"), (recall, "recall"), (f1_score, "f1")):
  for _avg in ("binary", "macro", "micro", "weighted"):
    _fn = _averaged(_score, _short, _avg)
    _METRICS[_fn.__name__] = _Entry(_fn, True)

_TOP_K = re.compile(r"top([1-9][0-9]*)_accuracy")


def names() -> tuple[str, ...]:
  """The registered metric names, sorted (any ``"top{k}_accuracy"`` is also accepted)."""
  return tuple(sorted(_METRICS))


def _entry(where: str, name: Any) -> _Entry:
  if isinstance(name, str):
    if name in _METRICS:
      return _METRICS[name]
    match = _TOP_K.fullmatch(name)
    if match:
      return _Entry(_top_k(int(match.group(1))), True)
  known = names()
  close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.4)
  hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
  raise ValueError(f"{where}: {name!r} is not a registered metric.{hint} Known: {', '.join(known)}")


def get(name: str) -> MetricFn:
  """The metric called `name`: a function ``(logits, labels) -> scalar``.

  The function also takes keyword arguments `sample_weight` and `mask` (one value
  per example, of ``labels.shape``), e.g. to drop the padding of a last batch.

  Args:
    name: one of `names()`, or ``"top{k}_accuracy"`` for any k >= 1.

  Returns:
    The metric function; `jit`-able as it is.

  Raises:
    ValueError: for an unknown name, listing the closest known names.

  Example:
    >>> import jax.numpy as jnp
    >>> f1 = get("f1_macro")
    >>> float(f1(jnp.array([[2.0, 0.0], [0.0, 1.0]]), jnp.array([0, 1])))
    1.0
  """
  return _entry("get", name).fn


def greater_is_better(name: str) -> bool:
  """Whether a larger value of metric `name` is better (scores) or worse (losses).

  Early stopping and model selection use it to know which way to compare.

  Raises:
    ValueError: for an unknown name, listing the closest known names.

  Example:
    >>> greater_is_better("accuracy"), greater_is_better("loss")
    (True, False)
  """
  return _entry("greater_is_better", name).greater_is_better
