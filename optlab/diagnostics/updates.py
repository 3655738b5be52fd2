"""Per-layer update statistics: how far each optimizer step moves each parameter array.

For a step ``θ ← θ + Δθ`` with gradient ``g``, per parameter array ``l`` (named by
its path, as :mod:`optlab.train.paths` names parameters):

  ``update_ratio/<path>  = ‖Δθ_l‖ / ‖θ_l‖``   the relative step size,
  ``effective_lr/<path> = ‖Δθ_l‖ / ‖g_l‖``   the SGD learning rate with a step of that length.

For SGD the effective learning rate is the learning rate itself; for adaptive
methods it shows how the preconditioner rescales each layer, and the update ratio
shows which layers move fast (a ratio far above ~1e-3 in some layer is a classic
sign of a too-large learning rate there).

``optlab.train.fit(..., update_stats=True)`` computes these inside the compiled
step, averages them over each epoch's steps, and logs them in the history under
the keys above; :func:`layer_curves` and :func:`plot_update_statistics` read them
back. The computation lives in the training layer
(``optlab.train.steps.update_statistics``, re-exported here) because the fit loop
needs it and layers only import from the layers above them.

Reference:
  You, Gitman, Ginsburg, *Large Batch Training of Convolutional Networks* (LARS),
  2017 (arXiv:1708.03888).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from optlab.train.update_stats import (
    EFFECTIVE_LR,
    UPDATE_RATIO,
    update_statistic_names,
    update_statistics,
)

KINDS = (UPDATE_RATIO, EFFECTIVE_LR)


def _records(history: Sequence[dict[str, Any]] | Any) -> list[dict[str, Any]]:
  if isinstance(history, (str, Path)):
    from optlab.train.history import read_history

    return read_history(history)  # the file's last run, one record per epoch
  records = getattr(history, "history", history)  # a FitResult or its history
  return list(records)


def layer_curves(history: Any, kind: str = UPDATE_RATIO
                 ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """The logged update statistic of every layer: ``{path: (epochs, values)}``.

  Args:
    history: a ``FitResult``, its ``.history``, or a history JSONL path (its last
      run, read with ``optlab.train.history.read_history``).
    kind: ``"update_ratio"`` or ``"effective_lr"``.

  Returns:
    For each parameter path, the epochs and the epoch-averaged values (NaN where
    undefined or stored as null), in the order first logged.

  Raises:
    ValueError: unknown `kind`, or nothing of that kind was logged (fit ran
      without ``update_stats=True``).

  Example:
    >>> history = [{"epoch": 0, "update_ratio/w": 0.01}, {"epoch": 1, "update_ratio/w": 0.02}]
    >>> epochs, values = layer_curves(history)["w"]
    >>> epochs.tolist(), values.tolist()
    ([0, 1], [0.01, 0.02])
  """
  if kind not in KINDS:
    raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
  prefix = f"{kind}/"
  curves: dict[str, list[tuple[int, float]]] = {}
  for record in _records(history):
    for key, value in record.items():
      if key.startswith(prefix):
        curves.setdefault(key[len(prefix):], []).append(
            (record["epoch"], np.nan if value is None else float(value)))
  if not curves:
    raise ValueError(f"no {kind!r} statistics in the history: train with "
                     f"fit(..., update_stats=True)")
  return {path: (np.asarray([e for e, _ in points]), np.asarray([v for _, v in points]))
          for path, points in curves.items()}


def plot_update_statistics(history: Any, *, kind: str = UPDATE_RATIO, ax: Any = None,
                           log: bool = True, layers: Sequence[str] | None = None) -> Any:
  """Draws one line per layer of an update statistic against the epoch.

  Args:
    history: a ``FitResult``, its ``.history``, or a history JSONL path.
    kind: ``"update_ratio"`` or ``"effective_lr"``.
    ax: a matplotlib Axes (default: the current one).
    log: a logarithmic y axis.
    layers: the paths to draw (default: all).

  Returns:
    The Axes.
  """
  import matplotlib.pyplot as plt

  curves = layer_curves(history, kind)
  if layers is not None:
    missing = [p for p in layers if p not in curves]
    if missing:
      raise ValueError(f"layers: {missing} not logged; logged: {list(curves)}")
    curves = {p: curves[p] for p in layers}
  ax = plt.gca() if ax is None else ax
  for path, (epochs, values) in curves.items():
    ax.plot(epochs, values, label=path)
  if log:
    ax.set_yscale("log")
  ax.set_xlabel("epoch")
  ax.set_ylabel("‖Δθ‖ / ‖θ‖" if kind == UPDATE_RATIO else "‖Δθ‖ / ‖g‖")
  ax.legend(fontsize="small")
  return ax


__all__ = [
    "EFFECTIVE_LR",
    "UPDATE_RATIO",
    "layer_curves",
    "plot_update_statistics",
    "update_statistic_names",
    "update_statistics",
]
