"""Reading a hyperparameter search: :class:`SearchResult` and its figure.

:func:`optlab.tune.search.search` returns a :class:`SearchResult` (also importable
from ``optlab.tune.search``): the Optuna study with the best configuration, a
row per trial, a text table, the best-so-far curve and parameter importances.
:func:`plot_search` draws them. matplotlib is an optional extra (``pip install
optlab[figures]``); it is imported only when a figure is drawn, with the
non-interactive Agg backend.
"""

from __future__ import annotations

import dataclasses
import pathlib
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from optlab.optim.space import Choice, LogUniform, SearchSpace
from optlab.tune import _optuna

optuna = _optuna.require()

_TrialState = optuna.trial.TrialState
_PRIMITIVE = (type(None), bool, int, float, str)


@dataclasses.dataclass
class SearchResult:
  """The outcome of :func:`optlab.tune.search.search`: the study and its best configuration.

  Attributes:
    study: the ``optuna.Study`` (all trials, including other workers').
    direction: ``"minimize"`` or ``"maximize"``.
    best_config: the best completed configuration ({} if no trial completed).
    best_value: its objective value (nan if none).
    best_trial: its trial number (-1 if none).
    space: the :class:`SearchSpace` searched.
  """

  study: optuna.Study
  direction: str
  best_config: dict
  best_value: float
  best_trial: int
  space: SearchSpace = dataclasses.field(repr=False, default=None)

  def trials(self) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, each parameter (None if inactive), duration.

    ``n_intermediate`` counts the intermediate values the trial reported. A trial
    whose worker died, or that ran past ``search(trial_timeout=...)``, and whose
    configuration was run again is ``"abandoned"`` (stored as a failed trial; the
    re-run is another row). One given up for good is ``"fail"``.
    """
    rows = []
    for t in self.study.get_trials(deepcopy=False):
      config = _decode(self.space, t.params)
      duration = t.duration.total_seconds() if t.duration is not None else None
      state = t.state.name.lower()
      if "optlab_abandoned" in t.system_attrs and not t.system_attrs.get("optlab_no_rerun"):
        state = "abandoned"
      row = {"number": t.number, "state": state, "value": t.value}
      row.update({name: config.get(name) for name in self.space})
      row.update(duration_seconds=duration, n_intermediate=len(t.intermediate_values))
      rows.append(row)
    return rows

  def table(self, top: int | None = None) -> str:
    """An aligned text table of the trials, best value first (unfinished or failed last)."""
    sign = 1.0 if self.direction == "minimize" else -1.0
    rows = sorted(self.trials(), key=lambda r: (r["value"] is None, sign * (r["value"] or 0.0),
                                                r["number"]))
    if top is not None:
      rows = rows[:top]
    columns = ["number", "state", "value", *self.space, "duration_seconds"]
    cells = [[_format_cell(r[c]) for c in columns] for r in rows]
    headers = [c if c != "duration_seconds" else "seconds" for c in columns]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in cells]
    return "\n".join(lines)

  def best_so_far(self) -> np.ndarray:
    """The running best objective over completed trials, in trial order."""
    values = np.asarray([t.value for t in self.study.get_trials(
        deepcopy=False, states=(_TrialState.COMPLETE,))], dtype=np.float64)
    if values.size == 0:
      return values
    return (np.minimum if self.direction == "minimize" else np.maximum).accumulate(values)

  def importances(self) -> dict[str, float]:
    """Parameter importances (``optuna.importance.get_param_importances``), {} if not computable.

    They need at least two completed trials; conditional parameters (absent from
    some trials) are left out by Optuna. One parameter gets importance 1.
    """
    completed = self.study.get_trials(deepcopy=False, states=(_TrialState.COMPLETE,))
    if len(completed) < 2:
      return {}
    present = [name for name in self.space if all(name in t.params for t in completed)]
    if len(present) == 1:
      return {present[0]: 1.0}
    try:
      with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dict(optuna.importance.get_param_importances(self.study))
    except (ValueError, RuntimeError, ZeroDivisionError):
      return {}


class _Encoding:
  """Choice values as Optuna categorical values (None/bool/int/float/str), and back."""

  def __init__(self, dim: Choice):
    self.values = tuple(dim.values)
    if all(type(v) in _PRIMITIVE for v in self.values):
      self.encoded = self.values
    else:
      reprs = [repr(v) for v in self.values]
      self.encoded = tuple(reprs if len(set(reprs)) == len(reprs)
                           else [f"{i}:{r}" for i, r in enumerate(reprs)])

  def encode(self, value: Any) -> Any:
    return self.encoded[self.values.index(value)]

  def decode(self, encoded: Any) -> Any:
    return self.values[self.encoded.index(encoded)]


def _decode(space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
  config = {}
  for name in space:
    if name in params:
      dim = space.dimension(name)
      config[name] = _Encoding(dim).decode(params[name]) if isinstance(dim, Choice) \
          else params[name]
  return config


def plot_search(result: SearchResult, path: str | pathlib.Path | None = None, *,
                title: str | None = None) -> Any:
  """Draws a search in three panels: values per trial, best so far, parameter importances.

  The first panel shows each trial's objective (pruned trials at their last
  reported value, failed ones as ticks on the axis); the second the running
  best over completed trials; the third Optuna's parameter importances, or,
  when they cannot be computed (fewer than two completed trials), the
  objective against the parameter that took the most distinct values.

  Args:
    result: what :func:`~optlab.tune.search.search` returned.
    path: where to save the PNG (folders are created); None: do not save.
    title: the figure's title (default: the study's name and direction).

  Returns:
    The matplotlib ``Figure`` (closed once saved).
  """
  if not isinstance(result, SearchResult):
    raise TypeError(f"plot_search: result must be a SearchResult, got {type(result).__name__}")
  try:
    import matplotlib
  except ImportError as e:
    raise ImportError("plot_search needs matplotlib: pip install matplotlib") from e
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt

  rows = result.trials()
  fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8))
  _values_panel(axes[0], rows)
  _best_panel(axes[1], result, rows)
  importances = result.importances()
  if importances:
    _importance_panel(axes[2], importances)
  else:
    _slice_panel(axes[2], result, rows)
  fig.suptitle(title or f"{result.study.study_name} ({result.direction})")
  if path is not None:
    from optlab.studies import save_figure

    save_figure(fig, path, dpi=110)
  return fig


def _values_panel(ax: Any, rows: list[dict]) -> None:
  styles = {"complete": ("o", "tab:blue"), "pruned": ("v", "tab:orange")}
  for state, (marker, color) in styles.items():
    chosen = [r for r in rows if r["state"] == state and r["value"] is not None]
    if chosen:
      ax.plot([r["number"] for r in chosen], [r["value"] for r in chosen], marker, color=color,
              ms=4, ls="none", label=f"{state} ({len(chosen)})")
  failed = [r["number"] for r in rows if r["state"] == "fail"]
  if failed:
    ax.plot(failed, np.full(len(failed), 0.02), "x", color="tab:red", ls="none",
            transform=ax.get_xaxis_transform(), label=f"failed ({len(failed)})")
  _maybe_log_y(ax, [r["value"] for r in rows if r["value"] is not None])
  ax.set_xlabel("trial")
  ax.set_ylabel("objective")
  ax.set_title("objective per trial")
  if rows:
    ax.legend(fontsize=8)


def _best_panel(ax: Any, result: SearchResult, rows: list[dict]) -> None:
  numbers = [r["number"] for r in rows if r["state"] == "complete" and r["value"] is not None]
  best = result.best_so_far()
  if best.size:
    ax.step(numbers[:best.size], best, where="post", color="tab:green")
    ax.plot(numbers[:best.size], best, ".", color="tab:green", ms=3)
    _maybe_log_y(ax, best.tolist())
  ax.set_xlabel("trial")
  ax.set_ylabel(f"best objective ({'min' if result.direction == 'minimize' else 'max'})")
  ax.set_title("best so far")


def _importance_panel(ax: Any, importances: dict[str, float]) -> None:
  names = list(importances)[::-1]
  ax.barh(names, [importances[n] for n in names], color="tab:purple")
  ax.set_xlabel("importance")
  ax.set_title("parameter importances")


def _slice_panel(ax: Any, result: SearchResult, rows: list[dict]) -> None:
  done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
  numeric = [n for n in result.space
             if all(isinstance(r[n], (int, float)) or r[n] is None for r in done)]
  if not done or not numeric:
    ax.text(0.5, 0.5, "too few completed trials", ha="center", va="center",
            transform=ax.transAxes)
    ax.set_title("parameter slice")
    return
  name = max(numeric, key=lambda n: len({r[n] for r in done if r[n] is not None}))
  points = [(r[name], r["value"]) for r in done if r[name] is not None]
  ax.plot(*zip(*points, strict=True), "o", color="tab:blue", ms=4)
  if isinstance(result.space.dimension(name), LogUniform):
    ax.set_xscale("log")
  ax.set_xlabel(name)
  ax.set_ylabel("objective")
  ax.set_title(f"slice: {name}")


def _maybe_log_y(ax: Any, values: list[float]) -> None:
  finite = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
  if finite.size > 1 and finite.min() > 0 and finite.max() / finite.min() > 100:
    ax.set_yscale("log")


def _format_cell(value: Any) -> str:
  if value is None:
    return "-"
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)
