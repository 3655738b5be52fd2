"""Transformers: the decoder-only `TransformerLM` and the encoder `TransformerClassifier`.

Both use pre-LayerNorm blocks (GPT-2 / nanoGPT): ``x + attn(ln(x))`` then
``x + mlp(ln(x))``, a final LayerNorm, learned positional embeddings and
`nnx.MultiHeadAttention`. Token and positional embeddings start at N(0, 0.02²).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from optlab.models import _checks
from optlab.models._layers import apply_dropout
from optlab.models.activations import get_activation

POOLINGS = ("mean", "cls")
_EMBED_INIT = nnx.initializers.normal(stddev=0.02)


class TransformerBlock(nnx.Module):
  """One pre-LayerNorm transformer block.

  Dropout (rate `dropout`) is applied to the attention weights, and to the outputs
  of the attention and feed-forward sublayers before each residual addition.

  Args:
    d_model: model width.
    num_heads: attention heads; must divide `d_model`.
    d_ff: hidden width of the feed-forward sublayer.
    dropout: dropout rate in [0, 1).
    activation: feed-forward activation (name or callable).
    rngs: the `nnx.Rngs` for initialization and dropout.
  """

  def __init__(
    self,
    d_model: int,
    num_heads: int,
    d_ff: int,
    *,
    dropout: float = 0.0,
    activation: str | Callable[[jax.Array], jax.Array] = "gelu",
    rngs: nnx.Rngs,
  ):
    self.ln1 = nnx.LayerNorm(d_model, rngs=rngs)
    self.attn = nnx.MultiHeadAttention(
      num_heads,
      d_model,
      dropout_rate=dropout,
      deterministic=False,
      decode=False,
      rngs=rngs,
    )
    self.ln2 = nnx.LayerNorm(d_model, rngs=rngs)
    self.ff_in = nnx.Linear(d_model, d_ff, rngs=rngs)
    self.ff_out = nnx.Linear(d_ff, d_model, rngs=rngs)
    self.activation = get_activation(activation)
    self.dropout = nnx.Dropout(dropout, rngs=rngs) if dropout > 0 else None

  def __call__(
    self,
    x: jax.Array,
    mask: jax.Array | None,
    *,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | None = None,
  ) -> jax.Array:
    """Maps (batch, time, d_model) to the same shape; `mask` is (batch, 1, time, time)."""
    h = self.attn(self.ln1(x), mask=mask, deterministic=deterministic, rngs=rngs)
    x = x + apply_dropout(self.dropout, h, deterministic, rngs)
    h = self.ff_out(self.activation(self.ff_in(self.ln2(x))))
    return x + apply_dropout(self.dropout, h, deterministic, rngs)


def _check_sizes(where: str, d_model: int, num_heads: int, d_ff: int | None) -> int:
  _checks.check_positive_int(where, "d_model", d_model)
  _checks.check_positive_int(where, "num_heads", num_heads)
  if d_model % num_heads:
    raise ValueError(f"{where}: num_heads={num_heads} must divide d_model={d_model}")
  return 4 * d_model if d_ff is None else _checks.check_positive_int(where, "d_ff", d_ff)


class TransformerLM(nnx.Module):
  """A decoder-only (GPT-style) transformer language model with causal self-attention.

  Token ids (batch, time ≤ max_len) map to next-token logits (batch, time, vocab_size);
  position t's logits depend only on tokens 0..t (`nnx.make_causal_mask`).

  The output layer is weight-tied to the token embedding by default
  (``logits = h @ embedding.T``, no bias, as in GPT-2 and nanoGPT); ``tie_weights=False``
  gives a separate bias-free ``Linear(d_model, vocab_size)``.

  Args:
    vocab_size: number of distinct tokens.
    max_len: longest sequence (number of learned positions).
    d_model: model width.
    num_heads: attention heads; must divide `d_model`.
    num_layers: number of transformer blocks.
    d_ff: feed-forward width (default ``4 * d_model``).
    dropout: dropout rate in [0, 1) on the embeddings, attention weights and
      residual branches.
    activation: feed-forward activation (default ``"gelu"``, tanh approximation).
    tie_weights: share the token embedding with the output layer.
    rngs: the `nnx.Rngs` for initialization and dropout.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = TransformerLM(11, 8, d_model=8, num_heads=2, num_layers=1, rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((2, 5), jnp.int32)).shape
    (2, 5, 11)
  """

  def __init__(
    self,
    vocab_size: int,
    max_len: int,
    *,
    d_model: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    d_ff: int | None = None,
    dropout: float = 0.0,
    activation: str | Callable[[jax.Array], jax.Array] = "gelu",
    tie_weights: bool = True,
    rngs: nnx.Rngs,
  ):
    where = "TransformerLM"
    _checks.check_rngs(where, rngs)
    self.vocab_size = _checks.check_positive_int(where, "vocab_size", vocab_size)
    self.max_len = _checks.check_positive_int(where, "max_len", max_len)
    d_ff = _check_sizes(where, d_model, num_heads, d_ff)
    _checks.check_positive_int(where, "num_layers", num_layers)
    rate = _checks.check_rate(where, "dropout", dropout)
    self.tie_weights = bool(tie_weights)
    self.embed = nnx.Embed(self.vocab_size, d_model, embedding_init=_EMBED_INIT, rngs=rngs)
    self.pos_embed = nnx.Embed(self.max_len, d_model, embedding_init=_EMBED_INIT, rngs=rngs)
    self.dropout = nnx.Dropout(rate, rngs=rngs) if rate > 0 else None
    self.blocks = nnx.List(
      [
        TransformerBlock(d_model, num_heads, d_ff, dropout=rate, activation=activation, rngs=rngs)
        for _ in range(num_layers)
      ]
    )
    self.ln_f = nnx.LayerNorm(d_model, rngs=rngs)
    self.head = (
      None if self.tie_weights else nnx.Linear(d_model, self.vocab_size, use_bias=False, rngs=rngs)
    )

  def __call__(
    self,
    tokens: jax.Array,
    *,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | jax.Array | None = None,
  ) -> jax.Array:
    """Next-token logits (batch, time, vocab_size) for token ids (batch, time ≤ max_len).

    `deterministic` and `rngs` are as in `MLP`.
    """
    tokens = _checks.check_token_input(
      "TransformerLM", tokens, self.max_len, vocab_size=self.vocab_size
    )
    rngs = _checks.as_rngs(rngs)
    x = self.embed(tokens) + self.pos_embed(jnp.arange(tokens.shape[1]))[None]
    x = apply_dropout(self.dropout, x, deterministic, rngs)
    mask = nnx.make_causal_mask(tokens, dtype=jnp.bool_)
    for block in self.blocks:
      x = block(x, mask, deterministic=deterministic, rngs=rngs)
    x = self.ln_f(x)
    return self.embed.attend(x) if self.head is None else self.head(x)


class TransformerClassifier(nnx.Module):
  """A transformer encoder (no causal mask) for sequence classification.

  Inputs are token ids (batch, time) with ``tokens=True``, or float features
  (batch, time, in_features), projected by a Linear layer, with ``tokens=False``.
  The sequence is summarized by ``pooling="mean"`` (the mean of the final states over
  unpadded positions) or ``"cls"`` (a learned token prepended to every sequence, whose
  final state is used), then LayerNorm'd and fed to a Linear head.

  Args:
    in_features: vocabulary size (``tokens=True``) or input feature size.
    num_classes: number of outputs.
    max_len: longest sequence (number of learned positions; one more is added for the
      cls token).
    tokens: whether inputs are token ids (True) or float features (False).
    d_model, num_heads, num_layers, d_ff, dropout, activation: as in `TransformerLM`.
    pooling: ``"mean"`` or ``"cls"``.
    rngs: the `nnx.Rngs` for initialization and dropout.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = TransformerClassifier(
    ...   11, 3, 8, d_model=8, num_heads=2, num_layers=1, rngs=nnx.Rngs(0))
    >>> model(jnp.zeros((2, 5), jnp.int32)).shape
    (2, 3)
  """

  def __init__(
    self,
    in_features: int,
    num_classes: int,
    max_len: int,
    *,
    tokens: bool = True,
    d_model: int = 128,
    num_heads: int = 4,
    num_layers: int = 2,
    d_ff: int | None = None,
    dropout: float = 0.0,
    activation: str | Callable[[jax.Array], jax.Array] = "gelu",
    pooling: str = "mean",
    rngs: nnx.Rngs,
  ):
    where = "TransformerClassifier"
    _checks.check_rngs(where, rngs)
    self.in_features = _checks.check_positive_int(where, "in_features", in_features)
    self.num_classes = _checks.check_positive_int(where, "num_classes", num_classes)
    self.max_len = _checks.check_positive_int(where, "max_len", max_len)
    d_ff = _check_sizes(where, d_model, num_heads, d_ff)
    _checks.check_positive_int(where, "num_layers", num_layers)
    _checks.check_choice(where, "pooling", pooling, POOLINGS)
    rate = _checks.check_rate(where, "dropout", dropout)
    self.tokens = bool(tokens)
    self.pooling = pooling
    if self.tokens:
      self.embed = nnx.Embed(self.in_features, d_model, embedding_init=_EMBED_INIT, rngs=rngs)
    else:
      self.embed = nnx.Linear(self.in_features, d_model, rngs=rngs)
    positions = self.max_len + (pooling == "cls")
    self.pos_embed = nnx.Embed(positions, d_model, embedding_init=_EMBED_INIT, rngs=rngs)
    self.cls = nnx.Param(_EMBED_INIT(rngs.params(), (1, 1, d_model))) if pooling == "cls" else None
    self.dropout = nnx.Dropout(rate, rngs=rngs) if rate > 0 else None
    self.blocks = nnx.List(
      [
        TransformerBlock(d_model, num_heads, d_ff, dropout=rate, activation=activation, rngs=rngs)
        for _ in range(num_layers)
      ]
    )
    self.ln_f = nnx.LayerNorm(d_model, rngs=rngs)
    self.head = nnx.Linear(d_model, self.num_classes, rngs=rngs)

  def _embed_inputs(self, x: jax.Array) -> jax.Array:
    where = "TransformerClassifier"
    if self.tokens:
      return self.embed(
        _checks.check_token_input(where, x, self.max_len, vocab_size=self.in_features)
      )
    x = _checks.check_float_input(where, x)
    _checks.check_features(where, x, ("batch", "time", self.in_features))
    if x.shape[1] > self.max_len:
      raise ValueError(
        f"{where}: sequence length {x.shape[1]} exceeds max_len={self.max_len}; got "
        f"shape {tuple(x.shape)}"
      )
    return self.embed(x.astype(jnp.result_type(x.dtype, jnp.float32)))

  def __call__(
    self,
    x: jax.Array,
    *,
    padding_mask: jax.Array | None = None,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | jax.Array | None = None,
  ) -> jax.Array:
    """Logits (batch, num_classes) for token ids (batch, time) or features
    (batch, time, in_features).

    Args:
      x: the sequences.
      padding_mask: optional (batch, time) booleans, True at real positions; padded
        positions are neither attended to nor pooled.
      deterministic: as in `MLP`.
      rngs: as in `MLP`.
    """
    h = self._embed_inputs(x)
    batch, time = h.shape[:2]
    valid = jnp.ones((batch, time), bool) if padding_mask is None else padding_mask.astype(bool)
    if valid.shape != (batch, time):
      raise ValueError(
        f"TransformerClassifier: padding_mask must have shape ({batch}, {time}), "
        f"got {tuple(valid.shape)}"
      )
    if self.cls is not None:
      h = jnp.concatenate([jnp.broadcast_to(self.cls[...], (batch, 1, h.shape[-1])), h], axis=1)
      valid = jnp.concatenate([jnp.ones((batch, 1), bool), valid], axis=1)
    rngs = _checks.as_rngs(rngs)
    h = h + self.pos_embed(jnp.arange(h.shape[1]))[None]
    h = apply_dropout(self.dropout, h, deterministic, rngs)
    mask = jnp.broadcast_to(valid[:, None, None, :], (batch, 1, h.shape[1], h.shape[1]))
    for block in self.blocks:
      h = block(h, mask, deterministic=deterministic, rngs=rngs)
    h = self.ln_f(h)
    if self.pooling == "cls":
      pooled = h[:, 0]
    else:
      weights = valid.astype(h.dtype)[..., None]
      pooled = jnp.sum(h * weights, axis=1) / jnp.maximum(jnp.sum(weights, axis=1), 1.0)
    return self.head(pooled)
