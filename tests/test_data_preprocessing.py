"""optlab.data.preprocessing: scalers fitted on train only, one-hot, char tokens and windows."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optlab import data

needs_sklearn = pytest.mark.skipif(
  importlib.util.find_spec("sklearn") is None, reason="pip install scikit-learn"
)


def _train_test(seed=0):
  rng = np.random.default_rng(seed)
  scale = np.array([1.0, 10.0, 0.1])
  train = rng.standard_normal((200, 3)) * scale + np.array([5.0, -2.0, 0.0])
  test = rng.standard_normal((50, 3)) * scale + 1.0
  return train.astype(np.float32), test.astype(np.float32)


def test_standardizer_fits_train_only_and_applies_to_test():
  train, test = _train_test()
  s = data.Standardizer.fit(train)
  z = s.apply(train)
  np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-5)
  np.testing.assert_allclose(z.std(0), 1.0, atol=1e-5)
  np.testing.assert_allclose(s.apply(test), (test - train.mean(0)) / train.std(0), rtol=1e-4,
                             atol=1e-5)
  assert np.abs(s.apply(test).mean(0)).max() > 0.1  # test statistics were not used
  np.testing.assert_allclose(s.inverse(s.apply(test)), test, rtol=1e-5, atol=1e-5)


@needs_sklearn
def test_standardizer_matches_sklearn():
  from sklearn.preprocessing import MinMaxScaler, StandardScaler

  train, test = _train_test(1)
  train[:, 2] = 3.0  # a constant feature: both keep scale 1
  ours = data.Standardizer.fit(train).apply(test)
  theirs = StandardScaler().fit(train).transform(test)
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
  ours = data.MinMaxScaler.fit(train, feature_range=(-1.0, 1.0)).apply(test)
  theirs = MinMaxScaler(feature_range=(-1.0, 1.0)).fit(train).transform(test)
  np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_standardizer_constant_feature_and_jax_inputs():
  x = np.array([[1.0, 4.0], [3.0, 4.0]], np.float32)
  s = data.Standardizer.fit(x)
  np.testing.assert_array_equal(s.std, [[1.0, 1.0]])
  out = jax.jit(s.apply)(jnp.asarray(x))  # keepdims statistics: no rank promotion needed
  np.testing.assert_allclose(out, [[-1.0, 0.0], [1.0, 0.0]])


def test_standardizer_per_channel_axes():
  images = np.random.default_rng(0).uniform(size=(10, 4, 4, 3)).astype(np.float32)
  images[..., 1] *= 5.0
  s = data.Standardizer.fit(images, axis=(0, 1, 2))
  assert s.mean.shape == (1, 1, 1, 3)
  np.testing.assert_allclose(s.apply(images).std(axis=(0, 1, 2)), 1.0, rtol=1e-4)


def test_minmax_scaler_round_trip():
  train, test = _train_test()
  m = data.MinMaxScaler.fit(train)
  out = m.apply(train)
  np.testing.assert_allclose(out.min(0), 0.0, atol=1e-6)
  np.testing.assert_allclose(out.max(0), 1.0, atol=1e-6)
  np.testing.assert_allclose(m.inverse(m.apply(test)), test, rtol=1e-5, atol=1e-4)
  with pytest.raises(ValueError, match="feature_range"):
    data.MinMaxScaler.fit(train, feature_range=(1.0, 0.0))


def test_per_channel_normalize():
  rng = np.random.default_rng(0)
  images = (rng.uniform(size=(20, 5, 5, 3)) * [1.0, 2.0, 3.0] + [0.0, 1.0, 2.0]).astype(np.float32)
  out = data.per_channel_normalize(images)
  np.testing.assert_allclose(out.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
  np.testing.assert_allclose(out.std(axis=(0, 1, 2)), 1.0, atol=1e-4)
  mean, std = data.channel_stats(images)
  held_out = images[:3] + 1.0
  np.testing.assert_allclose(
    data.per_channel_normalize(held_out, mean, std), (held_out - mean) / std, rtol=1e-6
  )
  jax_out = data.per_channel_normalize(jnp.asarray(images), mean, std)
  np.testing.assert_allclose(jax_out, out, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match=r"shape \(3,\)"):
    data.per_channel_normalize(images, mean=[0.0], std=[1.0])


def test_one_hot():
  out = data.one_hot(np.array([0, 2, 1]), 3)
  np.testing.assert_array_equal(out, np.eye(3)[[0, 2, 1]])
  assert out.dtype == np.float32
  jax_out = jax.jit(lambda l: data.one_hot(l, 3))(jnp.array([0, 2, 1]))
  np.testing.assert_array_equal(jax_out, out)
  with pytest.raises(ValueError, match=r"\[0, num_classes=3\)"):
    data.one_hot(np.array([0, 3]), 3)
  with pytest.raises(TypeError, match="integers"):
    data.one_hot(np.array([0.0]), 3)


def test_char_tokenizer_round_trip():
  text = data.pydoc_text()[:20000] + "’é"
  tok = data.CharTokenizer.fit(text)
  assert list(tok.vocab) == sorted(set(text)) and tok.vocab_size == len(set(text))
  ids = tok.encode(text)
  assert ids.dtype == np.int32 and ids.shape == (len(text),)
  assert ids.min() == 0 and ids.max() == tok.vocab_size - 1
  assert tok.decode(ids) == text
  assert tok.encode("").shape == (0,) and tok.decode([]) == ""


def test_char_tokenizer_unknown_characters():
  tok = data.CharTokenizer.fit("abc")
  with pytest.raises(ValueError, match=r"not in the vocabulary: \['z'\]"):
    tok.encode("abz")
  tok = data.CharTokenizer.fit("abc", unk="\ufffd")
  assert tok.vocab == ("a", "b", "c", "\ufffd") and tok.vocab_size == 4
  np.testing.assert_array_equal(tok.encode("azc"), [0, 3, 2])
  assert tok.decode(tok.encode("azc")) == "a\ufffdc"
  with pytest.raises(ValueError, match="occurs in the text"):
    data.CharTokenizer.fit("ab", unk="a")
  with pytest.raises(ValueError, match="vocab_size=4"):
    tok.decode([4])


def test_make_sequences():
  tokens = np.arange(23, dtype=np.int32)
  x, y = data.make_sequences(tokens, seq_len=5)
  assert x.shape == y.shape == (4, 5) and x.dtype == np.int32
  np.testing.assert_array_equal(y, x + 1)
  np.testing.assert_array_equal(x[:, 0], [0, 5, 10, 15])
  x, y = data.make_sequences(tokens, seq_len=5, stride=2)
  assert x.shape == (9, 5)
  np.testing.assert_array_equal(x[:, 0], np.arange(0, 18, 2))
  np.testing.assert_array_equal(y[:, -1], x[:, -1] + 1)
  assert data.make_sequences(tokens, seq_len=22)[0].shape == (1, 22)
  with pytest.raises(ValueError, match="at least 24"):
    data.make_sequences(tokens, seq_len=23)
  with pytest.raises(ValueError, match="stride"):
    data.make_sequences(tokens, seq_len=3, stride=0)
  with pytest.raises(ValueError, match="seq_len"):
    data.make_sequences(tokens, seq_len=0)
