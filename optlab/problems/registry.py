"""A registry of the problem factories by name: `names()` and `get(name, **kwargs)`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from optlab.problems.base import Problem
from optlab.problems.classic import beale, rosenbrock
from optlab.problems.quadratic import quadratic
from optlab.problems.wilson import wilson_least_squares

_FACTORIES: dict[str, Callable[..., Problem]] = {
  "beale": beale,
  "quadratic": quadratic,
  "rosenbrock": rosenbrock,
  "wilson_least_squares": wilson_least_squares,
}


def names() -> tuple[str, ...]:
  """The registered problem names, sorted."""
  return tuple(sorted(_FACTORIES))


def get(name: str, **kwargs: Any) -> Problem:
  """Builds the registered problem `name` with the factory's keyword arguments.

  Args:
    name: one of `names()`.
    **kwargs: passed to the factory, e.g. ``condition_number=1e3`` for ``"quadratic"``.

  Returns:
    The problem.

  Raises:
    ValueError: for an unknown name, listing the closest known names.

  Example:
    >>> get("rosenbrock", dim=4).dim
    4
  """
  factory = _FACTORIES.get(name) if isinstance(name, str) else None
  if factory is None:
    known = names()
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.4)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
      f"get: name {name!r} is not a registered problem.{hint} Known: {', '.join(known)}"
    )
  return factory(**kwargs)
