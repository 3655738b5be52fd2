"""Tests of optlab.metrics against scikit-learn, under jit, through the registry, and errors."""

import math
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from optlab import metrics

SEEDS = (0, 1, 2)
NUM_CLASSES = (2, 3, 7)
AVERAGES = ("binary", "macro", "micro", "weighted", None)
N = 60


def _data(seed, num_classes, absent=False):
  """Random logits (N, C), labels and integer predictions.

  With `absent`, class 0 never occurs in the labels, the last class is never
  predicted, and (for C > 3) class 1 occurs in neither, so zero division happens.
  """
  rng = np.random.default_rng(seed)
  logits = rng.standard_normal((N, num_classes)).astype(np.float32)
  labels = rng.integers(0, num_classes, N)
  if absent:
    allowed = [c for c in range(num_classes) if c != 0 and not (num_classes > 3 and c == 1)]
    labels = rng.choice(allowed, N)
    blocked = [num_classes - 1] + ([1] if num_classes > 3 else [])
    logits[:, blocked] = -10.0
  predictions = logits.argmax(-1)
  return logits, labels.astype(np.int32), predictions.astype(np.int32)


def _weights(seed):
  return np.random.default_rng(seed + 100).uniform(0.1, 2.0, N).astype(np.float32)


def _sk_scores(name, labels, predictions, num_classes, average, pos_label=1, weights=None):
  """scikit-learn's score, with every class listed for per-class output."""
  fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[name]
  kwargs = {"labels": list(range(num_classes))} if average is None else {}
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    return fn(labels, predictions, average=average, pos_label=pos_label, zero_division=0,
              sample_weight=weights, **kwargs)


def _close(actual, expected, atol=1e-5):
  np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=1e-5, atol=atol)


# Against scikit-learn.


@pytest.mark.parametrize("num_classes", NUM_CLASSES)
@pytest.mark.parametrize("seed", SEEDS)
def test_accuracy_matches_sklearn(seed, num_classes):
  logits, labels, predictions = _data(seed, num_classes)
  weights = _weights(seed)
  expected = skm.accuracy_score(labels, predictions)
  _close(metrics.accuracy(logits, labels), expected)
  _close(metrics.accuracy(predictions, labels), expected)
  _close(metrics.accuracy(logits, labels, sample_weight=weights),
         skm.accuracy_score(labels, predictions, sample_weight=weights))


@pytest.mark.parametrize("seed", SEEDS)
def test_binary_scores_are_thresholded(seed):
  rng = np.random.default_rng(seed)
  probabilities = rng.uniform(size=N).astype(np.float32)
  labels = rng.integers(0, 2, N).astype(np.int32)
  hard = (probabilities > 0.5).astype(np.int32)
  _close(metrics.accuracy(probabilities, labels), skm.accuracy_score(labels, hard))
  _close(metrics.f1_score(probabilities, labels), skm.f1_score(labels, hard))
  logit = np.log(probabilities) - np.log1p(-probabilities)
  _close(metrics.precision(logit, labels, threshold=0.0), skm.precision_score(labels, hard))
  hard_07 = (probabilities > 0.7).astype(np.int32)
  _close(metrics.recall(probabilities, labels, threshold=0.7), skm.recall_score(labels, hard_07))
  chex.assert_trees_all_equal(
    metrics.confusion_matrix(probabilities, labels),
    jnp.asarray(skm.confusion_matrix(labels, hard, labels=[0, 1]), jnp.int32),
  )
  # bool predictions are binary class ids
  _close(metrics.accuracy(hard.astype(bool), labels), skm.accuracy_score(labels, hard))


@pytest.mark.filterwarnings("ignore:'k' .* will result in a perfect score")
@pytest.mark.parametrize("num_classes", NUM_CLASSES)
@pytest.mark.parametrize("seed", SEEDS)
def test_top_k_accuracy_matches_sklearn(seed, num_classes):
  logits, labels, predictions = _data(seed, num_classes)
  weights = _weights(seed)
  for k in range(1, num_classes + 1):
    if num_classes == 2:  # scikit-learn wants 1-D scores for binary problems
      expected = skm.accuracy_score(labels, predictions) if k == 1 else 1.0
      expected_weighted = (
        skm.accuracy_score(labels, predictions, sample_weight=weights) if k == 1 else 1.0
      )
    else:
      kwargs = {"k": k, "labels": list(range(num_classes))}
      expected = skm.top_k_accuracy_score(labels, logits, **kwargs)
      expected_weighted = skm.top_k_accuracy_score(labels, logits, sample_weight=weights, **kwargs)
    _close(metrics.top_k_accuracy(logits, labels, k), expected)
    _close(metrics.top_k_accuracy(logits, labels, k, sample_weight=weights), expected_weighted)


