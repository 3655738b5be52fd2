"""A multilayer perceptron: `MLP(in_features, hidden_sizes, out_features, ...)`."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import jax
from flax import nnx

from optlab.models import _checks
from optlab.models._layers import BATCHNORM_MOMENTUM, apply_dropout, apply_norm, make_norm
from optlab.models.activations import get_activation


class MLP(nnx.Module):
  """A fully connected network: ``[Linear → norm → activation → dropout] * n → Linear``.

  Inputs with more than two dimensions are flattened after the batch axis, so images
  of shape (batch, 8, 8) feed an MLP with ``in_features=64``. The output layer has no
  normalization, activation or dropout (it returns logits or regression outputs).

  Dropout and BatchNorm follow flax NNX modes: the model is built in training mode
  (dropout on, batch statistics computed and the running averages updated);
  ``model.eval()`` switches both off and ``model.train()`` back on. A call-time
  ``deterministic=True`` (or False) overrides the mode for that call.

  Args:
    in_features: number of input features (after flattening).
    hidden_sizes: widths of the hidden layers, e.g. ``(128, 128)``; ``()`` gives a
      linear model.
    out_features: number of outputs (classes for a classifier).
    activation: a name from `activation_names()` or a callable.
    dropout: dropout rate in [0, 1) after each hidden activation.
    normalization: None, ``"layer"`` or ``"batch"``, applied before each hidden
      activation.
    batchnorm_momentum: BatchNorm running-average momentum (flax convention: the
      weight of the old value; 0.9 matches PyTorch's ``momentum=0.1``).
    rngs: the `nnx.Rngs` for parameter initialization and (stored) dropout keys;
      dropout draws from its ``"dropout"`` stream, else from ``"default"``.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = MLP(4, [8], 3, rngs=nnx.Rngs(0))
    >>> model(jnp.ones((2, 4))).shape
    (2, 3)
  """

  def __init__(
    self,
    in_features: int,
    hidden_sizes: Sequence[int],
    out_features: int,
    *,
    activation: str | Callable[[jax.Array], jax.Array] = "relu",
    dropout: float = 0.0,
    normalization: str | None = None,
    batchnorm_momentum: float = BATCHNORM_MOMENTUM,
    rngs: nnx.Rngs,
  ):
    where = "MLP"
    _checks.check_rngs(where, rngs)
    self.in_features = _checks.check_positive_int(where, "in_features", in_features)
    self.out_features = _checks.check_positive_int(where, "out_features", out_features)
    self.hidden_sizes = _checks.check_sizes(where, "hidden_sizes", hidden_sizes)
    self.activation = get_activation(activation)
    self.dropout_rate = _checks.check_rate(where, "dropout", dropout)
    _checks.check_choice(where, "normalization", normalization, (None, "layer", "batch"))
    self.normalization = normalization
    widths = (self.in_features, *self.hidden_sizes)
    self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(widths)])
    self.norms = nnx.List(
      [
        make_norm(where, normalization, width, momentum=batchnorm_momentum, rngs=rngs)
        for width in self.hidden_sizes
      ]
      if normalization is not None
      else []
    )
    self.dropout = nnx.Dropout(self.dropout_rate, rngs=rngs) if self.dropout_rate > 0 else None
    self.head = nnx.Linear(widths[-1], self.out_features, rngs=rngs)

  def __call__(
    self,
    x: jax.Array,
    *,
    deterministic: bool | None = None,
    rngs: nnx.Rngs | jax.Array | None = None,
  ) -> jax.Array:
    """Maps inputs of shape (batch, in_features), or (batch, ...) that flatten to it,
    to outputs of shape (batch, out_features).

    Args:
      x: the inputs.
      deterministic: True for evaluation behavior (no dropout, BatchNorm running
        averages), False for training behavior, None to follow the module's mode.
      rngs: optional dropout randomness for this call (an `nnx.Rngs` or a key), used
        instead of the stored stream.
    """
    x = _checks.check_float_input("MLP", x)
    shape = x.shape
    if x.ndim > 2:
      x = x.reshape(x.shape[0], -1)
    if x.ndim != 2 or x.shape[1] != self.in_features:
      raise ValueError(
        f"MLP: expected input of shape (batch, {self.in_features}) (inputs with more "
        f"than 2 dims are flattened after the batch axis), got shape {tuple(shape)}"
      )
    rngs = _checks.as_rngs(rngs)
    norms = list(self.norms) or [None] * len(self.layers)
    for layer, norm in zip(self.layers, norms, strict=True):
      x = apply_norm(norm, layer(x), deterministic)
      x = apply_dropout(self.dropout, self.activation(x), deterministic, rngs)
    return self.head(x)
