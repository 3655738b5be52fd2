"""Recurrent models: `RNNClassifier` and the character-level language model `CharRNNLM`.

Both run `nnx.LSTMCell` / `nnx.GRUCell` over time with a `jax.lax.scan` written here
(the cell is split into a graph and its state once, and merged inside the scan body),
so a whole sequence is one compiled loop and the models work unchanged under
`jax.jit`, `jax.grad` and `jax.vmap`. Sequences are batch-major: (batch, time, ...).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from optlab.models import _checks
from optlab.models._layers import apply_dropout

CELLS = ("lstm", "gru")

Carry = Any  # an LSTM carry is (c, h), a GRU carry is h; each (batch, hidden_size)


def _make_cell(kind: str, in_features: int, hidden_size: int, rngs: nnx.Rngs) -> nnx.Module:
  if kind == "lstm":
    return nnx.LSTMCell(in_features, hidden_size, rngs=rngs)
  return nnx.GRUCell(in_features, hidden_size, rngs=rngs)


def _scan(
  cell: nnx.Module, carry: Carry, xs: jax.Array, *, reverse: bool = False
) -> tuple[Carry, jax.Array]:
  """Runs `cell` over the time axis of `xs` (batch, time, features).

  With `reverse=True` the cell reads the sequence from the end; the outputs stay in
  input order (output t has seen inputs t..T-1).
  """
  graphdef, state = nnx.split(cell)

  def step(carry: Carry, x: jax.Array) -> tuple[Carry, jax.Array]:
    return nnx.merge(graphdef, state)(carry, x)

  carry, ys = jax.lax.scan(step, carry, jnp.swapaxes(xs, 0, 1), reverse=reverse)
  return carry, jnp.swapaxes(ys, 0, 1)


class RNNStack(nnx.Module):
  """`num_layers` stacked recurrent layers (optionally bidirectional), dropout between.

  Args:
    in_features: features per time step of the input.
    hidden_size: hidden units per direction.
    cell: ``"lstm"`` or ``"gru"``.
    num_layers: number of stacked layers.
    bidirectional: also run each layer backwards and concatenate (outputs then have
      ``2 * hidden_size`` features).
    dropout: dropout rate in [0, 1) on the outputs of every layer but the last.
    rngs: the `nnx.Rngs` for initialization and dropout.
  """

  def __init__(
    self,
    in_features: int,
    hidden_size: int,
    *,
    cell: str = "lstm",
    num_layers: int = 1,
    bidirectional: bool = False,
    dropout: float = 0.0,
    rngs: nnx.Rngs,
  ):
    where = "RNNStack"
    _checks.check_choice(where, "cell", cell, CELLS)
    self.cell = cell
    self.hidden_size = _checks.check_positive_int(where, "hidden_size", hidden_size)
    self.num_layers = _checks.check_positive_int(where, "num_layers", num_layers)
    self.bidirectional = bool(bidirectional)
    self.directions = 2 if self.bidirectional else 1
    widths = [in_features] + [self.hidden_size * self.directions] * (self.num_layers - 1)
    self.forward = nnx.List([_make_cell(cell, w, self.hidden_size, rngs) for w in widths])
    self.backward = nnx.List(
      [_make_cell(cell, w, self.hidden_size, rngs) for w in widths] if bidirectional else []
    )
    rate = _checks.check_rate(where, "dropout", dropout)
    self.dropout = nnx.Dropout(rate, rngs=rngs) if rate > 0 and self.num_layers > 1 else None

  def initial_carry(self, batch_size: int, dtype: Any = jnp.float32) -> tuple[Carry, ...]:
    """Zero carries, one per layer (forward direction), for a batch of `batch_size`."""
    zeros = jnp.zeros((batch_size, self.hidden_size), dtype)
    return tuple((zeros, zeros) if self.cell == "lstm" else zeros for _ in self.forward)

  def __call__(
    self,
    xs: jax.Array,
    carry: tuple[Carry, ...] | None = None,
    *,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | None = None,
  ) -> tuple[jax.Array, tuple[Carry, ...]]:
    """Returns the last layer's outputs (batch, time, directions * hidden_size) and the
    final forward carry of every layer (start from `carry`, default zeros)."""
    if carry is None:
      carry = self.initial_carry(xs.shape[0], xs.dtype)
    elif self.bidirectional:
      raise ValueError("RNNStack: an initial carry is only supported when unidirectional")
    backward = list(self.backward) or [None] * self.num_layers
    finals = []
    for i, (fwd, bwd, c0) in enumerate(zip(self.forward, backward, carry, strict=True)):
      if i > 0:
        xs = apply_dropout(self.dropout, xs, deterministic, rngs)
      final, ys = _scan(fwd, c0, xs)
      finals.append(final)
      if bwd is not None:
        _, ys_back = _scan(bwd, self.initial_carry(xs.shape[0], xs.dtype)[i], xs, reverse=True)
        ys = jnp.concatenate([ys, ys_back], axis=-1)
      xs = ys
    return xs, tuple(finals)


class RNNClassifier(nnx.Module):
  """A recurrent sequence classifier: [embedding →] RNN layers → dropout → Linear.

  The sequence summary fed to the head is the last layer's output at the last time
  step (forward direction) concatenated, when bidirectional, with the backward
  direction's output at the first time step (the state after reading the whole
  sequence backwards). All sequences in a batch are read to their full length.

  Args:
    in_features: with ``embedding_dim=None``, the feature size of float inputs
      (batch, time, in_features); otherwise the vocabulary size of integer token
      inputs (batch, time).
    hidden_size: hidden units per direction and layer.
    num_classes: number of outputs.
    cell: ``"lstm"`` or ``"gru"``.
    num_layers: number of stacked recurrent layers.
    embedding_dim: embed token ids into this many features (None: float inputs).
    bidirectional: add a backward direction to every layer.
    dropout: dropout rate in [0, 1) between layers and before the head.
    rngs: the `nnx.Rngs` for initialization and dropout.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = RNNClassifier(8, 8, 3, cell="gru", rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 5, 8))).shape
    (2, 3)
  """

  def __init__(
    self,
    in_features: int,
    hidden_size: int,
    num_classes: int,
    *,
    cell: str = "lstm",
    num_layers: int = 1,
    embedding_dim: int | None = None,
    bidirectional: bool = False,
    dropout: float = 0.0,
    rngs: nnx.Rngs,
  ):
    where = "RNNClassifier"
    _checks.check_rngs(where, rngs)
    _checks.check_choice(where, "cell", cell, CELLS)
    self.in_features = _checks.check_positive_int(where, "in_features", in_features)
    self.num_classes = _checks.check_positive_int(where, "num_classes", num_classes)
    if embedding_dim is None:
      self.embed = None
      width = self.in_features
    else:
      width = _checks.check_positive_int(where, "embedding_dim", embedding_dim)
      self.embed = nnx.Embed(self.in_features, width, rngs=rngs)
    self.rnn = RNNStack(
      width,
      hidden_size,
      cell=cell,
      num_layers=num_layers,
      bidirectional=bidirectional,
      dropout=dropout,
      rngs=rngs,
    )
    rate = _checks.check_rate(where, "dropout", dropout)
    self.dropout = nnx.Dropout(rate, rngs=rngs) if rate > 0 else None
    self.head = nnx.Linear(self.rnn.hidden_size * self.rnn.directions, self.num_classes, rngs=rngs)

  def __call__(
    self,
    x: jax.Array,
    *,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | jax.Array | None = None,
  ) -> jax.Array:
    """Maps sequences (token ids (batch, time), or features (batch, time, in_features))
    to logits (batch, num_classes). `deterministic` and `rngs` are as in `MLP`."""
    where = "RNNClassifier"
    if self.embed is not None:
      x = self.embed(_checks.check_token_input(where, x, vocab_size=self.in_features))
    else:
      x = _checks.check_float_input(where, x)
      _checks.check_features(
        where,
        x,
        ("batch", "time", self.in_features),
        "a model for token ids (batch, time) is built with embedding_dim",
      )
      x = x.astype(jnp.result_type(x.dtype, jnp.float32))
    rngs = _checks.as_rngs(rngs)
    ys, _ = self.rnn(x, deterministic=deterministic, rngs=rngs)
    hidden = self.rnn.hidden_size
    summary = ys[:, -1, :hidden]
    if self.rnn.bidirectional:
      summary = jnp.concatenate([summary, ys[:, 0, hidden:]], axis=-1)
    return self.head(apply_dropout(self.dropout, summary, deterministic, rngs))


class CharRNNLM(nnx.Module):
  """A character-level (or token-level) recurrent language model.

  ``embedding → RNN layers → dropout → Linear``; position t's logits predict token
  t + 1 and depend only on tokens 0..t. Sample from it with `optlab.models.generate`.

  Args:
    vocab_size: number of distinct tokens.
    embedding_dim: embedding width.
    hidden_size: hidden units per layer.
    cell: ``"gru"`` or ``"lstm"``.
    num_layers: number of stacked recurrent layers.
    dropout: dropout rate in [0, 1) between layers and before the output layer.
    rngs: the `nnx.Rngs` for initialization and dropout.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = CharRNNLM(11, 8, 8, rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((2, 5), jnp.int32)).shape
    (2, 5, 11)
  """

  def __init__(
    self,
    vocab_size: int,
    embedding_dim: int,
    hidden_size: int,
    *,
    cell: str = "gru",
    num_layers: int = 1,
    dropout: float = 0.0,
    rngs: nnx.Rngs,
  ):
    where = "CharRNNLM"
    _checks.check_rngs(where, rngs)
    _checks.check_choice(where, "cell", cell, CELLS)
    self.vocab_size = _checks.check_positive_int(where, "vocab_size", vocab_size)
    width = _checks.check_positive_int(where, "embedding_dim", embedding_dim)
    self.embed = nnx.Embed(self.vocab_size, width, rngs=rngs)
    self.rnn = RNNStack(
      width, hidden_size, cell=cell, num_layers=num_layers, dropout=dropout, rngs=rngs
    )
    rate = _checks.check_rate(where, "dropout", dropout)
    self.dropout = nnx.Dropout(rate, rngs=rngs) if rate > 0 else None
    self.head = nnx.Linear(self.rnn.hidden_size, self.vocab_size, rngs=rngs)

  def initial_carry(self, batch_size: int) -> tuple[Carry, ...]:
    """Zero recurrent state for `batch_size` sequences (one carry per layer)."""
    return self.rnn.initial_carry(batch_size)

  def __call__(
    self,
    tokens: jax.Array,
    *,
    carry: tuple[Carry, ...] | None = None,
    return_carry: bool = False,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | jax.Array | None = None,
  ) -> jax.Array | tuple[jax.Array, tuple[Carry, ...]]:
    """Next-token logits (batch, time, vocab_size) for token ids (batch, time).

    Args:
      tokens: integer token ids.
      carry: recurrent state to continue from (default: zeros), e.g. the carry a
        previous call returned.
      return_carry: also return the final carry, as ``(logits, carry)``.
      deterministic: as in `MLP`.
      rngs: as in `MLP`.
    """
    tokens = _checks.check_token_input("CharRNNLM", tokens, vocab_size=self.vocab_size)
    rngs = _checks.as_rngs(rngs)
    ys, final = self.rnn(self.embed(tokens), carry, deterministic=deterministic, rngs=rngs)
    logits = self.head(apply_dropout(self.dropout, ys, deterministic, rngs))
    return (logits, final) if return_carry else logits
