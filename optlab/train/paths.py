"""Parameter paths and patterns: name and select the leaves of a model's state.

A leaf's path is its ``jax.tree_util`` key path joined by ``/`` with flax NNX's
trailing ``.value`` dropped, so a model's ``nnx.State`` and the equivalent plain
dict read the same (``"layers/0/kernel"``, ``"head/bias"``). A pattern is a glob
that matches a whole path or a leading part of it ending at a ``/`` (``"head"``
selects ``head/*``; ``"layers/1"`` does not select ``layers/10/...``), or a
regular expression (``"re:..."`` or an ``re.Pattern``) that must match the
whole path. Freezing, per-layer learning rates and pruning all select
parameters this way; a pattern that matches nothing is an error that lists the
paths there are.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from typing import Any

import jax
from flax import nnx

Pattern = str | re.Pattern
Patterns = Pattern | Sequence[Pattern]
# Up to this many paths are listed in an error message.
_SHOWN = 40


def _key_name(key: Any) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def path_string(keypath: Sequence[Any]) -> str:
  """The ``/``-joined name of a ``tree_flatten_with_path`` key path (flax's ``.value`` dropped).

  Example:
    >>> import jax
    >>> [path_string(p) for p, _ in jax.tree_util.tree_flatten_with_path({"a": [1, 2]})[0]]
    ['a/0', 'a/1']
  """
  keys = list(keypath)
  if keys and isinstance(keys[-1], jax.tree_util.GetAttrKey) and keys[-1].name == "value":
    keys = keys[:-1]  # nnx.Variable's pytree child
  return "/".join(_key_name(k) for k in keys)


def flatten_with_paths(tree: Any) -> tuple[list[str], list[Any]]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  paths = [path_string(p) for p, _ in leaves]
  return paths, [leaf for _, leaf in leaves]


def as_tree(tree: Any, variables: Any = nnx.Param) -> Any:
  """The parameter state of an ``nnx.Module``; any other pytree unchanged."""
  if isinstance(tree, nnx.Module):
    return nnx.state(tree, variables)
  return tree


def parameter_paths(tree: Any) -> list[str]:
  """The paths of every leaf of `tree` (of an ``nnx.Module``: of its ``nnx.Param`` state).

  Args:
    tree: an ``nnx.Module``, its ``nnx.State``, or any pytree.

  Returns:
    The paths, in ``jax.tree_util`` leaf order.

  Example:
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> parameter_paths(MLP(4, [8], 3, rngs=nnx.Rngs(0)))
    ['head/bias', 'head/kernel', 'layers/0/bias', 'layers/0/kernel']
  """
  return flatten_with_paths(as_tree(tree))[0]


def compile_pattern(pattern: Any, argument: str) -> Callable[[str], bool]:
  if isinstance(pattern, re.Pattern):
    return lambda path: pattern.fullmatch(path) is not None
  if not isinstance(pattern, str):
    raise TypeError(f"{argument}: a pattern must be a str (glob, or 're:' + regex) or a "
                    f"compiled re.Pattern, got {pattern!r} ({type(pattern).__name__})")
  if not pattern:
    raise ValueError(f"{argument}: a pattern must not be empty")
  if pattern.startswith("re:"):
    try:
      regex = re.compile(pattern[3:])
    except re.error as error:
      raise ValueError(f"{argument}: {pattern!r} is not a valid regular expression ({error})") \
        from None
    return lambda path: regex.fullmatch(path) is not None
  glob = pattern.rstrip("/")

  def matches(path: str) -> bool:
    parts = path.split("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:k]), glob) for k in range(1, len(parts) + 1))

  return matches


def pattern_list(patterns: Any, argument: str) -> list[Pattern]:
  if isinstance(patterns, (str, re.Pattern)):
    return [patterns]
  if not isinstance(patterns, Sequence) or not patterns:
    raise (TypeError if not isinstance(patterns, Sequence) else ValueError)(
        f"{argument}: expected a pattern or a non-empty sequence of patterns (glob strings, "
        f"'re:' strings or re.Pattern), got {patterns!r}")
  for p in patterns:
    compile_pattern(p, argument)  # type and syntax checks
  return list(patterns)


def show_pattern(pattern: Pattern) -> str:
  return f"re.compile({pattern.pattern!r})" if isinstance(pattern, re.Pattern) else repr(pattern)


def describe_paths(paths: Sequence[str]) -> str:
  shown = ", ".join(paths[:_SHOWN])
  return shown + (f", ... ({len(paths)} in all)" if len(paths) > _SHOWN else "")


def no_match_error(argument: str, pattern: Pattern, paths: Sequence[str]) -> ValueError:
  return ValueError(f"{argument}: pattern {show_pattern(pattern)} matches no parameter; available "
                    f"paths: {describe_paths(paths)}")


def match_paths(tree: Any, patterns: Patterns, *, argument: str = "patterns") -> list[str]:
  """The paths of `tree` that any of `patterns` matches (each pattern must match one).

  Args:
    tree: an ``nnx.Module`` (its ``nnx.Param`` state), an ``nnx.State`` or any pytree.
    patterns: a glob string, an ``"re:"`` string, an ``re.Pattern``, or a sequence of them.
    argument: the argument name errors report.

  Returns:
    The matched paths, in leaf order.

  Raises:
    ValueError: a pattern matches nothing (the message lists the available paths).

  Example:
    >>> from flax import nnx
    >>> from optlab.models import MLP
    >>> match_paths(MLP(4, [8, 8], 3, rngs=nnx.Rngs(0)), ["layers/1", "re:head/b.*"])
    ['head/bias', 'layers/1/bias', 'layers/1/kernel']
  """
  patterns = pattern_list(patterns, argument)
  paths = parameter_paths(tree)
  hits = [False] * len(paths)
  for pattern in patterns:
    matches = compile_pattern(pattern, argument)
    found = [i for i, path in enumerate(paths) if matches(path)]
    if not found:
      raise no_match_error(argument, pattern, paths)
    for i in found:
      hits[i] = True
  return [path for path, hit in zip(paths, hits, strict=True) if hit]
