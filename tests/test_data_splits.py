"""optlab.data.splits and optlab.data.batching: sizes, stratification, folds, batch orders."""

import importlib.util

import jax
import numpy as np
import pytest

from optlab import data

needs_sklearn = pytest.mark.skipif(
  importlib.util.find_spec("sklearn") is None, reason="pip install scikit-learn"
)


def _imbalanced(n_per_class=(50, 30, 20), dim=3):
  y = np.concatenate([np.full(c, k) for k, c in enumerate(n_per_class)]).astype(np.int32)
  x = np.arange(len(y) * dim, dtype=np.float32).reshape(len(y), dim)  # row i identifies i
  return data.Dataset("toy", x, y, num_classes=len(n_per_class), task="classification")


def _rows(ds):
  return set((ds.x[:, 0] // ds.x.shape[1]).astype(int).tolist())


# --- train/val/test ---------------------------------------------------------------------------


def test_split_sizes_disjoint_and_covering():
  ds = _imbalanced()
  s = data.train_val_test_split(ds, val_fraction=0.2, test_fraction=0.1, seed=0)
  assert (len(s.train), len(s.validation), len(s.test)) == (70, 20, 10)
  parts = [_rows(s.train), _rows(s.validation), _rows(s.test)]
  assert set.union(*parts) == set(range(100)) and sum(map(len, parts)) == 100
  assert s.train.name == "toy/train" and s.test.num_classes == 3
  for part in (s.train, s.validation, s.test):  # x and y stay paired
    np.testing.assert_array_equal(part.y, ds.y[(part.x[:, 0] // 3).astype(int)])


def test_split_is_stratified():
  ds = _imbalanced((500, 300, 200))
  s = data.train_val_test_split(ds, val_fraction=0.15, test_fraction=0.25, seed=3)
  for part, fraction in ((s.train, 0.6), (s.validation, 0.15), (s.test, 0.25)):
    counts = np.bincount(part.y, minlength=3)
    np.testing.assert_allclose(counts, np.array([500, 300, 200]) * fraction, atol=1)


def test_split_reproducible_with_seed():
  ds = _imbalanced()
  a = data.train_val_test_split(ds, 0.2, 0.2, seed=7)
  b = data.train_val_test_split(ds, 0.2, 0.2, seed=7)
  c = data.train_val_test_split(ds, 0.2, 0.2, seed=8)
  np.testing.assert_array_equal(a.test.x, b.test.x)
  assert _rows(a.test) != _rows(c.test)


def test_split_without_validation_and_unstratified_regression():
  x = np.random.default_rng(0).standard_normal((40, 2)).astype(np.float32)
  y = x.sum(1)
  with pytest.raises(ValueError, match="stratify=False"):
    data.train_val_test_split((x, y), 0.1, 0.25)
  s = data.train_val_test_split((x, y), 0.0, 0.25, stratify=False)
  assert s.validation is None and (len(s.train), len(s.test)) == (30, 10)
  assert s.train.task == "regression"


@pytest.mark.parametrize(
  "val, test, match",
  [(0.1, 0.0, "test_fraction"), (-0.1, 0.2, "val_fraction"), (0.6, 0.5, "at least one"),
   (0.001, 0.2, "at least one")],
)
def test_split_fraction_errors(val, test, match):
  with pytest.raises(ValueError, match=match):
    data.train_val_test_split(_imbalanced(), val, test)


# --- stratified k-fold ------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 5, 7])
def test_kfold_properties(k):
  labels = _imbalanced((23, 17, 9)).y
  folds = data.stratified_kfold(labels, k, seed=1)
  assert len(folds) == k
  vals = [v for _, v in folds]
  np.testing.assert_array_equal(np.sort(np.concatenate(vals)), np.arange(len(labels)))
  sizes = [len(v) for v in vals]
  assert max(sizes) - min(sizes) <= 1
  for train, val in folds:
    assert not set(train) & set(val) and len(train) + len(val) == len(labels)
    for c, count in enumerate(np.bincount(labels)):
      assert np.sum(labels[val] == c) in (count // k, -(-count // k))


@needs_sklearn
@pytest.mark.parametrize("k", [3, 5])
def test_kfold_matches_sklearn_class_counts(k):
  from sklearn.model_selection import StratifiedKFold

  labels = _imbalanced((23, 17, 9)).y
  ours = sorted(tuple(np.bincount(labels[v], minlength=3)) for _, v in
                data.stratified_kfold(labels, k, seed=0))
  split = StratifiedKFold(k, shuffle=True, random_state=0).split(np.zeros(len(labels)), labels)
  theirs = sorted(tuple(np.bincount(labels[v], minlength=3)) for _, v in split)
  np.testing.assert_array_equal(np.sort(np.array(ours), 0), np.sort(np.array(theirs), 0))
  assert sorted(map(sum, ours)) == sorted(map(sum, theirs))


def test_kfold_reproducible():
  labels = _imbalanced().y
  a = data.stratified_kfold(labels, 4, seed=2)
  b = data.stratified_kfold(labels, 4, seed=2)
  c = data.stratified_kfold(labels, 4, seed=3)
  assert all(np.array_equal(x[1], y[1]) for x, y in zip(a, b, strict=True))
  assert not all(np.array_equal(x[1], y[1]) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize(
  "labels, k, match",
  [(np.array([0, 1] * 5), 1, "k=1"), (np.array([0, 1, 0]), 4, "k=4 folds need"),
   (np.array([0] * 10 + [1] * 2), 3, "k=3 is more than the smallest class count 2")],
)
def test_kfold_errors(labels, k, match):
  with pytest.raises(ValueError, match=match):
    data.stratified_kfold(labels, k)


# --- batching ---------------------------------------------------------------------------------


def test_epoch_permutation_covers_all(key):
  perm = data.epoch_permutation(key, 10)
  assert perm.dtype == np.int32
  np.testing.assert_array_equal(np.sort(perm), np.arange(10))


def test_batch_indices_drop_remainder(key):
  idx = data.batch_indices(key, 10, 3)
  assert idx.shape == (3, 3) and idx.dtype == np.int32
  assert len(set(np.asarray(idx).ravel().tolist())) == 9
  np.testing.assert_array_equal(idx.ravel(), data.epoch_permutation(key, 10)[:9])
  jitted = jax.jit(data.batch_indices, static_argnums=(1, 2, 3))(key, 10, 3, True)
  np.testing.assert_array_equal(jitted, idx)


def test_batch_indices_wraps_without_drop_remainder(key):
  idx = data.batch_indices(key, 10, 3, drop_remainder=False)
  assert idx.shape == (4, 3)
  assert set(np.asarray(idx).ravel().tolist()) == set(range(10))
  perm = np.asarray(data.epoch_permutation(key, 10))
  np.testing.assert_array_equal(idx.ravel(), np.concatenate([perm, perm[:2]]))
  big = data.batch_indices(key, 3, 8, drop_remainder=False)  # batch larger than the data
  assert big.shape == (1, 8) and set(np.asarray(big).ravel().tolist()) == {0, 1, 2}
  assert data.num_batches(10, 3) == 3 and data.num_batches(10, 3, drop_remainder=False) == 4


def test_batch_indices_different_keys_differ(getkey):
  assert not np.array_equal(data.batch_indices(getkey(), 10, 5),
                            data.batch_indices(getkey(), 10, 5))


@pytest.mark.parametrize(
  "n, batch_size, drop, match",
  [(10, 0, True, "batch_size must be >= 1"), (10, -2, False, "batch_size must be >= 1"),
   (10, 11, True, "batch_size=11 exceeds the dataset size n=10"), (0, 4, False, "empty")],
)
def test_batching_errors(key, n, batch_size, drop, match):
  with pytest.raises(ValueError, match=match):
    data.batch_indices(key, n, batch_size, drop)
  with pytest.raises(ValueError, match=match):  # raised at the call, before iteration
    data.iterate_batches(np.zeros(n), np.zeros(n), batch_size, drop_remainder=drop)


def test_iterate_batches_sequential():
  x, y = np.arange(10) * 10, np.arange(10)
  batches = list(data.iterate_batches(x, y, 4))
  assert [len(b) for b, _ in batches] == [4, 4, 2]
  np.testing.assert_array_equal(np.concatenate([b for b, _ in batches]), x)
  assert [len(b) for b, _ in data.iterate_batches(x, y, 4, drop_remainder=True)] == [4, 4]
  with pytest.raises(ValueError, match="same length"):
    data.iterate_batches(x, y[:3], 2)


def test_iterate_batches_matches_batch_indices(key):
  x = np.arange(10) * 2
  y = np.arange(10)
  idx = np.asarray(data.batch_indices(key, 10, 3))
  got = list(data.iterate_batches(x, y, 3, key=key, drop_remainder=True))
  assert len(got) == len(idx)
  for (xb, yb), row in zip(got, idx, strict=True):
    np.testing.assert_array_equal(yb, row)
    np.testing.assert_array_equal(xb, 2 * row)


def test_device_put_dataset():
  ds = _imbalanced()
  x, y = data.device_put_dataset(ds)
  assert isinstance(x, jax.Array) and x.shape == ds.x.shape and y.dtype == np.int32
  splits = data.train_val_test_split(ds, 0.0, 0.2)
  on_device = data.device_put_dataset(splits, jax.devices()[0])
  assert set(on_device) == {"train", "test"}
  assert isinstance(on_device["test"][0], jax.Array)
