"""A unit of a study that dies part-way, for the studies' resume tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def die_at_call(monkeypatch, owner: Any, name: str, n: int, label: Callable[..., Any],
                calls: list | None = None) -> list:
  """Replaces ``owner.name`` by a wrapper that raises ``RuntimeError("killed")`` at its n-th call.

  Every call first appends ``label(*args, **kwargs)`` to `calls` (a new list unless
  given, to share it with another wrapper), which is returned: the test reads which
  units ran, and which were read back instead.
  """
  real, calls, count = getattr(owner, name), [] if calls is None else calls, [0]

  def dies(*args, **kwargs):
    calls.append(label(*args, **kwargs))
    count[0] += 1
    if count[0] == n:
      raise RuntimeError("killed")
    return real(*args, **kwargs)

  monkeypatch.setattr(owner, name, dies)
  return calls