@pytest.mark.parametrize("absent", [False, True], ids=["all", "absent"])
@pytest.mark.parametrize("num_classes", NUM_CLASSES)
@pytest.mark.parametrize("seed", SEEDS)
def test_confusion_matrix_matches_sklearn(seed, num_classes, absent):
  logits, labels, predictions = _data(seed, num_classes, absent)
  weights = _weights(seed)
  every = list(range(num_classes))
  expected = skm.confusion_matrix(labels, predictions, labels=every)
  for inputs in (logits, predictions):
    matrix = metrics.confusion_matrix(inputs, labels, num_classes)
    assert matrix.dtype == jnp.int32
    np.testing.assert_array_equal(matrix, expected)
  np.testing.assert_array_equal(metrics.confusion_matrix(logits, labels), expected)
  _close(metrics.confusion_matrix(predictions, labels, num_classes, sample_weight=weights),
         skm.confusion_matrix(labels, predictions, labels=every, sample_weight=weights), 1e-4)


PRF_CASES = [
  (seed, num_classes, absent, average)
  for seed in SEEDS[:2]
  for num_classes in NUM_CLASSES
  for absent in (False, True)
  for average in AVERAGES
  if average != "binary" or num_classes == 2
]


@pytest.mark.parametrize("seed, num_classes, absent, average", PRF_CASES, ids=str)
def test_precision_recall_f1_match_sklearn(seed, num_classes, absent, average):
  logits, labels, predictions = _data(seed, num_classes, absent)
  weights = _weights(seed)
  names = ("precision", "recall", "f1")
  for pos_label in (0, 1) if average == "binary" else (1,):
    expected = [
      _sk_scores(name, labels, predictions, num_classes, average, pos_label) for name in names
    ]
    kwargs = {"average": average, "pos_label": pos_label}
    together = metrics.precision_recall_f1(logits, labels, **kwargs)
    assert isinstance(together, metrics.PrecisionRecallF1)
    if average is None:
      chex.assert_shape(list(together), (num_classes,))
    _close(list(together), expected)
    _close(list(metrics.precision_recall_f1(predictions, labels, num_classes, **kwargs)),
           expected)
    weighted = metrics.precision_recall_f1(logits, labels, sample_weight=weights, **kwargs)
    _close(list(weighted), [
      _sk_scores(name, labels, predictions, num_classes, average, pos_label, weights)
      for name in names
    ])
  singles = (metrics.precision(logits, labels, **kwargs), metrics.recall(logits, labels, **kwargs),
             metrics.f1_score(logits, labels, **kwargs))
  _close(list(singles), expected)


@pytest.mark.parametrize("absent", [False, True], ids=["all", "absent"])
@pytest.mark.parametrize("num_classes", NUM_CLASSES)
def test_classification_report_matches_sklearn(num_classes, absent):
  logits, labels, predictions = _data(3, num_classes, absent)
  report = metrics.classification_report(logits, labels)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    expected = skm.classification_report(
      labels, predictions, labels=list(range(num_classes)), output_dict=True, zero_division=0
    )
  for c in range(num_classes):
    for key in ("precision", "recall", "f1-score", "support"):
      _close(report[str(c)][key], expected[str(c)][key])
  _close(report["accuracy"], skm.accuracy_score(labels, predictions))
  for key, average in (("macro avg", "macro"), ("weighted avg", "weighted")):
    for field, name in (("precision", "precision"), ("recall", "recall"), ("f1-score", "f1")):
      _close(report[key][field], _sk_scores(name, labels, predictions, num_classes, average))
    assert int(report[key]["support"]) == N
  named = metrics.classification_report(logits, labels, target_names=[f"c{i}" for i in
                                                                      range(num_classes)])
  assert list(named)[:num_classes] == [f"c{i}" for i in range(num_classes)]


