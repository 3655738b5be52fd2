"""optlab.data.idx: the IDX reader and writer, MNIST-style directories, their error messages."""

import gzip

import numpy as np
import pytest

from optlab import data

# --- IDX reader -------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
  rng = np.random.default_rng(0)
  array = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
  path = tmp_path / f"a-idx3{suffix}"
  data.write_idx(path, array)
  back = data.read_idx(path)
  assert back.dtype == np.dtype(dtype) and back.dtype.isnative
  np.testing.assert_array_equal(back, array)
  back[0, 0, 0] = 1  # writable


def test_idx_header_is_big_endian(tmp_path):
  path = tmp_path / "x-idx1"
  data.write_idx(path, np.array([1, 256], np.int32))
  assert path.read_bytes() == bytes.fromhex("00000c01 00000002 00000001 00000100")


def test_idx_gzip_detected_by_magic(tmp_path):
  raw = tmp_path / "plain-idx1"
  data.write_idx(raw, np.arange(7, dtype=np.uint8))
  hidden = tmp_path / "no-suffix"
  hidden.write_bytes(gzip.compress(raw.read_bytes()))
  np.testing.assert_array_equal(data.read_idx(hidden), np.arange(7))


def test_idx_bad_magic(tmp_path):
  path = tmp_path / "bad-idx"
  path.write_bytes(bytes([1, 2, 8, 1, 0, 0, 0, 1, 7]))
  with pytest.raises(ValueError, match=r"bad-idx: bad IDX magic number 01 02 08 01"):
    data.read_idx(path)
  path.write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 7]))  # unknown type code
  with pytest.raises(ValueError, match="bad IDX magic number 00 00 07 01"):
    data.read_idx(path)


def test_idx_truncated_and_oversized(tmp_path):
  path = tmp_path / "t-idx2"
  data.write_idx(path, np.zeros((4, 5), np.float32))
  full = path.read_bytes()
  path.write_bytes(full[:-3])
  with pytest.raises(ValueError, match=r"t-idx2: IDX file truncated: expected 92 bytes .* got 89"):
    data.read_idx(path)
  path.write_bytes(full + b"\0")
  with pytest.raises(ValueError, match="trailing bytes: expected 92 bytes"):
    data.read_idx(path)
  path.write_bytes(full[:10])
  with pytest.raises(ValueError, match="truncated IDX header: expected 12 bytes"):
    data.read_idx(path)
  path.write_bytes(b"\0\0")
  with pytest.raises(ValueError, match="expected at least 4 bytes, got 2"):
    data.read_idx(path)


def test_idx_truncated_gzip(tmp_path):
  path = tmp_path / "t-idx1.gz"
  data.write_idx(path, np.arange(1000, dtype=np.int32))
  path.write_bytes(path.read_bytes()[:-20])
  with pytest.raises(ValueError, match=r"t-idx1\.gz: not a readable gzip file"):
    data.read_idx(path)


def _write_mnist_dir(directory, n_train=12, n_test=5, dotted=False, gz=True):
  rng = np.random.default_rng(0)
  for prefix, n in (("train", n_train), ("t10k", n_test)):
    for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)),
                        ("labels-idx1", (np.arange(n) % 10).astype(np.uint8))):
      stem = f"{prefix}-{kind.replace('-', '.')}-ubyte" if dotted else f"{prefix}-{kind}-ubyte"
      data.write_idx(directory / (stem + (".gz" if gz else "")), array)


@pytest.mark.parametrize("dotted, gz", [(False, True), (True, False)])
def test_mnist_idx_any_directory(tmp_path, dotted, gz):
  _write_mnist_dir(tmp_path, dotted=dotted, gz=gz)
  splits = data.mnist_idx(tmp_path)
  assert splits.train.x.shape == (12, 28, 28, 1) and splits.test.x.shape == (5, 28, 28, 1)
  assert splits.train.x.dtype == np.float32 and 0.0 <= splits.train.x.min() <= 1.0
  assert splits.train.y.dtype == np.int32 and splits.validation is None
  raw = data.mnist_idx(tmp_path, raw=True, flatten=True)
  assert raw.train.x.dtype == np.uint8 and raw.train.x.shape == (12, 784)
  np.testing.assert_allclose(splits.train.x.reshape(12, 784), raw.train.x / 255.0, atol=1e-7)


def test_load_idx_dataset_mismatched_counts(tmp_path):
  _write_mnist_dir(tmp_path)
  data.write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(4, np.uint8))
  with pytest.raises(ValueError, match="expected images"):
    data.load_idx_dataset(tmp_path)


def test_fashion_mnist_missing_directory_message(tmp_path):
  with pytest.raises(FileNotFoundError) as info:
    data.fashion_mnist(directory=tmp_path / "nowhere")
  message = str(info.value)
  assert "apt-get install dataset-fashion-mnist" in message
  assert "pass `directory=` with the four IDX files" in message


def test_idx_checksum_mismatch(tmp_path):
  _write_mnist_dir(tmp_path)
  with pytest.raises(data.ChecksumError, match="checksum mismatch for fashion_mnist"):
    data.load_idx_dataset(tmp_path, verify_as="fashion_mnist")
