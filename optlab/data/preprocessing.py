"""Preprocessing fitted on training data and applied unchanged elsewhere; tokens for char LMs."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import numpy as np

Axis = int | tuple[int, ...]


def _scale_or_one(scale: np.ndarray, min_scale: float) -> np.ndarray:
  """Scales below `min_scale` (constant features) become 1, as in scikit-learn's scalers."""
  return np.where(scale < min_scale, 1.0, scale)


@dataclasses.dataclass(frozen=True, eq=False)
class Standardizer:
  """x ↦ (x − mean) / std, with mean and std measured on the training set only.

  Build with `Standardizer.fit(x_train)`, then `apply` to train, validation and
  test alike. A feature whose std is below `min_std` (a constant feature) gets
  std 1, so it is centered but never divided by ~0 (scikit-learn's
  `StandardScaler` does the same). Statistics are kept with `keepdims`, so
  `apply` broadcasts without rank promotion, on numpy and JAX arrays (inside
  `jit` too).

  Example:
    >>> import numpy as np
    >>> s = Standardizer.fit(np.array([[0.0, 5.0], [2.0, 5.0]]))
    >>> s.apply(np.array([[1.0, 7.0]])).tolist()
    [[0.0, 2.0]]
  """

  mean: np.ndarray
  std: np.ndarray

  @classmethod
  def fit(cls, x: np.ndarray, axis: Axis = 0, min_std: float = 1e-8) -> Standardizer:
    """Measures mean and std of `x` over `axis` (float64 accumulation, float32 result).

    Args:
      x: training inputs.
      axis: the axes averaged over: 0 for per-feature statistics, (0, 1, 2) for
        per-channel statistics of NHWC images.
      min_std: stds below this are replaced by 1.
    """
    x = np.asarray(x, np.float64)
    if x.size == 0:
      raise ValueError("x is empty: cannot fit a Standardizer")
    mean = x.mean(axis=axis, keepdims=True)
    std = _scale_or_one(x.std(axis=axis, keepdims=True), min_std)
    return cls(mean=mean.astype(np.float32), std=std.astype(np.float32))

  def apply(self, x: np.ndarray | jax.Array) -> np.ndarray | jax.Array:
    """(x − mean) / std."""
    return (x - self.mean) / self.std

  def inverse(self, z: np.ndarray | jax.Array) -> np.ndarray | jax.Array:
    """z · std + mean, undoing `apply`."""
    return z * self.std + self.mean


@dataclasses.dataclass(frozen=True, eq=False)
class MinMaxScaler:
  """x ↦ lo + (x − min) (hi − lo) / (max − min), with min and max measured on training data.

  A constant feature (max − min below `min_range`) gets range 1, so it maps to
  `lo`. Test data may fall outside [lo, hi]; nothing is clipped.

  Example:
    >>> import numpy as np
    >>> MinMaxScaler.fit(np.array([[0.0], [4.0]])).apply(np.array([[1.0]])).tolist()
    [[0.25]]
  """

  data_min: np.ndarray
  data_range: np.ndarray
  feature_range: tuple[float, float] = (0.0, 1.0)

  @classmethod
  def fit(
    cls,
    x: np.ndarray,
    axis: Axis = 0,
    feature_range: tuple[float, float] = (0.0, 1.0),
    min_range: float = 1e-8,
  ) -> MinMaxScaler:
    """Measures min and max of `x` over `axis`; `feature_range` = (lo, hi), lo < hi."""
    lo, hi = feature_range
    if not lo < hi:
      raise ValueError(f"feature_range must have lo < hi, got {feature_range}")
    x = np.asarray(x, np.float64)
    if x.size == 0:
      raise ValueError("x is empty: cannot fit a MinMaxScaler")
    data_min = x.min(axis=axis, keepdims=True)
    data_range = _scale_or_one(x.max(axis=axis, keepdims=True) - data_min, min_range)
    return cls(
      data_min.astype(np.float32), data_range.astype(np.float32), (float(lo), float(hi))
    )

  def apply(self, x: np.ndarray | jax.Array) -> np.ndarray | jax.Array:
    lo, hi = self.feature_range
    return (x - self.data_min) / self.data_range * (hi - lo) + lo

  def inverse(self, z: np.ndarray | jax.Array) -> np.ndarray | jax.Array:
    lo, hi = self.feature_range
    return (z - lo) / (hi - lo) * self.data_range + self.data_min


