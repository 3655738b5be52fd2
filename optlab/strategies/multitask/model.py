"""The multi-task model: a shared trunk with one head per task."""

from __future__ import annotations

from collections.abc import Mapping

import jax
from flax import nnx


class MultiTaskModel(nnx.Module):
  """A shared trunk followed by one head per task; returns ``{task: head(trunk(x))}``.

  Args:
    trunk: the shared module (its output feeds every head).
    heads: ``{task name: module}``; the order of the tasks is the order of this mapping.

  Example:
    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> model = MultiTaskModel(nnx.Linear(4, 8, rngs=nnx.Rngs(0)),
    ...                        {"a": nnx.Linear(8, 3, rngs=nnx.Rngs(1)),
    ...                         "b": nnx.Linear(8, 2, rngs=nnx.Rngs(2))})
    >>> {k: v.shape for k, v in model(jnp.ones((5, 4))).items()}
    {'a': (5, 3), 'b': (5, 2)}
  """

  def __init__(self, trunk: nnx.Module, heads: Mapping[str, nnx.Module]):
    if not isinstance(trunk, nnx.Module):
      raise TypeError(f"MultiTaskModel: trunk must be an nnx.Module, got {type(trunk).__name__}")
    if not isinstance(heads, Mapping) or not heads:
      raise ValueError(f"MultiTaskModel: heads must be a non-empty {{task: nnx.Module}} mapping, "
                       f"got {heads!r}")
    for name, head in heads.items():
      if not isinstance(name, str) or not name:
        raise TypeError(f"MultiTaskModel: task names must be non-empty strings, got {name!r}")
      if not isinstance(head, nnx.Module):
        raise TypeError(f"MultiTaskModel: head {name!r} must be an nnx.Module, "
                        f"got {type(head).__name__}")
    self.trunk = trunk
    self.heads = nnx.Dict(dict(heads))
    self.tasks = tuple(heads)

  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    features = self.trunk(x)
    return {task: self.heads[task](features) for task in self.tasks}
