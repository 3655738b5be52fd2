"""Time-to-target, performance profiles and rank tables: how optimizers are compared.

A *target* is a value of one metric (a validation loss, an accuracy) that a run must
reach. ``steps_to_target`` reads a curve, ``time_to_target`` a ``fit`` history
(steps, epoch and seconds, compile time excluded and reported apart), and
``performance_profile`` turns the times of several submissions on several workloads
into Dolan & Moré (2002) performance profiles and the AlgoPerf benchmark score
(Dahl et al. 2023). ``rank_table`` and ``format_table`` make the per-workload ranks.

Two rules say when a curve has reached the target:

* ``"first"``: the first point at or past the target (what AlgoPerf uses: a run
  stops the clock the first time its validation metric hits the target);
* ``"stay"``: the first point from which the curve stays at or past the target to
  the end of the curve, so that a method that swings through the target (momentum
  overshooting a minimum) is not credited with the crossing.

"At or past" is ``value <= target`` for ``mode="min"`` (losses) and
``value >= target`` for ``mode="max"`` (accuracies). NaN never reaches a target.

References:
  Dolan & Moré, "Benchmarking optimization software with performance profiles",
  Mathematical Programming 91 (2002). Dahl et al., "Benchmarking Neural Network
  Training Algorithms" (AlgoPerf), arXiv:2306.07179 (2023).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

RULES = ("first", "stay")
MODES = ("min", "max")


# ----------------------------------------------------------------------------------
# Time-to-target.


def _check_rule_mode(rule: str, mode: str, caller: str) -> None:
  if rule not in RULES:
    raise ValueError(f"{caller}: rule must be one of {RULES}, got {rule!r}")
  if mode not in MODES:
    raise ValueError(f"{caller}: mode must be one of {MODES}, got {mode!r}")


def _hit_index(values: np.ndarray, target: float, mode: str, rule: str) -> int | None:
  """The index at which `values` reaches `target` under `rule`, or None."""
  with np.errstate(invalid="ignore"):
    reached = values <= target if mode == "min" else values >= target  # NaN -> False
  if rule == "first":
    hit = np.flatnonzero(reached)
    return int(hit[0]) if hit.size else None
  missed = np.flatnonzero(~reached)
  if missed.size == 0:
    return 0
  k = int(missed[-1]) + 1
  return k if k < len(values) else None


def steps_to_target(
    values: Sequence[float] | np.ndarray,
    target: float,
    *,
    steps: Sequence[int] | np.ndarray | None = None,
    mode: str = "min",
    rule: str = "first",
) -> int | None:
  """The step at which a curve reaches `target`, or None if it never does.

  With ``mode="min"`` a value reaches the target when ``value <= target``; with
  ``mode="max"`` when ``value >= target``; NaN never does. ``rule="first"`` returns
  the step of the first value that reaches it; ``rule="stay"`` the step of the first
  value from which every later value reaches it too (None if the last one does not).

  Args:
    values: the curve, one value per recorded point (1-D).
    target: the value to reach.
    steps: the step of each value (same length); default ``0, 1, 2, ...``.
    mode: ``"min"`` (lower is better, losses) or ``"max"`` (accuracies).
    rule: ``"first"`` or ``"stay"``.

  Returns:
    ``steps[k]`` for the hit index k, as an int, or None.

  Example:
    >>> steps_to_target([1.0, 0.4, 0.6, 0.3], 0.5)
    1
    >>> steps_to_target([1.0, 0.4, 0.6, 0.3], 0.5, rule="stay", steps=[0, 10, 20, 30])
    30
  """
  _check_rule_mode(rule, mode, "steps_to_target")
  curve = np.asarray(values)
  if curve.dtype.kind != "f":  # float arrays keep their dtype: a float32 curve compares in float32
    curve = curve.astype(np.float64)
  if curve.ndim != 1:
    raise ValueError(f"steps_to_target: values must be 1-D, got shape {curve.shape}")
  if curve.size == 0:
    raise ValueError("steps_to_target: values is empty")
  if isinstance(target, bool) or not isinstance(target, (int, float, np.number)):
    raise TypeError(f"steps_to_target: target must be a number, got {type(target).__name__}")
  if math.isnan(float(target)):
    raise ValueError("steps_to_target: target is NaN")
  if steps is not None:
    steps = np.asarray(steps)
    if steps.shape != curve.shape:
      raise ValueError(f"steps_to_target: steps has shape {steps.shape} but values has "
                       f"{curve.shape}; give one step per value")
  k = _hit_index(curve, target, mode, rule)
  if k is None:
    return None
  return k if steps is None else int(steps[k])


class TimeToTarget(NamedTuple):
  """When a training run reached its target.

  Attributes:
    steps: optimizer steps at the evaluation that reached it (None if never).
    seconds: training seconds up to and including that evaluation's epoch, the sum of
      the history's ``epoch_seconds`` (each epoch's training and evaluation time);
      compilation is excluded (None if never, or if the history has no times).
    epoch: the epoch of that evaluation (None if never).
    reached: whether the target was reached.
    compile_seconds: the run's compile time, reported apart (None if unknown).
  """

  steps: int | None
  seconds: float | None
  epoch: int | None
  reached: bool
  compile_seconds: float | None


def _resolve_mode(metric: str, mode: str) -> str:
  if mode in MODES:
    return mode
  if mode != "auto":
    raise ValueError(f"time_to_target: mode must be 'auto', 'min' or 'max', got {mode!r}")
  from optlab import metrics

  name = metric.split("_", 1)[1] if metric.startswith(("val_", "test_", "train_")) else metric
  if name == "loss" or name.endswith("_loss"):
    return "min"
  try:
    return "max" if metrics.greater_is_better(name) else "min"
  except ValueError:
    raise ValueError(f"time_to_target: mode='auto' cannot tell whether {metric!r} should go "
                     "up or down (not an optlab.metrics name); pass mode='min' or "
                     "mode='max'") from None


def time_to_target(
    history: Any,
    metric: str,
    target: float,
    *,
    mode: str = "auto",
    rule: str = "first",
) -> TimeToTarget:
  """Steps, epoch and seconds until a ``fit`` run's `metric` reaches `target`.

  Reads the evaluations of a run (``FitResult.history``, or a list of such dicts
  with ``"step"``, ``"epoch"``, optionally ``"epoch_seconds"``, and the metric) and
  applies :func:`steps_to_target` to them. The seconds are the cumulative
  ``epoch_seconds`` up to the hit; ``fit`` keeps compilation out of those and
  reports it as ``compile_seconds``, which is returned apart. With
  ``fit(..., eval_every=k > 1)`` only evaluated epochs carry a time, so the seconds
  then count those epochs only; use ``eval_every=1`` to time a run.

  Args:
    history: an ``optlab.train.FitResult`` or a list of history dicts.
    metric: a logged key, e.g. ``"val_loss"`` or ``"val_accuracy"``.
    target: the value to reach.
    mode: ``"min"``, ``"max"`` or ``"auto"`` (from ``optlab.metrics.greater_is_better``
      after stripping a ``val_``/``test_``/``train_`` prefix; losses go down).
    rule: ``"first"`` or ``"stay"`` (see :func:`steps_to_target`).

  Returns:
    A :class:`TimeToTarget`.

  Example:
    >>> history = [{"epoch": 0, "step": 10, "epoch_seconds": 0.5, "val_loss": 0.9},
    ...            {"epoch": 1, "step": 20, "epoch_seconds": 0.5, "val_loss": 0.4}]
    >>> time_to_target(history, "val_loss", 0.5)
    TimeToTarget(steps=20, seconds=1.0, epoch=1, reached=True, compile_seconds=None)
  """
  compile_seconds = None
  if hasattr(history, "history") and hasattr(history, "compile_seconds"):
    compile_seconds = float(history.compile_seconds)
    entries = history.history
  elif isinstance(history, Sequence) and not isinstance(history, (str, bytes)):
    entries = history
  else:
    raise TypeError("time_to_target: history must be an optlab.train.FitResult or a list of "
                    f"history dicts, got {type(history).__name__}")
  if not entries:
    raise ValueError("time_to_target: the history is empty (no evaluation was logged)")
  if not all(isinstance(e, Mapping) for e in entries):
    raise TypeError("time_to_target: every history entry must be a dict")
  mode = _resolve_mode(metric, mode)
  _check_rule_mode(rule, mode, "time_to_target")
  logged = [e for e in entries if metric in e]
  if not logged:
    raise ValueError(f"time_to_target: metric {metric!r} was never logged; logged: "
                     f"{sorted(entries[-1])}")
  for name in ("step", "epoch"):
    if any(name not in e for e in logged):
      raise ValueError(f"time_to_target: a history entry has no {name!r}")
  values = np.array([np.nan if e[metric] is None else e[metric] for e in logged], np.float64)
  k = _hit_index(values, float(target), mode, rule)
  if k is None:
    return TimeToTarget(None, None, None, False, compile_seconds)
  hit = logged[k]
  # Seconds run over every entry up to the hit, including entries without the metric.
  upto = entries[: next(i for i, e in enumerate(entries) if e is hit) + 1]
  times = [e.get("epoch_seconds") for e in upto]
  seconds = None if any(t is None for t in times) else float(sum(times))
  return TimeToTarget(int(hit["step"]), seconds, int(hit["epoch"]), True, compile_seconds)


# ----------------------------------------------------------------------------------
# Performance profiles.


@dataclasses.dataclass(frozen=True)
class Profile:
  """Performance profiles of several submissions over several workloads.

  Attributes:
    submissions: the submission names, in input order.
    workloads: the workloads kept (solved by at least one submission).
    ratios: ``ratios[s][w]`` = t_{s,w} / min_s' t_{s',w} (inf if s never reached it).
    taus: the τ grid, from 1 to `max_tau`, including every finite ratio in range.
    rho: ``rho[s]`` = ρ_s(τ) on `taus`, the fraction of workloads with ratio ≤ τ.
    scores: the AlgoPerf benchmark score of each submission, in [0, 1].
    max_tau: the upper end of the profile (AlgoPerf: 4).
    dropped: workloads that no submission solved (left out of everything above).
  """

  submissions: tuple[str, ...]
  workloads: tuple[str, ...]
  ratios: dict[str, dict[str, float]]
  taus: np.ndarray
  rho: dict[str, np.ndarray]
  scores: dict[str, float]
  max_tau: float
  dropped: tuple[str, ...] = ()

  def to_dict(self) -> dict[str, Any]:
    """Plain JSON types (inf ratios become None through ``optlab.results``)."""
    return {"submissions": list(self.submissions), "workloads": list(self.workloads),
            "ratios": self.ratios, "taus": self.taus.tolist(),
            "rho": {s: r.tolist() for s, r in self.rho.items()}, "scores": self.scores,
            "max_tau": self.max_tau, "dropped": list(self.dropped)}


def _time(value: Any, where: str) -> float:
  if value is None:
    return math.inf
  if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
    raise TypeError(f"performance_profile: {where} must be a number or None, got "
                    f"{type(value).__name__}")
  value = float(value)
  if math.isnan(value):
    return math.inf
  if value <= 0:
    raise ValueError(f"performance_profile: {where} = {value} but times must be > 0 "
                     "(count steps from 1, or use None/inf for 'never reached')")
  return value


def performance_profile(
    times: Mapping[str, Mapping[str, float | None]],
    taus: Sequence[float] | np.ndarray | None = None,
    *,
    max_tau: float = 4.0,
) -> Profile:
  """Dolan & Moré performance profiles and the AlgoPerf benchmark score.

  For submission s and workload w with time-to-target t_{s,w} (inf or None when
  never reached; NaN counts as never), the performance ratio is
  r_{s,w} = t_{s,w} / min_{s'} t_{s',w}, and the profile is
  ρ_s(τ) = |{w : r_{s,w} ≤ τ}| / |W|, a step function of τ ≥ 1. The benchmark
  score is the normalized area under it, B_s = ∫_1^{τ_max} ρ_s(τ) dτ / (τ_max − 1),
  computed exactly: mean_w max(0, τ_max − r_{s,w}) / (τ_max − 1). A ratio above
  τ_max scores like a miss (AlgoPerf). Workloads that no submission solved are
  dropped with a warning.

  Args:
    times: ``times[submission][workload]``, every submission on the same workloads.
    taus: where to evaluate ρ (each ≥ 1); default a grid over [1, max_tau] that
      includes every finite ratio, so a step plot is exact.
    max_tau: the upper end of the profile and of the score's integral (> 1).

  Returns:
    A :class:`Profile`.

  Example:
    >>> p = performance_profile({"a": {"w1": 1.0, "w2": 4.0}, "b": {"w1": 2.0, "w2": 2.0}})
    >>> p.ratios["a"], round(p.scores["b"], 4)  # b: ratios 2 and 1 -> (2 + 3) / 2 / 3
    ({'w1': 1.0, 'w2': 2.0}, 0.8333)
  """
  if not isinstance(times, Mapping) or not times:
    raise ValueError("performance_profile: times must be a non-empty mapping "
                     "{submission: {workload: time}}")
  if not (isinstance(max_tau, (int, float)) and max_tau > 1):
    raise ValueError(f"performance_profile: max_tau must be > 1, got {max_tau!r}")
  submissions = tuple(times)
  first = times[submissions[0]]
  if not isinstance(first, Mapping) or not first:
    raise ValueError(f"performance_profile: submission {submissions[0]!r} has no workloads")
  workloads = tuple(first)
  for s in submissions:
    row = times[s]
    if not isinstance(row, Mapping) or set(row) != set(workloads):
      got = sorted(row) if isinstance(row, Mapping) else type(row).__name__
      raise ValueError(f"performance_profile: submission {s!r} has workloads {got} but "
                       f"{submissions[0]!r} has {sorted(workloads)}; every submission must "
                       "report every workload (None for never reached)")
  t = {s: {w: _time(times[s][w], f"times[{s!r}][{w!r}]") for w in workloads}
       for s in submissions}
  best = {w: min(t[s][w] for s in submissions) for w in workloads}
  dropped = tuple(w for w in workloads if math.isinf(best[w]))
  if dropped:
    warnings.warn(f"performance_profile: no submission reached the target on {list(dropped)};"
                  " those workloads are left out", stacklevel=2)
  kept = tuple(w for w in workloads if w not in dropped)
  if not kept:
    raise ValueError("performance_profile: no submission reached the target on any workload")
  ratios = {s: {w: t[s][w] / best[w] for w in kept} for s in submissions}
  if taus is None:
    finite = [r for row in ratios.values() for r in row.values() if r <= max_tau]
    grid = np.unique(np.concatenate([np.linspace(1.0, max_tau, 301), finite]))
  else:
    grid = np.asarray(taus, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0 or np.any(~np.isfinite(grid)) or np.any(grid < 1):
      raise ValueError(f"performance_profile: taus must be a non-empty 1-D list of finite "
                       f"values ≥ 1, got {taus!r}")
  rho, scores = {}, {}
  for s in submissions:
    r = np.array([ratios[s][w] for w in kept])
    rho[s] = (r[None, :] <= grid[:, None]).mean(axis=1)
    scores[s] = float(np.mean(np.maximum(0.0, max_tau - r)) / (max_tau - 1))
  return Profile(submissions, kept, ratios, grid, rho, scores, float(max_tau), dropped)


def plot_performance_profiles(
    profile: Profile,
    path: str | None = None,
    ax: Any = None,
    *,
    log2: bool = False,
    title: str | None = "Performance profiles",
) -> Any:
  """Draws ρ_s(τ) as step functions, one line per submission (score in the legend).

  Args:
    profile: from :func:`performance_profile`.
    path: if given, save the figure there (and close it).
    ax: a matplotlib Axes to draw into (default: a new figure).
    log2: a base-2 logarithmic τ axis.
    title: the axes' title (None for none).

  Returns:
    The Axes.
  """
  import matplotlib.pyplot as plt

  if ax is None:
    _, ax = plt.subplots(figsize=(5, 3.5))
  order = sorted(profile.submissions, key=lambda s: -profile.scores[s])
  styles = ["-", "--", "-.", ":"]
  for i, s in enumerate(order):
    ax.step(profile.taus, profile.rho[s], where="post", linestyle=styles[i // 10 % 4],
            label=f"{s} ({profile.scores[s]:.2f})")
  if log2:
    ax.set_xscale("log", base=2)
  ax.set_xlim(1.0, profile.max_tau)
  ax.set_ylim(-0.02, 1.02)
  ax.set_xlabel("τ (time / best time)")
  ax.set_ylabel("fraction of workloads with ratio ≤ τ")
  if title:
    ax.set_title(title)
  ax.grid(alpha=0.3)
  ax.legend(fontsize="small", title="submission (score)", title_fontsize="small")
  if path is not None:
    fig = ax.figure
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
  return ax


# ----------------------------------------------------------------------------------
# Rank tables.


def rank_table(
    values: Mapping[str, Mapping[str, float | None]],
    *,
    lower_is_better: bool = True,
) -> list[dict[str, Any]]:
  """Per-workload ranks of each submission and their mean, best mean rank first.

  Rank 1 is the best value on a workload; ties share the average of their ranks;
  None, NaN and the wrong-way infinity (a target never reached) rank last, tied.

  Args:
    values: ``values[submission][workload]``: times-to-target, or final metrics.
    lower_is_better: False for scores such as accuracy.

  Returns:
    One dict per submission: ``{"submission": s, <workload>: rank, ...,
    "mean_rank": m}``, sorted by mean rank (then name).

  Example:
    >>> table = rank_table({"a": {"w": 1.0, "v": None}, "b": {"w": 2.0, "v": 3.0},
    ...                     "c": {"w": 2.0, "v": 1.0}})
    >>> table[0]
    {'submission': 'c', 'w': 2.5, 'v': 1.0, 'mean_rank': 1.75}
  """
  from scipy.stats import rankdata

  if not isinstance(values, Mapping) or not values:
    raise ValueError("rank_table: values must be a non-empty mapping "
                     "{submission: {workload: value}}")
  submissions = list(values)
  workloads = list(values[submissions[0]])
  if not workloads:
    raise ValueError(f"rank_table: submission {submissions[0]!r} has no workloads")
  for s in submissions:
    if not isinstance(values[s], Mapping) or set(values[s]) != set(workloads):
      raise ValueError(f"rank_table: submission {s!r} has workloads {sorted(values[s])} but "
                       f"{submissions[0]!r} has {sorted(workloads)}")
  worst = math.inf if lower_is_better else -math.inf
  ranks = {s: {} for s in submissions}
  for w in workloads:
    column = []
    for s in submissions:
      v = values[s][w]
      v = worst if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
      column.append(v if lower_is_better else -v)
    for s, r in zip(submissions, rankdata(column, method="average"), strict=True):
      ranks[s][w] = float(r)
  rows = [{"submission": s, **ranks[s], "mean_rank": float(np.mean(list(ranks[s].values())))}
          for s in submissions]
  return sorted(rows, key=lambda row: (row["mean_rank"], row["submission"]))


def format_table(rows: Sequence[Mapping[str, Any]], *, precision: int = 3) -> str:
  """Aligned plain text of a list of flat dicts (columns from the first row's keys).

  Floats print with `precision` significant digits, None as ``-``; text columns
  align left and numbers right.

  Example:
    >>> print(format_table([{"name": "adam", "rank": 1.5}, {"name": "sgd", "rank": 2.0}]))
    name  rank
    adam   1.5
    sgd      2
  """
  if not rows:
    raise ValueError("format_table: rows is empty")
  columns = list(rows[0])

  def cell(v: Any) -> str:
    if v is None:
      return "-"
    if isinstance(v, (float, np.floating)):
      return f"{float(v):.{precision}g}"
    return str(v)

  cells = [[cell(row.get(c)) for c in columns] for row in rows]
  numeric = [all(isinstance(row.get(c), (int, float, np.number)) or row.get(c) is None
                 for row in rows) for c in columns]
  widths = [max(len(str(c)), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]

  def line(items: Sequence[str]) -> str:
    parts = [s.rjust(w) if num else s.ljust(w)
             for s, w, num in zip(items, widths, numeric, strict=True)]
    return "  ".join(parts).rstrip()

  return "\n".join([line([str(c) for c in columns]), *(line(r) for r in cells)])