def channel_stats(images: np.ndarray, min_std: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and std (shape (C,)) of channel-last images, over every other axis."""
  images = np.asarray(images)
  if images.ndim < 2:
    raise ValueError(f"images must be channel-last with ndim >= 2, got shape {images.shape}")
  axes = tuple(range(images.ndim - 1))
  mean = images.mean(axis=axes, dtype=np.float64)
  std = _scale_or_one(images.std(axis=axes, dtype=np.float64), min_std)
  return mean.astype(np.float32), std.astype(np.float32)


def per_channel_normalize(
  images: np.ndarray | jax.Array,
  mean: Sequence[float] | np.ndarray | None = None,
  std: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray | jax.Array:
  """(images − mean[c]) / std[c] for channel-last images (…, H, W, C).

  With `mean`/`std` None they are measured on `images` itself (`channel_stats`);
  for held-out data pass the training set's statistics instead.

  Example:
    >>> import numpy as np
    >>> imgs = np.stack([np.zeros((2, 2)), np.ones((2, 2))], axis=-1)[None]  # (1, 2, 2, 2)
    >>> per_channel_normalize(imgs, mean=[0.0, 0.5], std=[1.0, 0.5])[0, 0, 0].tolist()
    [0.0, 1.0]
  """
  if mean is None or std is None:
    m, s = channel_stats(np.asarray(images))
    mean = m if mean is None else mean
    std = s if std is None else std
  channels = images.shape[-1]
  mean = np.asarray(mean, np.float32)
  std = np.asarray(std, np.float32)
  if mean.shape != (channels,) or std.shape != (channels,):
    raise ValueError(
      f"mean and std must have shape ({channels},) for {channels} channels, got "
      f"{mean.shape} and {std.shape}"
    )
  shape = (1,) * (images.ndim - 1) + (channels,)
  return (images - mean.reshape(shape)) / std.reshape(shape)


def one_hot(
  labels: np.ndarray | jax.Array, num_classes: int, dtype: np.dtype | type = np.float32
) -> np.ndarray | jax.Array:
  """One-hot rows: shape labels.shape + (num_classes,).

  numpy labels give a numpy array and are checked to lie in [0, num_classes);
  JAX arrays (traceable, under `jit`) go through `jax.nn.one_hot`, where an
  out-of-range label gives a zero row.

  Example:
    >>> one_hot(np.array([2, 0]), 3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
  """
  if num_classes < 1:
    raise ValueError(f"num_classes must be >= 1, got {num_classes}")
  if isinstance(labels, jax.Array):
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)
  labels = np.asarray(labels)
  if not np.issubdtype(labels.dtype, np.integer):
    raise TypeError(f"labels must be integers, got dtype {labels.dtype}")
  if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(
      f"labels must lie in [0, num_classes={num_classes}), got range "
      f"[{labels.min()}, {labels.max()}]"
    )
  return np.eye(num_classes, dtype=dtype)[labels]


def _codepoints(text: str) -> np.ndarray:
  return np.frombuffer(text.encode("utf-32-le"), np.uint32)


@dataclasses.dataclass(frozen=True, eq=False)
class CharTokenizer:
  """Characters ↔ int32 ids, the vocabulary sorted by code point.

  Unknown characters: with `unk=None` (default) `encode` raises a ValueError
  naming them; with `unk` set to a character (e.g. "\\ufffd") that character is
  appended to the vocabulary as the last id, and every unknown character
  encodes to it (so `decode(encode(s))` shows it where s had unknowns).

  Example:
    >>> tok = CharTokenizer.fit("hello")
    >>> tok.vocab, tok.encode("hole").tolist(), tok.decode(tok.encode("hole"))
    (('e', 'h', 'l', 'o'), [1, 3, 2, 0], 'hole')
  """

  vocab: tuple[str, ...]
  unk: str | None = None

  def __post_init__(self) -> None:
    known = self.vocab[:-1] if self.unk is not None else self.vocab
    if list(known) != sorted(set(known)) or any(len(c) != 1 for c in self.vocab):
      raise ValueError("vocab must be distinct single characters sorted by code point")
    if self.unk is not None and (self.vocab[-1] != self.unk or self.unk in known):
      raise ValueError(f"unk {self.unk!r} must be the vocabulary's last entry, and only there")
    object.__setattr__(self, "_points", _codepoints("".join(known)))
    object.__setattr__(self, "_all_points", _codepoints("".join(self.vocab)))

  @classmethod
  def fit(cls, text: str, unk: str | None = None) -> CharTokenizer:
    """The tokenizer whose vocabulary is the distinct characters of `text` (plus `unk`)."""
    if not text:
      raise ValueError("text is empty: cannot fit a CharTokenizer")
    chars = sorted(set(text))
    if unk is not None:
      if len(unk) != 1:
        raise ValueError(f"unk must be a single character, got {unk!r}")
      if unk in chars:
        raise ValueError(f"unk {unk!r} occurs in the text; choose a character that does not")
      chars.append(unk)
    return cls(vocab=tuple(chars), unk=unk)

  @property
  def vocab_size(self) -> int:
    return len(self.vocab)

  def encode(self, text: str) -> np.ndarray:
    """int32 ids, shape (len(text),)."""
    points = _codepoints(text)
    known = self._points  # type: ignore[attr-defined]
    ids = np.searchsorted(known, points)
    found = ids < len(known)
    found[found] = known[ids[found]] == points[found]
    if not found.all():
      if self.unk is None:
        missing = sorted({chr(p) for p in points[~found]})
        raise ValueError(
          f"characters not in the vocabulary: {missing[:20]!r}; fit on text containing them "
          "or build the tokenizer with unk='\\ufffd'"
        )
      ids[~found] = len(self.vocab) - 1
    return ids.astype(np.int32)

  def decode(self, ids: np.ndarray | Sequence[int]) -> str:
    """The text for `ids` (any integer array; flattened)."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
      return ""
    if not np.issubdtype(ids.dtype, np.integer):
      raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
    if ids.min() < 0 or ids.max() >= self.vocab_size:
      raise ValueError(f"ids must lie in [0, vocab_size={self.vocab_size})")
    return self._all_points[ids].tobytes().decode("utf-32-le")  # type: ignore[attr-defined]


def make_sequences(
  tokens: np.ndarray, seq_len: int, stride: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
  """Windows for next-token prediction: targets are the inputs shifted by one.

  Window i covers tokens[i·stride : i·stride + seq_len] (inputs) and
  tokens[i·stride + 1 : i·stride + seq_len + 1] (targets); the default stride
  `seq_len` gives non-overlapping windows. Tokens after the last full window
  are dropped.

  Args:
    tokens: 1-D token ids.
    seq_len: window length, >= 1.
    stride: step between window starts, >= 1; defaults to `seq_len`.

  Returns:
    (inputs, targets), each (num_windows, seq_len), the dtype of `tokens`.

  Example:
    >>> x, y = make_sequences(np.arange(7), seq_len=3)
    >>> x.tolist(), y.tolist()
    ([[0, 1, 2], [3, 4, 5]], [[1, 2, 3], [4, 5, 6]])
  """
  tokens = np.asarray(tokens)
  stride = seq_len if stride is None else stride
  if tokens.ndim != 1:
    raise ValueError(f"tokens must be 1-D, got shape {tokens.shape}")
  if seq_len < 1:
    raise ValueError(f"seq_len must be >= 1, got {seq_len}")
  if stride < 1:
    raise ValueError(f"stride must be >= 1, got {stride}")
  if len(tokens) < seq_len + 1:
    raise ValueError(
      f"tokens has {len(tokens)} entries; seq_len={seq_len} needs at least {seq_len + 1}"
    )
  windows = np.lib.stride_tricks.sliding_window_view(tokens, seq_len + 1)[::stride]
  return np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])
