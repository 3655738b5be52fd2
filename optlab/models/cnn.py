"""A small convolutional classifier: `CNN(in_channels, num_classes, ...)`, inputs NHWC."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from optlab.models import _checks
from optlab.models._layers import BATCHNORM_MOMENTUM, apply_norm, make_norm
from optlab.models.activations import get_activation
from optlab.models.mlp import MLP

POOLINGS = ("max", "avg", None)


class CNN(nnx.Module):
  """Conv blocks ``[Conv → norm → activation → 2x2 pool] * len(channels)``, then an MLP head.

  Inputs are NHWC images, (batch, height, width, in_channels); with ``in_channels=1``
  a (batch, height, width) array is accepted too. Convolutions use "SAME" padding and
  stride 1; each block ends with a 2x2 pool of stride 2 ("VALID", so odd sizes round
  down), which halves the height and width.

  The head sees one feature vector per image:
    * ``input_size=None`` (default): global average pooling over height and width,
      giving ``channels[-1]`` features; any image size works.
    * ``input_size=(height, width)``: the final feature maps are flattened, giving
      ``h' * w' * channels[-1]`` features (h', w' the sizes after pooling); images must
      then have exactly that size.
  The head is an `MLP` with the given ``hidden`` widths, activation and dropout (no
  normalization). ``normalization="layer"`` normalizes each pixel's channels
  (LayerNorm over the last axis); ``"batch"`` is BatchNorm over batch, height, width.
  Convolutions keep their bias in every case.

  Args:
    in_channels: number of input channels.
    num_classes: number of outputs.
    channels: output channels of each conv block.
    kernel_size: square kernel size of every convolution.
    pooling: ``"max"``, ``"avg"`` or None (no pooling).
    activation: a name from `activation_names()` or a callable.
    dropout: dropout rate in [0, 1) in the head (after each hidden activation).
    normalization: None, ``"batch"`` or ``"layer"``, in the conv blocks.
    hidden: widths of the head's hidden layers; ``()`` for a linear head.
    input_size: (height, width) to flatten the features instead of pooling them.
    batchnorm_momentum: BatchNorm running-average momentum (see `MLP`).
    rngs: the `nnx.Rngs` for initialization and dropout.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = CNN(1, 3, channels=(8,), hidden=(8,), rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 8, 8, 1))).shape
    (2, 3)
  """

  def __init__(
    self,
    in_channels: int,
    num_classes: int,
    *,
    channels: Sequence[int] = (32, 64),
    kernel_size: int = 3,
    pooling: str | None = "max",
    activation: str | Callable[[jax.Array], jax.Array] = "relu",
    dropout: float = 0.0,
    normalization: str | None = None,
    hidden: Sequence[int] = (128,),
    input_size: tuple[int, int] | None = None,
    batchnorm_momentum: float = BATCHNORM_MOMENTUM,
    rngs: nnx.Rngs,
  ):
    where = "CNN"
    _checks.check_rngs(where, rngs)
    self.in_channels = _checks.check_positive_int(where, "in_channels", in_channels)
    self.num_classes = _checks.check_positive_int(where, "num_classes", num_classes)
    self.channels = _checks.check_sizes(where, "channels", channels, allow_empty=False)
    self.kernel_size = _checks.check_positive_int(where, "kernel_size", kernel_size)
    _checks.check_choice(where, "pooling", pooling, POOLINGS)
    self.pooling = pooling
    self.activation = get_activation(activation)
    _checks.check_choice(where, "normalization", normalization, (None, "batch", "layer"))
    self.normalization = normalization
    self.input_size = (
      None if input_size is None else _checks.check_sizes(where, "input_size", input_size)
    )
    if self.input_size is not None and len(self.input_size) != 2:
      raise ValueError(f"CNN: input_size must be (height, width), got {input_size!r}")
    widths = (self.in_channels, *self.channels)
    self.convs = nnx.List(
      [
        nnx.Conv(a, b, (self.kernel_size, self.kernel_size), padding="SAME", rngs=rngs)
        for a, b in itertools.pairwise(widths)
      ]
    )
    self.norms = nnx.List(
      [
        make_norm(where, normalization, width, momentum=batchnorm_momentum, rngs=rngs)
        for width in self.channels
      ]
      if normalization is not None
      else []
    )
    if self.input_size is None:
      features = self.channels[-1]
    else:
      height, width = (self._pooled(size) for size in self.input_size)
      if height < 1 or width < 1:
        raise ValueError(
          f"CNN: input_size={self.input_size} is too small for {len(self.channels)} "
          f"2x2 poolings (need at least {self._min_size()} pixels per side)"
        )
      features = height * width * self.channels[-1]
    self.head = MLP(
      features,
      _checks.check_sizes(where, "hidden", hidden),
      self.num_classes,
      activation=self.activation,
      dropout=dropout,
      rngs=rngs,
    )

  def _pooled(self, size: int) -> int:
    return size if self.pooling is None else size // 2 ** len(self.channels)

  def _min_size(self) -> int:
    return 1 if self.pooling is None else 2 ** len(self.channels)

  def _pool(self, x: jax.Array) -> jax.Array:
    if self.pooling == "max":
      return nnx.max_pool(x, (2, 2), strides=(2, 2))
    if self.pooling == "avg":
      return nnx.avg_pool(x, (2, 2), strides=(2, 2))
    return x

  def _check_input(self, x: jax.Array) -> jax.Array:
    if x.ndim == 3 and self.in_channels == 1:
      x = x[..., None]
    if self.input_size is not None:
      expected = ("batch", *self.input_size, self.in_channels)
    else:
      expected = ("batch", "height", "width", self.in_channels)
    _checks.check_features("CNN", x, expected, "images are NHWC")
    if min(x.shape[1:3]) < self._min_size():
      raise ValueError(
        f"CNN: images of shape {tuple(x.shape)} are too small for {len(self.channels)} "
        f"2x2 poolings (need at least {self._min_size()} pixels per side)"
      )
    return x

  def __call__(
    self,
    x: jax.Array,
    *,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | jax.Array | None = None,
  ) -> jax.Array:
    """Maps images (batch, height, width, in_channels) to logits (batch, num_classes).

    Args:
      x: the images, NHWC.
      deterministic: True for evaluation behavior, False for training, None to follow
        the module's mode (see `MLP`).
      rngs: optional dropout randomness for this call (an `nnx.Rngs` or a key).
    """
    x = self._check_input(_checks.check_float_input("CNN", x))
    rngs = _checks.as_rngs(rngs)
    norms = list(self.norms) or [None] * len(self.convs)
    for conv, norm in zip(self.convs, norms, strict=True):
      x = self._pool(self.activation(apply_norm(norm, conv(x), deterministic)))
    x = jnp.mean(x, axis=(1, 2)) if self.input_size is None else x.reshape(x.shape[0], -1)
    return self.head(x, deterministic=deterministic, rngs=rngs)
