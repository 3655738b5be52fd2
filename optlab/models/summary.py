"""Parameter counting: `count_params(model)` and `param_summary(model)`."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from flax import nnx


def _param_state(model: Any) -> Any:
  """The Param state of a Module, or `model` itself if it already is a state/pytree."""
  if isinstance(model, nnx.Module):
    return nnx.state(model, nnx.Param)
  return model


def count_params(model: Any) -> int:
  """The number of scalars in the `nnx.Param` variables of `model`.

  Args:
    model: an `nnx.Module` (BatchNorm statistics and RNG state are not counted), or a
      state / pytree of arrays such as the ``params`` from
      ``nnx.split(model, nnx.Param, ...)`` (every leaf is counted).

  Returns:
    The total number of parameters.

  Example:
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> count_params(MLP(4, [8], 3, rngs=nnx.Rngs(0)))  # 4*8 + 8 + 8*3 + 3
    67
  """
  return int(sum(np.size(leaf) for leaf in jax.tree.leaves(_param_state(model))))


def _path(path: tuple[Any, ...]) -> str:
  parts = []
  for entry in path:
    if isinstance(entry, jax.tree_util.DictKey):
      parts.append(str(entry.key))
    elif isinstance(entry, jax.tree_util.SequenceKey):
      parts.append(str(entry.idx))
    elif isinstance(entry, jax.tree_util.GetAttrKey):
      if entry.name != "value":  # the array inside an nnx.Variable
        parts.append(entry.name)
    else:
      parts.append(str(entry))
  return "/".join(parts)


def param_summary(model: Any) -> str:
  """A table of the parameters of `model`: one row per array (path, shape, count), then the total.

  Args:
    model: an `nnx.Module` or a state / pytree of arrays, as in `count_params`.

  Returns:
    The table as a string, ready to print.

  Example:
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> print(param_summary(MLP(4, [8], 3, rngs=nnx.Rngs(0))))
    path              shape    count
    head/bias         (3,)         3
    head/kernel       (8, 3)      24
    layers/0/bias     (8,)         8
    layers/0/kernel   (4, 8)      32
    total                         67
  """
  leaves = jax.tree_util.tree_flatten_with_path(_param_state(model))[0]
  rows = [(_path(path), str(tuple(np.shape(leaf))), str(np.size(leaf))) for path, leaf in leaves]
  total = str(sum(int(count) for _, _, count in rows))
  header = ("path", "shape", "count")
  footer = ("total", "", total)
  table = [header, *rows, footer]
  widths = [max(len(row[i]) for row in table) for i in range(3)]

  def line(row: tuple[str, str, str]) -> str:
    return f"{row[0]:<{widths[0]}}   {row[1]:<{widths[1]}}   {row[2]:>{widths[2]}}".rstrip()

  return "\n".join(line(row) for row in table)
