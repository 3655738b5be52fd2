"""Train/validation/test splits and stratified k-fold indices, reproducible from a seed."""

from __future__ import annotations

import numpy as np

from optlab.data.base import Dataset, DatasetSplits


def _as_dataset(data: Dataset | tuple[np.ndarray, np.ndarray]) -> Dataset:
  if isinstance(data, Dataset):
    return data
  try:
    x, y = data
  except (TypeError, ValueError) as e:
    raise TypeError("data must be a Dataset or an (x, y) pair of arrays") from e
  x, y = np.asarray(x), np.asarray(y)
  if np.issubdtype(y.dtype, np.integer) and y.ndim == 1:
    if y.size and y.min() < 0:
      raise ValueError("integer labels must be >= 0")
    num = int(y.max()) + 1 if y.size else 1
    return Dataset("arrays", x, y, num_classes=num, task="classification")
  return Dataset("arrays", x, y, num_classes=None, task="regression")


def _allocate(total: int, counts: np.ndarray) -> np.ndarray:
  """Splits `total` over classes proportionally to `counts` (largest remainder, ties by class)."""
  quota = counts * (total / counts.sum())
  share = np.floor(quota).astype(np.int64)
  order = np.argsort(-(quota - share), kind="stable")
  share[order[: total - share.sum()]] += 1
  return np.minimum(share, counts)


def train_val_test_split(
  data: Dataset | tuple[np.ndarray, np.ndarray],
  val_fraction: float = 0.1,
  test_fraction: float = 0.1,
  seed: int = 0,
  stratify: bool = True,
) -> DatasetSplits:
  """Shuffles and splits one dataset into train, validation and test sets.

  Sizes are round(n · fraction) for test and validation, the rest is train.
  With `stratify`, each class is split in the same proportions (largest-
  remainder rounding keeps the totals exact), so class frequencies match
  across the three sets up to one example per class. Within each set the
  order is shuffled.

  Args:
    data: a `Dataset`, or an (x, y) pair (integer 1-D y is taken as class labels).
    val_fraction: fraction for validation, in [0, 1); 0 gives `validation=None`.
    test_fraction: fraction for test, in (0, 1).
    seed: seed of the numpy generator; same seed, same split.
    stratify: keep class proportions. Only for classification data: pass
      False for regression or language data.

  Returns:
    `DatasetSplits(train, test, validation)` with names "{name}/train" etc.

  Example:
    >>> import numpy as np
    >>> s = train_val_test_split((np.zeros((10, 2)), np.arange(10) % 2), 0.2, 0.2)
    >>> len(s.train), len(s.validation), len(s.test)
    (6, 2, 2)
  """
  ds = _as_dataset(data)
  n = len(ds)
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
  if not 0.0 <= val_fraction < 1.0:
    raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
  n_test, n_val = round(n * test_fraction), round(n * val_fraction)
  if n_test < 1 or (val_fraction > 0 and n_val < 1) or n - n_test - n_val < 1:
    raise ValueError(
      f"val_fraction={val_fraction} and test_fraction={test_fraction} of {n} examples give "
      f"{n - n_test - n_val} train, {n_val} validation and {n_test} test examples; each "
      "requested set needs at least one"
    )
  if stratify and (ds.task != "classification" or ds.y.ndim != 1):
    raise ValueError(
      f"stratify=True needs 1-D class labels, but {ds.name!r} is a {ds.task} dataset with y "
      f"of shape {ds.y.shape}; pass stratify=False"
    )
  rng = np.random.default_rng(seed)
  if stratify:
    classes, inverse = np.unique(ds.y, return_inverse=True)
    members = [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
    counts = np.array([len(m) for m in members])
    test_share = _allocate(n_test, counts)
    val_share = _allocate(n_val, counts - test_share)
    parts = [[], [], []]
    for m, t, v in zip(members, test_share, val_share, strict=True):
      parts[0].append(m[t + v:])
      parts[1].append(m[t:t + v])
      parts[2].append(m[:t])
    train_idx, val_idx, test_idx = (rng.permutation(np.concatenate(p)) for p in parts)
  else:
    perm = rng.permutation(n)
    test_idx, val_idx, train_idx = np.split(perm, [n_test, n_test + n_val])
  return DatasetSplits(
    train=ds.subset(train_idx, f"{ds.name}/train"),
    test=ds.subset(test_idx, f"{ds.name}/test"),
    validation=ds.subset(val_idx, f"{ds.name}/validation") if n_val else None,
  )


def stratified_kfold(
  labels: np.ndarray, k: int, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
  """Stratified k-fold cross-validation indices.

  Each class's examples are shuffled and dealt round-robin over the folds,
  continuing from where the previous class stopped: every class has
  floor(n_c/k) or ceil(n_c/k) examples in each fold, and fold sizes differ by
  at most one (the properties of scikit-learn's `StratifiedKFold(shuffle=True)`,
  not its exact assignment).

  Args:
    labels: 1-D class labels (any dtype numpy can sort).
    k: number of folds, 2 <= k <= the smallest class count.
    seed: seed of the numpy generator.

  Returns:
    k pairs (train_idx, val_idx) of sorted int64 indices; the val_idx are
    disjoint and cover range(n), and each train_idx is the complement.

  Example:
    >>> folds = stratified_kfold(np.array([0, 0, 1, 1, 1, 1]), k=2)
    >>> [v.tolist() for _, v in folds]
    [[0, 3, 4], [1, 2, 5]]
  """
  labels = np.asarray(labels)
  if labels.ndim != 1:
    raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
  n = len(labels)
  if int(k) != k or k < 2:
    raise ValueError(f"k must be an int >= 2, got k={k!r}")
  if k > n:
    raise ValueError(f"k={k} folds need at least k examples, got n_samples={n}")
  classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
  if k > counts.min():
    raise ValueError(
      f"k={k} is more than the smallest class count {counts.min()} (class "
      f"{classes[counts.argmin()]!r}): some fold would miss that class"
    )
  rng = np.random.default_rng(seed)
  order = np.concatenate(
    [rng.permutation(np.flatnonzero(inverse == c)) for c in range(len(classes))]
  )
  fold_of = np.empty(n, np.int64)
  fold_of[order] = np.arange(n) % k
  everything = np.arange(n)
  return [(everything[fold_of != f], everything[fold_of == f]) for f in range(k)]
