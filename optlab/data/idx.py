"""IDX files (the MNIST format): a reader, a writer, and the Fashion-MNIST / MNIST loaders.

IDX layout (LeCun et al.): two zero bytes, a type code (0x08 ubyte, 0x09 byte,
0x0B short, 0x0C int, 0x0D float, 0x0E double), the number of dimensions, then
one big-endian uint32 per dimension, then the data, big-endian, row-major.
"""

from __future__ import annotations

import gzip
import os
import pathlib
import zlib

import numpy as np

from optlab.data import checksums
from optlab.data.base import Dataset, DatasetSplits

IDX_DTYPES: dict[int, np.dtype] = {
  0x08: np.dtype(np.uint8),
  0x09: np.dtype(np.int8),
  0x0B: np.dtype(">i2"),
  0x0C: np.dtype(">i4"),
  0x0D: np.dtype(">f4"),
  0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str[1:]: code for code, dt in IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = (
  "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_FASHION_MNIST_HINT = (
  "on Debian/Ubuntu `apt-get install dataset-fashion-mnist`, or pass `directory=` with the "
  "four IDX files"
)

PathLike = str | os.PathLike


def _read_bytes(path: pathlib.Path) -> bytes:
  """The file's bytes, gunzipped when its name ends in .gz or it starts with the gzip magic."""
  raw = path.read_bytes()
  if path.suffix == ".gz" or raw[:2] == _GZIP_MAGIC:
    try:
      return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
      raise ValueError(f"{path}: not a readable gzip file (truncated or corrupt): {e}") from e
  return raw


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
  """Parses the bytes of an (uncompressed) IDX file into an array in native byte order.

  Args:
    data: the file's bytes.
    name: what to call the source in error messages.

  Returns:
    A new, writable array with the file's shape and dtype (native byte order).

  Raises:
    ValueError: bad magic number, unknown type code, or a size that does not
      match the header (the message gives expected and actual lengths).
  """
  if len(data) < 4:
    raise ValueError(
      f"{name}: too short for an IDX header: expected at least 4 bytes, got {len(data)}"
    )
  magic = data[:4]
  if magic[0] != 0 or magic[1] != 0 or magic[2] not in IDX_DTYPES or magic[3] == 0:
    raise ValueError(
      f"{name}: bad IDX magic number {magic.hex(' ')}: expected 00 00, a type code in "
      f"{{{', '.join(f'{c:02x}' for c in IDX_DTYPES)}}} and a dimension count >= 1"
    )
  dtype = IDX_DTYPES[magic[2]]
  ndim = magic[3]
  header = 4 + 4 * ndim
  if len(data) < header:
    raise ValueError(
      f"{name}: truncated IDX header: expected {header} bytes for {ndim} dimensions, got "
      f"{len(data)}"
    )
  shape = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
  expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
  if len(data) != expected:
    kind = "truncated" if len(data) < expected else "has trailing bytes"
    raise ValueError(
      f"{name}: IDX file {kind}: expected {expected} bytes ({header}-byte header + shape "
      f"{shape} of {dtype.newbyteorder('=').name}), got {len(data)}"
    )
  array = np.frombuffer(data, dtype, offset=header).reshape(shape)
  return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: PathLike) -> np.ndarray:
  """Reads an IDX file (gzipped or not) into a numpy array.

  Gzip is detected from a `.gz` suffix or the gzip magic bytes.

  Args:
    path: the file.

  Returns:
    The array, shape and dtype from the file's header, native byte order.

  Raises:
    FileNotFoundError: no such file.
    ValueError: bad magic, a truncated or oversized file, or a corrupt gzip
      stream; the message names the file.

  Example:
    >>> import tempfile, pathlib, numpy as np
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...   p = pathlib.Path(tmp) / "a-idx2-ubyte.gz"
    ...   write_idx(p, np.arange(6, dtype=np.uint8).reshape(2, 3))
    ...   read_idx(p)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
  """
  path = pathlib.Path(path)
  return parse_idx(_read_bytes(path), str(path))


def write_idx(path: PathLike, array: np.ndarray) -> None:
  """Writes `array` as an IDX file, gzipped when `path` ends in .gz.

  Args:
    path: the file to write.
    array: uint8, int8, int16, int32, float32 or float64 data with at least one axis.

  Raises:
    ValueError: a dtype IDX cannot hold, or a 0-d array.
  """
  array = np.asarray(array)
  code = _CODES.get(array.dtype.newbyteorder("=").str[1:])
  if code is None:
    raise ValueError(
      f"array dtype {array.dtype} has no IDX type code; use one of "
      f"{sorted({dt.newbyteorder('=').name for dt in IDX_DTYPES.values()})}"
    )
  if array.ndim < 1 or array.ndim > 255:
    raise ValueError(f"array must have 1 to 255 dimensions, got {array.ndim}")
  header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
  data = header + np.ascontiguousarray(array, IDX_DTYPES[code]).tobytes()
  path = pathlib.Path(path)
  path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)


def _find(directory: pathlib.Path, prefix: str, kind: str) -> pathlib.Path | None:
  """`{prefix}-{kind}-ubyte[.gz]` (or the `{prefix}-{kind:.}-ubyte` spelling) in `directory`."""
  base, idx = kind.split("-")
  for stem in (f"{prefix}-{kind}-ubyte", f"{prefix}-{base}.{idx}-ubyte"):
    for suffix in ("", ".gz"):
      candidate = directory / (stem + suffix)
      if candidate.is_file():
        return candidate
  return None


