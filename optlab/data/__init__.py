"""optlab.data: datasets that ship offline, preprocessing, augmentation, splits and batching.

Depends on jax, numpy and (for scikit-learn's bundled sets) scikit-learn.
Loaders that need a package the user lacks raise `MissingPackageError`
saying what to install; every loader returns a `Dataset` or `DatasetSplits`.

>>> from optlab import data
>>> ds = data.load("synthetic_classification", n=100, dim=5)
>>> splits = data.train_val_test_split(ds, val_fraction=0.1, test_fraction=0.2, seed=0)
>>> len(splits.train), len(splits.validation), len(splits.test)
(70, 10, 20)
"""

from optlab.data.augment import (
  gaussian_noise,
  horizontal_flip,
  mixup,
  random_crop,
  random_shift,
)
from optlab.data.base import (
  ChecksumError,
  Dataset,
  DatasetSplits,
  MissingPackageError,
)
from optlab.data.batching import (
  batch_indices,
  device_put_dataset,
  epoch_permutation,
  iterate_batches,
  num_batches,
)
from optlab.data.checksums import CHECKSUMS, FASHION_MNIST_DEBIAN_GZ_SHA256
from optlab.data.datasets import load, names, register
from optlab.data.idx import (
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  fashion_mnist,
  load_idx_dataset,
  mnist_idx,
  parse_idx,
  read_idx,
  write_idx,
)
from optlab.data.packaged import mnist1d, mnist_5k
from optlab.data.preprocessing import (
  CharTokenizer,
  MinMaxScaler,
  Standardizer,
  channel_stats,
  make_sequences,
  one_hot,
  per_channel_normalize,
)
from optlab.data.sklearn_sets import breast_cancer, diabetes, digits, iris, wine
from optlab.data.splits import stratified_kfold, train_val_test_split
from optlab.data.synthetic import sparse_logistic, synthetic_classification
from optlab.data.text import KJV_BOOKS, bible_text, char_corpus, char_dataset, pydoc_text

__all__ = [
  "CHECKSUMS",
  "FASHION_MNIST_CLASSES",
  "FASHION_MNIST_DEBIAN_GZ_SHA256",
  "FASHION_MNIST_DIR",
  "KJV_BOOKS",
  "CharTokenizer",
  "ChecksumError",
  "Dataset",
  "DatasetSplits",
  "MinMaxScaler",
  "MissingPackageError",
  "Standardizer",
  "batch_indices",
  "bible_text",
  "breast_cancer",
  "channel_stats",
  "char_corpus",
  "char_dataset",
  "device_put_dataset",
  "diabetes",
  "digits",
  "epoch_permutation",
  "fashion_mnist",
  "gaussian_noise",
  "horizontal_flip",
  "iris",
  "iterate_batches",
  "load",
  "load_idx_dataset",
  "make_sequences",
  "mixup",
  "mnist1d",
  "mnist_5k",
  "mnist_idx",
  "names",
  "num_batches",
  "one_hot",
  "parse_idx",
  "per_channel_normalize",
  "pydoc_text",
  "random_crop",
  "random_shift",
  "read_idx",
  "register",
  "sparse_logistic",
  "stratified_kfold",
  "synthetic_classification",
  "train_val_test_split",
  "wine",
  "write_idx",
]
