"""scikit-learn's bundled datasets (no download): digits, breast cancer, iris, wine, diabetes."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from optlab.data.base import Dataset, MissingPackageError


def _sklearn_datasets() -> Any:
  try:
    return importlib.import_module("sklearn.datasets")
  except ImportError as e:
    raise MissingPackageError(
      "scikit-learn's bundled datasets need the Python package 'scikit-learn'. "
      "Install it with: pip install scikit-learn"
    ) from e


def _tabular(loader: str, name: str, description: str) -> Dataset:
  bunch = getattr(_sklearn_datasets(), loader)()
  names = tuple(str(n) for n in bunch.target_names)
  return Dataset(
    name=name,
    x=np.asarray(bunch.data, np.float32),
    y=np.asarray(bunch.target, np.int32),
    num_classes=len(names),
    task="classification",
    description=description,
    source=f"sklearn.datasets.{loader}",
    class_names=names,
  )


def digits(flatten: bool = False) -> Dataset:
  """UCI handwritten digits: 1,797 8x8 images, 10 classes.

  Pixel values are kept raw: float32 counts in [0, 16] (not rescaled).

  Args:
    flatten: images as (1797, 64) instead of channel-last (1797, 8, 8, 1).
  """
  bunch = _sklearn_datasets().load_digits()
  images = np.asarray(bunch.images, np.float32)
  x = images.reshape(len(images), -1) if flatten else images[..., None]
  return Dataset(
    name="digits",
    x=x,
    y=np.asarray(bunch.target, np.int32),
    num_classes=10,
    task="classification",
    description="UCI optical handwritten digits, 8x8, float32 pixel counts in [0, 16]",
    source="sklearn.datasets.load_digits",
    class_names=tuple(str(d) for d in range(10)),
  )


def breast_cancer() -> Dataset:
  """Wisconsin diagnostic breast cancer: 569 examples, 30 float32 features, 2 classes."""
  return _tabular(
    "load_breast_cancer", "breast_cancer",
    "Wisconsin diagnostic breast cancer, 30 features, malignant (0) / benign (1)",
  )


def iris() -> Dataset:
  """Fisher's iris: 150 examples, 4 float32 features, 3 classes."""
  return _tabular("load_iris", "iris", "Fisher's iris, 4 features, 3 species")


def wine() -> Dataset:
  """UCI wine recognition: 178 examples, 13 float32 features, 3 classes."""
  return _tabular("load_wine", "wine", "UCI wine recognition, 13 features, 3 cultivars")


def diabetes() -> Dataset:
  """Diabetes progression (Efron et al. 2004): 442 examples, 10 features, float32 target.

  Features are scikit-learn's scaled version (each column centered, unit norm).
  """
  bunch = _sklearn_datasets().load_diabetes()
  return Dataset(
    name="diabetes",
    x=np.asarray(bunch.data, np.float32),
    y=np.asarray(bunch.target, np.float32),
    num_classes=None,
    task="regression",
    description="diabetes disease progression after one year, 10 scaled features",
    source="sklearn.datasets.load_diabetes",
  )