@pytest.mark.parametrize("num_classes", NUM_CLASSES)
@pytest.mark.parametrize("seed", SEEDS)
def test_cross_entropy_matches_sklearn_log_loss(seed, num_classes):
  logits, labels, _ = _data(seed, num_classes)
  logits = 3.0 * logits
  weights = _weights(seed)
  shifted = np.exp(logits - logits.max(-1, keepdims=True)).astype(np.float64)
  probabilities = shifted / shifted.sum(-1, keepdims=True)
  every = list(range(num_classes))
  expected = skm.log_loss(labels, probabilities, labels=every)
  _close(metrics.cross_entropy(logits, labels), expected, 1e-4)
  _close(metrics.log_loss(logits, labels), expected, 1e-4)
  _close(metrics.log_loss(np.log(probabilities).astype(np.float32), labels), expected, 1e-4)
  _close(metrics.cross_entropy(logits, labels, sample_weight=weights),
         skm.log_loss(labels, probabilities, labels=every, sample_weight=weights), 1e-4)
  _close(metrics.bits_per_character(logits, labels), expected / math.log(2), 1e-4)
  _close(metrics.perplexity(logits, labels), math.exp(expected), 1e-3)


def test_uniform_model_scores_log2_c_bits_and_c_perplexity():
  logits = jnp.zeros((4, 9, 27))
  targets = jnp.arange(36).reshape(4, 9) % 27
  _close(metrics.bits_per_character(logits, targets), math.log2(27))
  _close(metrics.perplexity(logits, targets), 27.0, 1e-4)


# Conventions: zero division, masks and padding, sequences, out-of-range ids.


def test_zero_division_gives_zero():
  # class 2 is never predicted and never true; class 0 is never predicted.
  predictions = jnp.array([1, 1, 1, 1])
  labels = jnp.array([0, 1, 1, 0])
  p, r, f = metrics.precision_recall_f1(predictions, labels, 3, average=None)
  _close(p, [0.0, 0.5, 0.0])
  _close(r, [0.0, 1.0, 0.0])
  _close(f, [0.0, 2 / 3, 0.0])
  # macro leaves class 2 (in neither labels nor predictions) out, as scikit-learn.
  _close(metrics.f1_score(predictions, labels, 3, average="macro"), 1 / 3)
  # Nothing to score at all: every average is 0.
  nothing = jnp.zeros(4, bool)
  for average in ("macro", "micro", "weighted"):
    _close(metrics.f1_score(predictions, labels, 3, average=average, mask=nothing), 0.0)
  _close(metrics.accuracy(predictions, labels, mask=nothing), 0.0)


def test_mask_drops_padding():
  num_classes = 7
  logits, labels, predictions = _data(4, num_classes)
  pad = 13
  padded_logits = np.concatenate([logits, np.zeros((pad, num_classes), np.float32)])
  padded_labels = np.concatenate([labels, np.full(pad, -1, np.int32)])
  mask = np.arange(N + pad) < N
  for average in ("macro", "micro", "weighted"):
    _close(metrics.f1_score(padded_logits, padded_labels, average=average, mask=mask),
           metrics.f1_score(logits, labels, average=average))
  _close(metrics.accuracy(padded_logits, padded_labels, mask=mask),
         skm.accuracy_score(labels, predictions))
  _close(metrics.top_k_accuracy(padded_logits, padded_labels, 1, mask=mask),
         skm.accuracy_score(labels, predictions))
  _close(metrics.cross_entropy(padded_logits, np.maximum(padded_labels, 0), mask=mask),
         metrics.cross_entropy(logits, labels))
  _close(metrics.confusion_matrix(padded_logits, padded_labels, mask=mask),
         skm.confusion_matrix(labels, predictions, labels=list(range(num_classes))))
  # mask and sample_weight compose
  weights = np.concatenate([_weights(4), np.full(pad, 5.0, np.float32)])
  _close(metrics.accuracy(padded_logits, padded_labels, sample_weight=weights, mask=mask),
         skm.accuracy_score(labels, predictions, sample_weight=weights[:N]))


def test_out_of_range_ids_are_left_out_of_the_confusion_matrix():
  matrix = metrics.confusion_matrix(jnp.array([0, 1, 5, 1]), jnp.array([0, -1, 1, 1]), 2)
  np.testing.assert_array_equal(matrix, [[1, 0], [0, 1]])