def _load_split(
  directory: pathlib.Path, prefix: str, verify_as: str | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
  arrays, paths = [], []
  for kind in ("images-idx3", "labels-idx1"):
    path = _find(directory, prefix, kind)
    if path is None:
      raise FileNotFoundError(f"no {prefix}-{kind}-ubyte[.gz] in {directory}")
    data = _read_bytes(path)
    if verify_as is not None:
      checksums.verify_digest(data, verify_as, f"{prefix}-{kind}-ubyte", str(path))
    arrays.append(parse_idx(data, str(path)))
    paths.append(str(path))
  images, labels = arrays
  if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
    raise ValueError(
      f"{paths[0]} and {paths[1]}: expected images (n, H, W) and labels (n,), got shapes "
      f"{images.shape} and {labels.shape}"
    )
  return images, labels, paths


def load_idx_dataset(
  directory: PathLike,
  prefix_train: str = "train",
  prefix_test: str = "t10k",
  *,
  name: str = "idx",
  class_names: tuple[str, ...] | None = None,
  raw: bool = False,
  flatten: bool = False,
  verify_as: str | None = None,
) -> DatasetSplits:
  """Loads an MNIST-style directory: `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.

  Args:
    directory: where the four files are (`train-images.idx3-ubyte` spelling also found).
    prefix_train: file-name prefix of the training files.
    prefix_test: file-name prefix of the test files.
    name: the datasets' name (the splits are named `{name}/train`, `{name}/test`).
    class_names: a name per class; when None, classes are "0", "1", ... up to the
      largest label.
    raw: keep images as uint8 in [0, 255] instead of float32 in [0, 1].
    flatten: images as (n, H*W) instead of channel-last (n, H, W, 1).
    verify_as: a key of `CHECKSUMS` to check the decompressed bytes against.

  Returns:
    `DatasetSplits(train, test)`, labels int32.

  Raises:
    FileNotFoundError: a file is missing. ValueError: a malformed file.
    ChecksumError: with `verify_as`, bytes that do not match the pins.
  """
  directory = pathlib.Path(directory)
  loaded = {p: _load_split(directory, p, verify_as) for p in (prefix_train, prefix_test)}
  if class_names is None:
    num_classes = 1 + max(int(labels.max(initial=0)) for _, labels, _ in loaded.values())
    class_names = tuple(str(c) for c in range(num_classes))
  splits = []
  for prefix, split in ((prefix_train, "train"), (prefix_test, "test")):
    images, labels, paths = loaded[prefix]
    if raw:
      x = images
    else:
      x = images.astype(np.float32)
      x *= np.float32(1.0 / 255.0)
    x = x.reshape(len(x), -1) if flatten else x[..., None]
    splits.append(
      Dataset(
        name=f"{name}/{split}",
        x=x,
        y=labels.astype(np.int32),
        num_classes=len(class_names),
        task="classification",
        description=f"{name} {split} images {images.shape[1]}x{images.shape[2]}, "
        + ("uint8 in [0, 255]" if raw else "float32 in [0, 1]"),
        source=", ".join(paths),
        class_names=class_names,
      )
    )
  return DatasetSplits(train=splits[0], test=splits[1])


def fashion_mnist(
  directory: PathLike = FASHION_MNIST_DIR,
  *,
  raw: bool = False,
  flatten: bool = False,
  verify: bool = False,
) -> DatasetSplits:
  """Fashion-MNIST (Xiao et al. 2017): 60,000 train and 10,000 test 28x28 grey images, 10 classes.

  Args:
    directory: the four IDX files; Debian's `dataset-fashion-mnist` puts them in
      /usr/share/datasets/fashion-mnist.
    raw: keep images as uint8 in [0, 255] instead of float32 in [0, 1].
    flatten: images as (n, 784) instead of (n, 28, 28, 1).
    verify: check the decompressed bytes against `CHECKSUMS["fashion_mnist"]`.

  Returns:
    `DatasetSplits(train, test)`; `class_names` are the ten garment names.

  Raises:
    FileNotFoundError: the files are not there; the message says how to get them.
  """
  try:
    splits = load_idx_dataset(
      directory, name="fashion_mnist", class_names=FASHION_MNIST_CLASSES, raw=raw,
      flatten=flatten, verify_as="fashion_mnist" if verify else None,
    )
  except FileNotFoundError as e:
    raise FileNotFoundError(
      f"Fashion-MNIST not found ({e}). To get it: {_FASHION_MNIST_HINT}."
    ) from e
  return splits


def mnist_idx(
  directory: PathLike, *, raw: bool = False, flatten: bool = False
) -> DatasetSplits:
  """MNIST (LeCun et al. 1998) from a directory holding its four IDX files (gzipped or not).

  optlab ships no MNIST download; point this at files you already have.
  `mnist_5k` is a 5,000-image subset that installs with pip.

  Args:
    directory: the files `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`.
    raw: keep images as uint8 in [0, 255] instead of float32 in [0, 1].
    flatten: images as (n, 784) instead of (n, 28, 28, 1).
  """
  return load_idx_dataset(
    directory, name="mnist", class_names=tuple(str(d) for d in range(10)), raw=raw,
    flatten=flatten,
  )
