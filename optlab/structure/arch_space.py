"""Architecture search spaces and the models they describe.

:func:`mlp_space` and :func:`cnn_space` are :class:`optlab.optim.space.SearchSpace`
s over architectures: depth, per-layer widths (conditional on the depth),
activation, normalization and dropout for an MLP; conv blocks, channels, kernel
size, pooling and head width for a CNN. :func:`build_model` turns one
configuration into an ``optlab.models`` network. :mod:`optlab.structure.nas`
searches these spaces.

Example:
  >>> space = mlp_space(max_depth=2, widths=(16, 32))
  >>> config = space.sample(__import__("numpy").random.default_rng(0))
  >>> model = build_model(config, (64,), 10)
  >>> type(model).__name__
  'MLP'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from flax import nnx

from optlab.optim.space import Choice, Conditional, SearchSpace

NORMALIZATIONS = (None, "layer", "batch")
POOLINGS = ("max", "avg", None)
# Keys a configuration may carry besides the architecture; evaluate_architecture uses them.
TRAINING_KEYS = ("learning_rate",)
_MLP_KEYS = ("depth", "activation", "normalization", "dropout")
_CNN_KEYS = ("blocks", "kernel_size", "pooling", "head_width", "activation", "normalization",
             "dropout")


def _positive_ints(where: str, name: str, values: Any) -> tuple[int, ...]:
  if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
    raise ValueError(f"{where}: {name} must be a non-empty sequence of integers, got {values!r}")
  for v in values:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
      raise ValueError(f"{where}: {name} must hold integers ≥ 1, got {v!r} in {values!r}")
  return tuple(int(v) for v in values)


def _check_common(where: str, activations, normalizations, dropouts) -> None:
  from optlab.models.activations import get_activation

  if isinstance(activations, str) or not activations:
    raise ValueError(f"{where}: activations must be a non-empty sequence of names, got "
                     f"{activations!r}")
  for a in activations:
    get_activation(a)  # raises with the accepted names
  bad = [n for n in normalizations if n not in NORMALIZATIONS]
  if isinstance(normalizations, str) or not normalizations or bad:
    raise ValueError(f"{where}: normalizations must be a non-empty sequence drawn from "
                     f"{NORMALIZATIONS}, got {normalizations!r}")
  bad = [d for d in dropouts if isinstance(d, bool) or not isinstance(d, (int, float))
         or not 0 <= d < 1]
  if isinstance(dropouts, str) or not dropouts or bad:
    raise ValueError(f"{where}: dropouts must be a non-empty sequence of rates in [0, 1), got "
                     f"{dropouts!r}")


def _count_choice(where: str, name: str, low: int, high: int) -> tuple[int, ...]:
  for label, v in ((f"min_{name}", low), (f"max_{name}", high)):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
      raise ValueError(f"{where}: {label} must be an integer ≥ 1, got {v!r}")
  if low > high:
    raise ValueError(f"{where}: min_{name}={low} exceeds max_{name}={high}")
  return tuple(range(int(low), int(high) + 1))


def _per_layer(prefix: str, parent: str, counts: tuple[int, ...], options: tuple[int, ...]):
  """`{prefix}_i` for i = 1..max(counts), conditional on `parent` ≥ i where needed."""
  dims = {}
  for i in range(1, max(counts) + 1):
    active = tuple(c for c in counts if c >= i)
    dims[f"{prefix}_{i}"] = (Choice(options) if active == counts
                             else Conditional(Choice(options), parent=parent, values=active))
  return dims


def mlp_space(
    max_depth: int = 4,
    widths: Sequence[int] = (16, 32, 64, 128, 256),
    activations: Sequence[str] = ("relu", "gelu", "tanh", "silu"),
    normalizations: Sequence[str | None] = (None, "layer", "batch"),
    dropouts: Sequence[float] = (0.0, 0.1, 0.3),
    *,
    min_depth: int = 1,
) -> SearchSpace:
  """A search space over multilayer perceptrons (``optlab.models.MLP``).

  Dimensions: ``depth`` (a Choice of min_depth..max_depth hidden layers),
  ``width_i`` for i = 1..max_depth (a Choice of `widths`, active when
  depth ≥ i), ``activation``, ``normalization`` (before each activation) and
  ``dropout`` (after each hidden activation), each a Choice shared by all layers.

  Example:
    >>> space = mlp_space(max_depth=2, widths=(32, 64))
    >>> list(space)
    ['depth', 'width_1', 'width_2', 'activation', 'normalization', 'dropout']
    >>> len(space.grid())
    216
  """
  where = "mlp_space"
  depths = _count_choice(where, "depth", min_depth, max_depth)
  widths = _positive_ints(where, "widths", widths)
  _check_common(where, activations, normalizations, dropouts)
  return SearchSpace({
      "depth": Choice(depths),
      **_per_layer("width", "depth", depths, widths),
      "activation": Choice(tuple(activations)),
      "normalization": Choice(tuple(normalizations)),
      "dropout": Choice(tuple(float(d) for d in dropouts)),
  })


def cnn_space(
    max_blocks: int = 3,
    channels: Sequence[int] = (8, 16, 32, 64),
    kernel_sizes: Sequence[int] = (3, 5),
    poolings: Sequence[str | None] = ("max", "avg"),
    head_widths: Sequence[int] = (0, 32, 64, 128),
    activations: Sequence[str] = ("relu", "gelu", "tanh", "silu"),
    normalizations: Sequence[str | None] = (None, "layer", "batch"),
    dropouts: Sequence[float] = (0.0, 0.1, 0.3),
    *,
    min_blocks: int = 1,
) -> SearchSpace:
  """A search space over small convolutional networks (``optlab.models.CNN``).

  Dimensions: ``blocks`` (conv blocks, each Conv → norm → activation → 2x2
  pool), ``channels_i`` (a Choice of `channels`, active when blocks ≥ i),
  ``kernel_size`` (one for every convolution, as ``CNN`` takes one),
  ``pooling``, ``head_width`` (the hidden width of the head after global
  average pooling; 0 for a linear head), ``activation``, ``normalization`` (in
  the conv blocks) and ``dropout`` (in the head, so active only when
  head_width > 0). With pooling, `max_blocks` blocks need images of at least
  2^max_blocks pixels a side (3 blocks fit digits' 8x8).

  Example:
    >>> space = cnn_space(max_blocks=2)
    >>> list(space)[:4]
    ['blocks', 'channels_1', 'channels_2', 'kernel_size']
  """
  where = "cnn_space"
  counts = _count_choice(where, "blocks", min_blocks, max_blocks)
  channels = _positive_ints(where, "channels", channels)
  kernel_sizes = _positive_ints(where, "kernel_sizes", kernel_sizes)
  bad = [p for p in poolings if p not in POOLINGS]
  if isinstance(poolings, str) or not poolings or bad:
    raise ValueError(f"{where}: poolings must be a non-empty sequence drawn from {POOLINGS}, "
                     f"got {poolings!r}")
  if isinstance(head_widths, (str, bytes)) or not isinstance(head_widths, Sequence) or not \
      head_widths or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 0
                         for w in head_widths):
    raise ValueError(f"{where}: head_widths must be a non-empty sequence of integers ≥ 0 "
                     f"(0: linear head), got {head_widths!r}")
  _check_common(where, activations, normalizations, dropouts)
  head_widths = tuple(int(w) for w in head_widths)
  dims: dict[str, Any] = {
      "blocks": Choice(counts),
      **_per_layer("channels", "blocks", counts, channels),
      "kernel_size": Choice(kernel_sizes),
      "pooling": Choice(tuple(poolings)),
      "head_width": Choice(head_widths),
      "activation": Choice(tuple(activations)),
      "normalization": Choice(tuple(normalizations)),
  }
  hidden = tuple(w for w in head_widths if w > 0)
  if hidden:
    dropout = Choice(tuple(float(d) for d in dropouts))
    dims["dropout"] = dropout if hidden == head_widths else Conditional(
        dropout, parent="head_width", values=hidden)
  return SearchSpace(dims)


# ----------------------------------------------------------------------------- models


def _layers(config: Mapping[str, Any], count_key: str, prefix: str) -> tuple[int, ...]:
  count = config[count_key]
  if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
    raise ValueError(f"build_model: {count_key} must be an integer ≥ 0, got {count!r}")
  missing = [f"{prefix}_{i}" for i in range(1, count + 1) if f"{prefix}_{i}" not in config]
  if missing:
    raise ValueError(f"build_model: {count_key}={count} needs {missing} in the configuration")
  extra = sorted(k for k in config if k.startswith(f"{prefix}_")
                 and k[len(prefix) + 1:].isdigit() and int(k[len(prefix) + 1:]) > count)
  if extra:
    raise ValueError(f"build_model: {count_key}={count}, but the configuration also sets {extra}")
  return tuple(int(config[f"{prefix}_{i}"]) for i in range(1, count + 1))


def _check_keys(config: Mapping[str, Any], known: tuple[str, ...], prefix: str) -> None:
  unknown = sorted(k for k in config if k not in known and k not in TRAINING_KEYS
                   and not (k.startswith(f"{prefix}_") and k[len(prefix) + 1:].isdigit()))
  if unknown:
    raise ValueError(f"build_model: unknown keys {unknown}; accepted: {list(known)}, "
                     f"{prefix}_1, {prefix}_2, ... and {list(TRAINING_KEYS)}")


def build_model(
    config: Mapping[str, Any],
    input_shape: int | Sequence[int],
    num_classes: int,
    *,
    seed: int = 0,
) -> nnx.Module:
  """The network a configuration of :func:`mlp_space` or :func:`cnn_space` describes.

  A configuration with ``depth`` builds an ``optlab.models.MLP`` (images are
  flattened); one with ``blocks`` builds an ``optlab.models.CNN`` over NHWC
  images with global average pooling before the head.

  Args:
    config: the architecture (keys of :data:`TRAINING_KEYS` are ignored here).
    input_shape: shape of one input: ``(features,)`` or an int for an MLP, images
      ``(height, width, channels)`` (or ``(height, width)``) for either.
    num_classes: outputs of the last layer.
    seed: seeds the initialization and the dropout stream.

  Returns:
    An ``nnx.Module`` in training mode.

  Example:
    >>> import jax.numpy as jnp
    >>> model = build_model({"depth": 1, "width_1": 32, "activation": "relu",
    ...                      "normalization": None, "dropout": 0.0}, (8, 8, 1), 10)
    >>> model(jnp.ones((2, 8, 8, 1))).shape
    (2, 10)
  """
  from optlab.models import CNN, MLP

  if not isinstance(config, Mapping):
    raise TypeError(f"build_model: config must be a mapping, got {type(config).__name__}")
  shape = (input_shape,) if isinstance(input_shape, (int, np.integer)) else tuple(input_shape)
  if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                      for d in shape):
    raise ValueError(f"build_model: input_shape must be positive integers, got {input_shape!r}")
  rngs = nnx.Rngs(seed)
  if "depth" in config:
    _check_keys(config, _MLP_KEYS, "width")
    hidden = _layers(config, "depth", "width")
    return MLP(int(np.prod(shape)), hidden, num_classes,
               activation=config.get("activation", "relu"),
               dropout=float(config.get("dropout", 0.0)),
               normalization=config.get("normalization"), rngs=rngs)
  if "blocks" in config:
    _check_keys(config, _CNN_KEYS, "channels")
    channels = _layers(config, "blocks", "channels")
    if not channels:
      raise ValueError("build_model: a CNN needs blocks ≥ 1, got blocks=0")
    if len(shape) not in (2, 3):
      raise ValueError(f"build_model: a CNN needs images, input_shape (height, width[, "
                       f"channels]), got {input_shape!r}")
    pooling = config.get("pooling", "max")
    if pooling is not None and min(shape[:2]) < 2 ** len(channels):
      raise ValueError(f"build_model: {len(channels)} blocks with 2x2 pooling need images of at "
                       f"least {2 ** len(channels)} pixels a side, got {shape[:2]}")
    head = int(config.get("head_width", 0))
    return CNN(shape[2] if len(shape) == 3 else 1, num_classes, channels=channels,
               kernel_size=int(config.get("kernel_size", 3)), pooling=pooling,
               activation=config.get("activation", "relu"),
               dropout=float(config.get("dropout", 0.0)),
               normalization=config.get("normalization"), hidden=(head,) if head else (),
               rngs=rngs)
  raise ValueError(f"build_model: the configuration has neither 'depth' (an MLP) nor 'blocks' "
                   f"(a CNN); got keys {sorted(config)}")