def test_sequences_are_flattened():
  flat_logits, flat_labels, _ = _data(10, 7)
  logits, labels = flat_logits.reshape(4, N // 4, 7), flat_labels.reshape(4, N // 4)
  chex.assert_trees_all_equal(
    metrics.confusion_matrix(logits, labels), metrics.confusion_matrix(flat_logits, flat_labels)
  )
  for name in ("accuracy", "f1_macro", "loss"):
    fn = metrics.get(name)
    _close(fn(logits, labels), fn(flat_logits, flat_labels))


def test_confusion_matrices_add_over_batches():
  logits, labels, _ = _data(5, 7, absent=True)
  half = N // 2
  total = metrics.confusion_matrix(logits[:half], labels[:half]) + metrics.confusion_matrix(
    logits[half:], labels[half:]
  )
  for average in AVERAGES[1:]:
    expected = metrics.precision_recall_f1(logits, labels, average=average)
    chex.assert_trees_all_close(metrics.scores_from_confusion_matrix(total, average), expected)


# jit == eager.

def _every_metric(logits, labels, mask):
  """Every public metric of 3-class logits, in one pytree (so `jit` compiles it once)."""
  values = {
    "accuracy": metrics.accuracy(logits, labels, mask=mask),
    "top_k_accuracy": metrics.top_k_accuracy(logits, labels, 2, mask=mask),
    "confusion_matrix": metrics.confusion_matrix(logits, labels, 3, mask=mask),
    "cross_entropy": metrics.cross_entropy(logits, labels, mask=mask),
    "bits_per_character": metrics.bits_per_character(logits, labels, mask=mask),
    "perplexity": metrics.perplexity(logits, labels, mask=mask),
    "classification_report": metrics.classification_report(logits, labels, mask=mask),
  }
  for fn in (metrics.precision, metrics.recall, metrics.f1_score, metrics.precision_recall_f1):
    for average in ("macro", "micro", "weighted", None):
      values[f"{fn.__name__}_{average}"] = fn(logits, labels, average=average, mask=mask)
  return values


def test_jit_matches_eager():
  logits, labels, _ = _data(6, 3, absent=True)
  mask = np.arange(N) % 7 != 0
  eager = _every_metric(logits, labels, mask)
  jitted = jax.jit(_every_metric)(logits, labels, mask)
  chex.assert_trees_all_close(jitted, eager, rtol=1e-6)


def test_jit_with_static_arguments_and_integer_predictions():
  _, labels, predictions = _data(7, 2)
  f1 = jax.jit(metrics.f1_score, static_argnames=("num_classes", "average", "pos_label"))
  for pos_label in (0, 1):
    _close(f1(predictions, labels, average="binary", pos_label=pos_label),
           skm.f1_score(labels, predictions, pos_label=pos_label))
  matrix = jax.jit(metrics.confusion_matrix, static_argnums=2)(predictions, labels, 2)
  np.testing.assert_array_equal(matrix, skm.confusion_matrix(labels, predictions))


# The registry.


def test_registry_names():
  names = metrics.names()
  assert names == tuple(sorted(names))
  for name in ("accuracy", "top5_accuracy", "loss", "cross_entropy", "log_loss", "perplexity",
               "bits_per_character", "precision", "recall", "f1", "precision_macro",
               "recall_macro", "f1_macro", "f1_micro", "f1_weighted", "precision_weighted"):
    assert name in names


@pytest.mark.parametrize("num_classes", [2, 7])
def test_every_registered_metric_is_a_jittable_scalar(num_classes):
  binary = ("precision", "recall", "f1")
  names = [n for n in metrics.names() if (n in binary) == (num_classes == 2)]
  logits, labels, _ = _data(8, num_classes, absent=True)

  def every(logits, labels, mask):
    return {name: metrics.get(name)(logits, labels, mask=mask) for name in names}

  values = every(logits, labels, None)
  assert set(values) == set(names)
  chex.assert_tree_all_finite(values)
  # an all-True mask changes nothing, so jit-with-mask must agree with eager-without.
  jitted = jax.jit(every)(logits, labels, np.ones(N, bool))
  chex.assert_trees_all_close(jitted, values, rtol=1e-6)
  for name in names:
    chex.assert_shape(values[name], ())
    assert isinstance(metrics.greater_is_better(name), bool)


def test_registry_values_and_directions():
  logits, labels, predictions = _data(9, 7, absent=True)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for average in ("macro", "micro", "weighted"):
      _close(metrics.get(f"f1_{average}")(logits, labels),
             skm.f1_score(labels, predictions, average=average, zero_division=0))
  _close(metrics.get("accuracy")(logits, labels), skm.accuracy_score(labels, predictions))
  _close(metrics.get("top3_accuracy")(logits, labels),
         skm.top_k_accuracy_score(labels, logits, k=3, labels=list(range(7))))
  assert metrics.get("loss") is metrics.cross_entropy
  for name in ("accuracy", "top5_accuracy", "top2_accuracy", "f1_macro", "precision", "recall"):
    assert metrics.greater_is_better(name) is True
  for name in ("loss", "cross_entropy", "log_loss", "bits_per_character", "perplexity"):
    assert metrics.greater_is_better(name) is False


@pytest.mark.parametrize("fn", [metrics.get, metrics.greater_is_better])
def test_registry_unknown_name_suggests_close_names(fn):
  with pytest.raises(ValueError, match=r"'f1_marco'.*Did you mean 'f1_macro'"):
    fn("f1_marco")
  with pytest.raises(ValueError, match="not a registered metric"):
    fn("top0_accuracy")
  with pytest.raises(ValueError, match="Known: accuracy"):
    fn(3)


# Errors.


def test_mismatched_shapes_name_both_shapes():
  logits = jnp.zeros((8, 3))
  labels = jnp.zeros(7, jnp.int32)
  for fn in (metrics.accuracy, metrics.confusion_matrix, metrics.cross_entropy,
             metrics.top_k_accuracy, metrics.get("f1_macro")):
    with pytest.raises(ValueError, match=r"\(8, 3\).*\(7,\)"):
      fn(logits, labels)
    with pytest.raises(ValueError, match=r"\(8, 3\).*\(7,\)"):
      jax.jit(fn)(logits, labels)
  with pytest.raises(ValueError, match=r"\(5,\).*\(7,\)"):
    metrics.precision(jnp.zeros(5, jnp.int32), labels, 3, average="macro")
  with pytest.raises(ValueError, match=r"mask of shape \(6,\).*\(7,\)"):
    metrics.accuracy(jnp.zeros(7, jnp.int32), labels, mask=jnp.ones(6, bool))
  with pytest.raises(ValueError, match=r"sample_weight of shape \(7, 1\)"):
    metrics.confusion_matrix(jnp.zeros(7, jnp.int32), labels, 2, sample_weight=jnp.ones((7, 1)))


def test_num_classes_is_checked():
  predictions = jnp.array([0, 1, 1])
  labels = jnp.array([0, 1, 0])
  for bad in (0, -1, 1.5, True):
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
      metrics.confusion_matrix(predictions, labels, bad)
  with pytest.raises(ValueError, match="num_classes is required"):
    metrics.confusion_matrix(predictions, labels)
  with pytest.raises(ValueError, match="num_classes is required"):
    metrics.f1_score(predictions, labels, average="macro")
  with pytest.raises(ValueError, match="num_classes=4 contradicts"):
    metrics.f1_score(jnp.zeros((3, 3)), labels, 4, average="macro")
  with pytest.raises(ValueError, match="average='binary' needs num_classes=2, got 3"):
    metrics.f1_score(jnp.zeros((3, 3)), labels)
  with pytest.raises(ValueError, match="pos_label must be 0 or 1"):
    metrics.recall(predictions, labels, pos_label=2)


@pytest.mark.parametrize("average", ["samples", "MACRO", "", 1])
def test_unknown_average_lists_the_choices(average):
  with pytest.raises(ValueError, match="average must be one of 'binary', 'macro', 'micro', "
                                       "'weighted', None"):
    metrics.precision(jnp.array([0, 1]), jnp.array([0, 1]), average=average)


def test_other_argument_errors():
  logits = jnp.zeros((4, 3))
  labels = jnp.array([0, 1, 2, 0])
  for k in (0, 4, 2.5):
    with pytest.raises(ValueError, match="k must be an integer"):
      metrics.top_k_accuracy(logits, labels, k)
  with pytest.raises(TypeError, match="labels must be integer class ids"):
    metrics.accuracy(logits, jnp.zeros(4))
  with pytest.raises(TypeError, match="logits must be floating"):
    metrics.cross_entropy(jnp.zeros((4, 3), jnp.int32), labels)
  with pytest.raises(ValueError, match="target_names has 2 names for num_classes=3"):
    metrics.classification_report(logits, labels, target_names=["a", "b"])
  with pytest.raises(ValueError, match="matrix must be square"):
    metrics.scores_from_confusion_matrix(jnp.zeros((2, 3)))
