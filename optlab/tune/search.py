"""Hyperparameter search over a :class:`SearchSpace`, on top of Optuna.

:func:`search` maps an optlab search space onto Optuna's define-by-run trials
and picks one of Optuna's samplers by name: exhaustive ``"grid"``, ``"random"``,
``"quasi_random"`` (scrambled Sobol or Halton), ``"tpe"`` (tree-structured
Parzen estimators) or ``"gp"`` (Gaussian-process Bayesian optimisation). Pruners
stop unpromising trials early from the intermediate values a trial reports
(:meth:`Trial.report`, or :class:`PruningCallback` inside ``optlab.train.fit``).
A study kept in a file (SQLite or an Optuna journal) resumes where it stopped
and is shared by several workers that together run exactly ``n_trials``; a
trial whose worker died, or that runs past ``trial_timeout``, runs again.
The worker loop is in ``optlab.tune._loop``, the study's storage and checks in
``optlab.tune._study``, worker records and heartbeats in ``optlab.tune._workers``.

Example:
  >>> from optlab.optim.space import LogUniform, Uniform
  >>> def objective(config, trial):
  ...   return (np.log10(config["lr"]) + 2) ** 2 + (config["momentum"] - 0.9) ** 2
  >>> result = search(objective, {"lr": LogUniform(1e-5, 1.0), "momentum": Uniform(0.0, 1.0)},
  ...                 strategy="grid", grid_points=6)
  >>> len(result.study.trials), round(result.best_config["lr"], 6)
  (36, 0.01)

References:
  Akiba et al., 2019, Optuna: A Next-generation Hyperparameter Optimization
  Framework (https://arxiv.org/abs/1907.10902); Bergstra & Bengio, 2012, Random
  Search for Hyper-Parameter Optimization (JMLR 13); Bergstra et al., 2011,
  Algorithms for Hyper-Parameter Optimization (NeurIPS, TPE).
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import os
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from optlab.optim.space import (
    Choice,
    Conditional,
    Dimension,
    IntUniform,
    LogUniform,
    SearchSpace,
    Uniform,
)
from optlab.train.callbacks import Callback
from optlab.tune import _loop, _optuna, _study
from optlab.tune.report import SearchResult, _decode, _Encoding

optuna = _optuna.require()

STRATEGIES = ("grid", "random", "quasi_random", "tpe", "gp")
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband")
_TrialState = optuna.trial.TrialState
# A running trial's worker writes a heartbeat this often; a worker on another host whose
# heartbeat is older than the grace period is taken for dead (hosts' clocks must agree).
HEARTBEAT_SECONDS = 30.0
HEARTBEAT_GRACE_SECONDS = 300.0
# A configuration whose workers died this many more times is not run again (it may be what
# kills them, e.g. by running out of memory): its last trial stays failed and counts.
MAX_RERUNS = 2
# A configuration whose trials passed their deadline (trial_timeout) this many more times is
# not run again (it may be what hangs): its last trial stays failed and counts.
MAX_TIMEOUT_RERUNS = 1


class Trial:
  """What the objective receives besides its configuration: reporting and pruning.

  Attributes:
    number: the trial's number in the study (unique across workers).
    config: the configuration being evaluated (the objective's first argument).
    optuna_trial: the underlying ``optuna.trial.Trial``, as an escape hatch.
  """

  def __init__(self, optuna_trial: optuna.trial.Trial, config: dict[str, Any]):
    self.optuna_trial = optuna_trial
    self.number = optuna_trial.number
    self.config = config

  def report(self, value: float, step: int) -> None:
    """Reports an intermediate value; raises ``optuna.TrialPruned`` if the pruner says stop."""
    value = float(value)
    self.optuna_trial.report(value, int(step))
    if self.optuna_trial.should_prune():
      raise optuna.TrialPruned(f"trial {self.number} pruned at step {step} (value {value:.4g})")

  def should_prune(self) -> bool:
    """Whether the pruner would stop this trial after the values reported so far."""
    return self.optuna_trial.should_prune()

  def __repr__(self) -> str:
    return f"Trial(number={self.number}, config={self.config!r})"


class PruningCallback(Callback):
  """Wires Optuna's pruner to the evaluations of ``optlab.train.fit``.

  At each evaluation it reports ``logs[monitor]`` with ``step=epoch`` and raises
  ``optuna.TrialPruned`` when the pruner says stop; ``fit`` does not catch it, so
  it ends the objective and :func:`search` records the trial as pruned.

  Args:
    trial: the :class:`Trial` the objective received.
    monitor: the logged quantity to report (``"val_loss"``, ``"val_accuracy"``, ...);
      the study's direction says whether lower or higher is better.

  Example:
    >>> def objective(config, trial):  # doctest: +SKIP
    ...   fit = train.fit(model, optax.adam(config["lr"]), (x, y), validation=(xv, yv),
    ...                   epochs=20, callbacks=[PruningCallback(trial)])
    ...   return fit.history[-1]["val_loss"]
    >>> search(objective, space, strategy="tpe", n_trials=50,
    ...        pruner="median")  # doctest: +SKIP
  """

  def __init__(self, trial: Trial, monitor: str = "val_loss"):
    if not isinstance(trial, Trial):
      raise TypeError(f"PruningCallback: trial must be an optlab.tune.search.Trial, got "
                      f"{type(trial).__name__}")
    self.trial = trial
    self.monitor = monitor

  def on_evaluation(self, epoch: int, logs: dict[str, float]) -> dict[str, Any]:
    if self.monitor not in logs:
      raise KeyError(f"PruningCallback: monitored quantity {self.monitor!r} is not logged; "
                     f"logged: {', '.join(sorted(logs))}")
    self.trial.report(logs[self.monitor], step=epoch)
    return {}


def search(
    objective: Callable[[dict[str, Any], Trial], float],
    space: SearchSpace | Mapping[str, Dimension | Conditional],
    *,
    strategy: str = "tpe",
    n_trials: int | None = None,
    direction: str = "minimize",
    seed: int = 0,
    storage: str | os.PathLike | optuna.storages.BaseStorage | None = None,
    study_name: str = "optlab",
    pruner: str | optuna.pruners.BasePruner | None = None,
    grid_points: int | Mapping[str, int] = 5,
    quasi_random: str = "sobol",
    timeout: float | None = None,
    trial_timeout: float | None = None,
    catch: tuple[type[BaseException], ...] = (),
    show_progress: bool = False,
) -> SearchResult:
  """Searches `space` for the configuration that minimizes (or maximizes) `objective`.

  Each trial draws a configuration (a value for every *active* dimension:
  LogUniform -> ``suggest_float(log=True)``, Uniform -> ``suggest_float``,
  IntUniform -> ``suggest_int``, Choice -> ``suggest_categorical``; a
  Conditional only when its parent takes an activating value) and records
  ``objective(config, trial)``. A non-finite value, or an exception listed in
  `catch`, marks the trial failed; other exceptions fail it and propagate.
  ``optuna.TrialPruned`` (from :meth:`Trial.report`) marks it pruned.

  Strategies (all Optuna samplers): ``"grid"`` every configuration of
  ``space.grid(grid_points)`` (``GridSampler`` on a flat space; on a conditional
  one a sampler over the space's own expansion, so branches are not
  duplicated), ``"random"`` (``RandomSampler``), ``"quasi_random"``
  (``QMCSampler``, scrambled Sobol or Halton), ``"tpe"`` (``TPESampler``,
  multivariate, grouped when the space is conditional), ``"gp"``
  (``GPSampler``; needs ``torch``).

  Sharing and resuming: with a file `storage` several processes may call
  ``search`` with the same arguments together; they finish exactly `n_trials`
  trials between them. Trial creation is serialised by a lock file next to the
  storage: a worker counts the study's trials (running or finished) and asks for
  a new one only while there are fewer than `n_trials`. (Optuna's
  ``MaxTrialsCallback`` checks only after a trial ends, so concurrent workers
  would overshoot.) Calling again with a larger `n_trials` adds only the missing
  trials; a worker that finds the study full returns at once (with
  `trial_timeout`, once no running trial has a deadline left). Grid trial ``k``
  evaluates grid point ``k`` of one seeded shuffle (the study's first seed), so
  two workers never evaluate the same point; Sobol points are numbered in the
  study too. Random, TPE and GP workers derive their seed from `seed` and the
  trial count when they start, so workers and resumed runs draw new
  configurations (a fresh single-process run uses `seed` itself). An Optuna RDB
  URL other than SQLite gets no lock and may overshoot by up to one trial per
  extra worker. A worker returns once no trial is left to start, while other
  workers may still be finishing theirs (the last one to return sees them all;
  with `trial_timeout`, see below).
  The lock file (``<storage>.optlab.lock``) stays beside the storage.

  Dead workers: each trial records its worker (host, pid, the process's start
  time and boot id, so that a reused pid is not mistaken for it) and, every
  :data:`HEARTBEAT_SECONDS`, a heartbeat. Before counting, a worker (or a
  resumed run) looks at the running trials: one whose worker is on this host
  and no longer alive, or on another host and silent for more than
  :data:`HEARTBEAT_GRACE_SECONDS`, is *abandoned*: marked failed, with the
  reason in the system attr ``optlab_abandoned`` and in the user attr
  ``optlab_fail_reason``, left out of the count (and, being failed, out of the
  best configuration), and its configuration runs again as the next trial
  (system attr ``optlab_rerun_of``; a grid re-run keeps its grid point, so the
  grid is still covered once). A killed search therefore ends, once resumed,
  with exactly `n_trials` trials that were not abandoned. A configuration
  abandoned :data:`MAX_RERUNS` + 1 times is not run again (it may be what kills
  its workers): its last trial stays failed and counts (system attr
  ``optlab_no_rerun``). With a lock, a running trial that records no worker
  (its worker died right after creating it, or an older optlab or plain Optuna
  started it) is abandoned too. Where a worker's liveness cannot be read (not
  POSIX), the heartbeat decides; a worker that was taken for dead but finishes
  after all gets a warning and its value is dropped.

  Hung workers: a worker whose objective hangs while its process lives (a
  deadlock, a stuck read; its heartbeat thread still beats) is not dead, so
  without `trial_timeout` its trial is never abandoned and the study never
  completes. With `trial_timeout`, the worker that claims a trial records its
  deadline in the worker record (``trial_timeout`` and ``deadline``, by its
  clock), and any worker that finds a running trial past its deadline abandons
  it as above, alive or not: the reason says it exceeded trial_timeout (system
  attr ``optlab_timed_out`` holds the seconds), and its configuration runs again
  once (a transient hang gets a second chance); a configuration past its
  deadline :data:`MAX_TIMEOUT_RERUNS` + 1 times may be what hangs: its last
  trial stays failed and counts, and it is not run again. The hung worker stops
  beating for a trial once it is past its deadline; if its objective ever
  returns, the outcome is dropped with a warning (the trial is failed already,
  the re-run counts) and the worker goes on. A trial that returns late but
  before any worker abandoned it keeps its result. A worker with
  `trial_timeout` that finds no trial left to start does not return while a
  running trial with a deadline remains: it looks again at that deadline (at
  least every second) and re-runs what it abandons, so the search it returns
  from is complete (unless `timeout` ends it first). What it cannot do: the hung
  computation is not interrupted in its own process (Python cannot stop a
  thread, nor JAX a running computation): that process keeps running, holding
  its memory and devices, until you kill it. Each hung attempt holds one worker,
  so a configuration that always hangs holds two. A lone worker that hangs
  leaves nobody to abandon its trial: start another worker, or kill it and
  resume. Set `trial_timeout` well above the slowest healthy trial (compilation
  included).

  Args:
    objective: ``objective(config, trial) -> float``.
    space: a :class:`SearchSpace` or a mapping of name -> dimension.
    strategy: one of :data:`STRATEGIES`.
    n_trials: finished trials the study should reach, across all workers and
      resumes. Grid: defaults to the grid's size; required otherwise.
    direction: ``"minimize"`` or ``"maximize"``.
    seed: seeds the sampler (and the grid's order).
    storage: None (in memory); a path ending in .db/.sqlite/.sqlite3 (SQLite)
      or .log/.jsonl/.journal (Optuna journal file); an Optuna RDB URL; or an
      Optuna storage object.
    study_name: the study's name within the storage.
    pruner: None/"none", "median", "percentile" (25th; both start after 5
      trials), "successive_halving", "hyperband", or an ``optuna.pruners.BasePruner``.
    grid_points: points per continuous/integer dimension for ``"grid"`` (one
      number, or ``{name: points}``; Choices contribute all their options).
    quasi_random: ``"sobol"`` or ``"halton"``.
    timeout: stop asking for new trials after this many seconds.
    trial_timeout: seconds a trial may run before any worker abandons it and runs
      its configuration again (see "Hung workers" above), or None (no limit).
      Needs a file or database `storage`, which other workers share.
    catch: exception types that fail a trial without stopping the search.
    show_progress: show a progress bar (needs tqdm).

  Returns:
    A :class:`SearchResult`.

  Raises:
    ValueError: a bad argument, or an existing study with another space or
      direction.
  """
  space, strategy, direction, n_trials, grid_configs = _validate(
      objective, space, strategy, direction, n_trials, seed, grid_points, quasi_random, timeout,
      trial_timeout, storage, catch)
  pruner = _make_pruner(pruner)
  resolved, lock_path = _study.resolve_storage(storage)
  encodings = {name: _Encoding(space.dimension(name)) for name in space
               if isinstance(space.dimension(name), Choice)}
  verbosity = optuna.logging.get_verbosity()
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  try:
    with _study.file_lock(lock_path):  # concurrent workers would race to create tables and study
      study = optuna.create_study(storage=resolved, study_name=study_name, direction=direction,
                                  load_if_exists=True, pruner=pruner,
                                  sampler=optuna.samplers.RandomSampler(seed=seed))
      study_seed = _study.check_study(study, space, strategy, direction, seed, grid_points)
    if strategy == "grid" and n_trials is None:
      n_trials = len(grid_configs)

    def make_sampler(count: int) -> optuna.samplers.BaseSampler:
      worker_seed = seed if count == 0 else int(
          np.random.SeedSequence([seed, count]).generate_state(1)[0])
      return _make_sampler(strategy, space, encodings, grid_configs, grid_points, study_seed,
                           worker_seed, quasi_random, shared=storage is not None)

    def evaluate(ot: optuna.trial.Trial) -> Any:
      config = _suggest(ot, space, encodings)
      return objective(dict(config), Trial(ot, config))

    # The module's constants are read here, when search runs, so that they can be changed.
    _loop.run(study, evaluate, n_trials, make_sampler, lock_path, timeout, catch, show_progress,
              trial_timeout=None if trial_timeout is None else float(trial_timeout),
              heartbeat_seconds=HEARTBEAT_SECONDS,
              grace_seconds=HEARTBEAT_GRACE_SECONDS, max_reruns=MAX_RERUNS,
              max_timeout_reruns=MAX_TIMEOUT_RERUNS)
  finally:
    optuna.logging.set_verbosity(verbosity)
  return _result(study, space, direction)


def _validate(objective, space, strategy, direction, n_trials, seed, grid_points, quasi_random,
              timeout, trial_timeout, storage, catch):
  if not callable(objective):
    raise TypeError(f"search: objective must be callable as objective(config, trial), got "
                    f"{type(objective).__name__}")
  if not isinstance(strategy, str) or strategy not in STRATEGIES:
    close = difflib.get_close_matches(str(strategy), STRATEGIES, n=2)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"search: unknown strategy {strategy!r}; accepted: "
                     f"{', '.join(STRATEGIES)}{hint}")
  if direction not in ("minimize", "maximize"):
    raise ValueError(f"search: direction must be 'minimize' or 'maximize', got {direction!r}")
  if n_trials is not None and (isinstance(n_trials, bool) or not isinstance(n_trials, int)
                               or n_trials < 1):
    raise ValueError(f"search: n_trials must be an integer ≥ 1, got {n_trials!r}")
  if n_trials is None and strategy != "grid":
    raise ValueError(f"search: strategy {strategy!r} needs n_trials (only 'grid' defaults it "
                     "to the size of the grid)")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"search: seed must be an integer ≥ 0, got {seed!r}")
  if quasi_random not in ("sobol", "halton"):
    raise ValueError(f"search: quasi_random must be 'sobol' or 'halton', got {quasi_random!r}")
  if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
    raise ValueError(f"search: timeout must be a number of seconds > 0 or None, got {timeout!r}")
  if trial_timeout is not None:
    if (isinstance(trial_timeout, bool) or not isinstance(trial_timeout, (int, float, np.number))
        or not math.isfinite(trial_timeout) or trial_timeout <= 0):
      raise ValueError(f"search: trial_timeout must be a finite number of seconds > 0 or None, "
                       f"got {trial_timeout!r}")
    if storage is None or isinstance(storage, optuna.storages.InMemoryStorage):
      raise ValueError("search: trial_timeout needs a file or database storage: a hung trial is "
                       "abandoned by another worker sharing the study, and an in-memory study "
                       f"has none (got storage={storage!r})")
  if not isinstance(catch, tuple) or not all(
      isinstance(c, type) and issubclass(c, BaseException) for c in catch):
    raise TypeError(f"search: catch must be a tuple of exception types, got {catch!r}")
  space = SearchSpace(space)
  grid_configs = space.grid(grid_points) if strategy == "grid" else None
  if strategy == "gp" and importlib.util.find_spec("torch") is None:
    raise ImportError("search: strategy 'gp' uses optuna.samplers.GPSampler, which needs PyTorch "
                      "(the CPU build is enough): pip install torch; or use strategy='tpe'")
  return space, strategy, direction, n_trials, grid_configs


def _make_pruner(pruner: Any) -> optuna.pruners.BasePruner:
  if isinstance(pruner, optuna.pruners.BasePruner):
    return pruner
  makers = {
      "none": optuna.pruners.NopPruner,
      "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5),
      "percentile": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=5),
      "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
      "hyperband": optuna.pruners.HyperbandPruner,
  }
  key = "none" if pruner is None else pruner
  if not isinstance(key, str) or key not in makers:
    raise ValueError(f"search: unknown pruner {pruner!r}; accepted: None, "
                     f"{', '.join(map(repr, PRUNERS))} or an optuna.pruners.BasePruner")
  return makers[key]()


def _suggest(ot: optuna.trial.Trial, space: SearchSpace, encodings: dict) -> dict[str, Any]:
  config: dict[str, Any] = {}
  for name in space:
    if not space.is_active(name, config):
      continue
    dim = space.dimension(name)
    if isinstance(dim, LogUniform):
      config[name] = ot.suggest_float(name, dim.low, dim.high, log=True)
    elif isinstance(dim, Uniform):
      config[name] = ot.suggest_float(name, dim.low, dim.high)
    elif isinstance(dim, IntUniform):
      config[name] = ot.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
    else:
      enc = encodings[name]
      config[name] = enc.decode(ot.suggest_categorical(name, enc.encoded))
  return config


class _NoStopGridSampler(optuna.samplers.GridSampler):
  """Optuna's GridSampler without its ``study.stop()`` (search's own loop stops on the count)."""

  def after_trial(self, study, trial, state, values) -> None:
    del study, trial, state, values


class _ExpandedGridSampler(optuna.samplers.BaseSampler):
  """Trial ``k`` evaluates configuration ``order[k]`` of a conditional space's grid expansion.

  Trial numbers are handed out atomically by the storage, so concurrent workers
  never evaluate the same configuration (as Optuna's GridSampler does for flat
  grids). Trials beyond the grid's size take a point no trial has taken (an
  abandoned trial's point belongs to its re-run), then an unfinished one, then any.
  """

  def __init__(self, params: list[dict[str, Any]], seed: int):
    self._params = params
    self._order = np.random.default_rng(seed).permutation(len(params))
    self._rng = np.random.default_rng(seed + 1)

  def infer_relative_search_space(self, study, trial):
    del study, trial
    return {}

  def sample_relative(self, study, trial, search_space):
    del study, trial, search_space
    return {}

  def before_trial(self, study, trial) -> None:
    if "optlab_grid_id" in trial.system_attrs:
      return
    if trial.number < len(self._params):
      grid_id = int(self._order[trial.number])
    else:
      trials = [t for t in study.get_trials(deepcopy=False) if not _loop.is_abandoned(t)]
      taken = {t.system_attrs.get("optlab_grid_id") for t in trials}
      done = {t.system_attrs.get("optlab_grid_id") for t in trials if t.state.is_finished()}
      every = range(len(self._params))
      left = ([i for i in every if i not in taken] or [i for i in every if i not in done]
              or list(every))
      grid_id = int(self._rng.choice(left))
    study._storage.set_trial_system_attr(trial._trial_id, "optlab_grid_id", grid_id)

  def sample_independent(self, study, trial, param_name, param_distribution):
    del study, param_distribution
    params = self._params[trial.system_attrs["optlab_grid_id"]]
    if param_name not in params:
      raise ValueError(f"grid: parameter {param_name!r} is inactive at this grid point {params}")
    return params[param_name]


def _make_sampler(strategy, space, encodings, grid_configs, grid_points, study_seed, worker_seed,
                  quasi_random, shared) -> optuna.samplers.BaseSampler:
  conditional = any(isinstance(space[name], Conditional) for name in space)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    if strategy == "grid":
      if conditional:
        params = [{k: encodings[k].encode(v) if k in encodings else v for k, v in c.items()}
                  for c in grid_configs]
        return _ExpandedGridSampler(params, study_seed)
      counts = grid_points if isinstance(grid_points, Mapping) else dict.fromkeys(space,
                                                                                  grid_points)
      axes = {name: [encodings[name].encode(v) for v in space.dimension(name).grid()]
              if name in encodings else space.dimension(name).grid(counts.get(name, 5))
              for name in space}
      return _NoStopGridSampler(axes, seed=study_seed)
    if strategy == "random":
      return optuna.samplers.RandomSampler(seed=worker_seed)
    if strategy == "quasi_random":
      return optuna.samplers.QMCSampler(qmc_type=quasi_random, scramble=True, seed=study_seed,
                                        warn_independent_sampling=False)
    if strategy == "tpe":
      return optuna.samplers.TPESampler(seed=worker_seed, multivariate=True, group=conditional,
                                        constant_liar=shared)
    return optuna.samplers.GPSampler(seed=worker_seed, warn_independent_sampling=False)


def _result(study: optuna.Study, space: SearchSpace, direction: str) -> SearchResult:
  completed = study.get_trials(deepcopy=False, states=(_TrialState.COMPLETE,))
  completed = [t for t in completed if t.value is not None and math.isfinite(t.value)]
  if not completed:
    return SearchResult(study, direction, {}, math.nan, -1, space)
  pick = min if direction == "minimize" else max
  best = pick(completed, key=lambda t: t.value)
  return SearchResult(study, direction, _decode(space, best.params), float(best.value),
                      best.number, space)
