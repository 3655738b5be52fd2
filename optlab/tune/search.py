"""Hyperparameter search over a :class:`SearchSpace`, on top of Optuna.

:func:`search` maps an optlab search space onto Optuna's define-by-run trials
and picks one of Optuna's samplers by name: exhaustive ``"grid"``, ``"random"``,
``"quasi_random"`` (scrambled Sobol or Halton), ``"tpe"`` (tree-structured
Parzen estimators) or ``"gp"`` (Gaussian-process Bayesian optimisation). Pruners
stop unpromising trials early from the intermediate values a trial reports
(:meth:`Trial.report`, or :class:`PruningCallback` inside ``optlab.train.fit``).
A study kept in a file (SQLite or an Optuna journal) resumes where it stopped
and is shared by several workers that together run exactly ``n_trials``.

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

import contextlib
import difflib
import importlib.util
import math
import os
import pathlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
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
from optlab.tune import _optuna, _workers
from optlab.tune.report import SearchResult, _decode, _Encoding

optuna = _optuna.require()

STRATEGIES = ("grid", "random", "quasi_random", "tpe", "gp")
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_JOURNAL_SUFFIXES = (".log", ".jsonl", ".journal")
_TrialState = optuna.trial.TrialState
_COUNTED = (_TrialState.COMPLETE, _TrialState.PRUNED, _TrialState.FAIL, _TrialState.RUNNING)
# A running trial's worker writes a heartbeat this often; a worker on another host whose
# heartbeat is older than the grace period is taken for dead (hosts' clocks must agree).
HEARTBEAT_SECONDS = 30.0
HEARTBEAT_GRACE_SECONDS = 300.0
# A configuration whose workers died this many more times is not run again (it may be what
# kills them, e.g. by running out of memory): its last trial stays failed and counts.
MAX_RERUNS = 2
_ABANDONED = "optlab_abandoned"  # trial system attrs: why it was abandoned, whether it is given
_NO_RERUN = "optlab_no_rerun"  # up, and which abandoned trial a re-run repeats (worker and
_RERUN_OF = "optlab_rerun_of"  # heartbeat: optlab.tune._workers)
_GRID_ATTRS = ("grid_id", "search_space", "optlab_grid_id")  # a re-run keeps its grid point


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
  trials; a worker that finds the study full returns at once. Grid trial ``k``
  evaluates grid point ``k`` of one seeded shuffle (the study's first seed), so
  two workers never evaluate the same point; Sobol points are numbered in the
  study too. Random, TPE and GP workers derive their seed from `seed` and the
  trial count when they start, so workers and resumed runs draw new
  configurations (a fresh single-process run uses `seed` itself). An Optuna RDB
  URL other than SQLite gets no lock and may overshoot by up to one trial per
  extra worker. A worker returns once no trial is left to start, while other
  workers may still be finishing theirs (the last one to return sees them all).
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
  after all gets a warning and its value is dropped. A worker that hangs but
  lives on this host is never abandoned.

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
      catch)
  pruner = _make_pruner(pruner)
  resolved, lock_path = _resolve_storage(storage)
  encodings = {name: _Encoding(space.dimension(name)) for name in space
               if isinstance(space.dimension(name), Choice)}
  verbosity = optuna.logging.get_verbosity()
  optuna.logging.set_verbosity(optuna.logging.WARNING)
  try:
    with _file_lock(lock_path):  # concurrent workers would race to create the tables and study
      study = optuna.create_study(storage=resolved, study_name=study_name, direction=direction,
                                  load_if_exists=True, pruner=pruner,
                                  sampler=optuna.samplers.RandomSampler(seed=seed))
      study_seed = _check_study(study, space, strategy, direction, seed, grid_points)
    if strategy == "grid" and n_trials is None:
      n_trials = len(grid_configs)

    def make_sampler(count: int) -> optuna.samplers.BaseSampler:
      worker_seed = seed if count == 0 else int(
          np.random.SeedSequence([seed, count]).generate_state(1)[0])
      return _make_sampler(strategy, space, encodings, grid_configs, grid_points, study_seed,
                           worker_seed, quasi_random, shared=storage is not None)

    _run(study, objective, space, encodings, n_trials, make_sampler, lock_path, timeout, catch,
         show_progress)
  finally:
    optuna.logging.set_verbosity(verbosity)
  return _result(study, space, direction)


def _validate(objective, space, strategy, direction, n_trials, seed, grid_points, quasi_random,
              timeout, catch):
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


def _resolve_storage(storage: Any) -> tuple[Any, pathlib.Path | None]:
  """Optuna storage (or URL) for `storage`, and the lock file that serialises trial creation."""
  if storage is None or isinstance(storage, optuna.storages.BaseStorage):
    return storage, None
  if isinstance(storage, str) and "://" in storage:
    if storage.startswith("sqlite:///") and storage != "sqlite:///:memory:":
      path = pathlib.Path(storage[len("sqlite:///"):])
      _check_directory(path, storage)
      return storage, path.with_name(path.name + ".optlab.lock")
    return storage, None
  if not isinstance(storage, (str, os.PathLike)):
    raise TypeError(f"search: storage must be None, a path, an Optuna URL or an Optuna storage, "
                    f"got {type(storage).__name__}")
  path = pathlib.Path(storage).expanduser().absolute()
  suffix = path.suffix.lower()
  if suffix not in _SQLITE_SUFFIXES + _JOURNAL_SUFFIXES:
    raise ValueError(f"search: storage path {str(storage)!r} must end in "
                     f"{'/'.join(_SQLITE_SUFFIXES)} (SQLite) or {'/'.join(_JOURNAL_SUFFIXES)} "
                     "(Optuna journal file), or be a URL such as 'sqlite:///study.db'")
  _check_directory(path, storage)
  lock = path.with_name(path.name + ".optlab.lock")
  if suffix in _SQLITE_SUFFIXES:
    return f"sqlite:///{path}", lock
  from optuna.storages.journal import JournalFileBackend

  return optuna.storages.JournalStorage(JournalFileBackend(str(path))), lock


def _check_directory(path: pathlib.Path, storage: Any) -> None:
  directory = path.parent
  if not directory.is_dir():
    raise ValueError(f"search: storage {str(storage)!r}: the directory {str(directory)!r} does "
                     "not exist; create it first")
  if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
    raise ValueError(f"search: storage {str(storage)!r} is not writable")


def _fingerprint(space: SearchSpace) -> str:
  return "; ".join(f"{name}: {space[name]!r}" for name in space)


def _check_study(study, space, strategy, direction, seed, grid_points) -> int:
  """Records this search's settings on a new study, or checks them against an existing one.

  Returns the study's first seed (the grid order and Sobol scrambling use it).
  """
  attrs = study.user_attrs
  existing = study.direction.name.lower()
  if existing != direction:
    raise ValueError(f"search: study {study.study_name!r} exists with direction {existing!r}; "
                     f"this search asks for {direction!r}. Use another study_name.")
  if "optlab_space" not in attrs:
    study.set_user_attr("optlab_space", _fingerprint(space))
    study.set_user_attr("optlab_strategy", strategy)
    study.set_user_attr("optlab_direction", direction)
    study.set_user_attr("optlab_seed", int(seed))
    if strategy == "grid":
      study.set_user_attr("optlab_grid_points", repr(grid_points))
    attrs = study.user_attrs
  if attrs["optlab_space"] != _fingerprint(space):
    raise ValueError(f"search: study {study.study_name!r} was searched over a different space;\n"
                     f"  stored:    {attrs['optlab_space']}\n  requested: {_fingerprint(space)}\n"
                     "Use another study_name (or storage) for a different space.")
  stored_grid = attrs.get("optlab_grid_points")
  if strategy == "grid" and stored_grid is not None and stored_grid != repr(grid_points):
    raise ValueError(f"search: study {study.study_name!r} is a grid with grid_points="
                     f"{stored_grid}; this search asks for grid_points={grid_points!r}")
  return int(attrs.get("optlab_seed", seed))


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
      trials = [t for t in study.get_trials(deepcopy=False) if not _is_abandoned(t)]
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


@contextlib.contextmanager
def _file_lock(path: pathlib.Path | None) -> Iterator[None]:
  """Holds an exclusive lock on `path` (nothing when None or without fcntl)."""
  try:
    import fcntl
  except ImportError:  # Windows: no lock, trials may overshoot with concurrent workers.
    fcntl = None
  if path is None or fcntl is None:
    yield
    return
  with open(path, "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(handle, fcntl.LOCK_UN)


def _run(study, objective, space, encodings, n_trials, make_sampler, lock_path, timeout, catch,
         show_progress) -> None:
  deadline = None if timeout is None else time.monotonic() + timeout
  tracked = not isinstance(study._storage, optuna.storages.InMemoryStorage)
  here = _workers.identity()
  bar = None
  sampler_ready = False
  beats = (_workers.Heartbeat(study._storage, HEARTBEAT_SECONDS) if tracked
           else contextlib.nullcontext())
  try:
    with beats:
      while deadline is None or time.monotonic() < deadline:
        with _file_lock(lock_path):
          trials = study.get_trials(deepcopy=False)
          if tracked and _reap(study, trials, here, locked=lock_path is not None):
            trials = study.get_trials(deepcopy=False)
          count = sum(t.state in _COUNTED and not _is_abandoned(t) for t in trials)
          if count >= n_trials:
            break
          if not sampler_ready:
            study.sampler = make_sampler(count)
            sampler_ready = True
            if show_progress:
              bar = _progress_bar(n_trials, count)
          if tracked:
            _enqueue_rerun(study, trials)
          ot = study.ask()
          if tracked:  # claimed under the lock: a running trial without a worker is an orphan
            study._storage.set_trial_system_attr(ot._trial_id, _workers.WORKER,
                                                 {**here, "since": time.time()})
            beats.trial_id = ot._trial_id
        try:
          _run_trial(study, ot, objective, space, encodings, catch, tracked)
        finally:
          if tracked:
            beats.trial_id = None
        if bar is not None:
          bar.update(1)
  finally:
    if bar is not None:
      bar.close()


def _is_abandoned(trial: optuna.trial.FrozenTrial) -> bool:
  """Whether `trial` was abandoned and is run again (so it does not count)."""
  attrs = trial.system_attrs
  return trial.state == _TrialState.FAIL and _ABANDONED in attrs and not attrs.get(_NO_RERUN)


def _reap(study: optuna.Study, trials, here: dict[str, Any], locked: bool) -> bool:
  """Marks the running trials of dead workers failed and abandoned; whether there were any."""
  now, storage = time.time(), study._storage
  by_number = {t.number: t for t in trials}
  reaped = False
  for t in trials:
    if t.state != _TrialState.RUNNING:
      continue
    reason = _workers.abandon_reason(t, here, now, HEARTBEAT_GRACE_SECONDS, locked)
    if reason is None:
      continue
    reruns, previous = 0, t.system_attrs.get(_RERUN_OF)
    while previous in by_number and reruns <= MAX_RERUNS:
      reruns, previous = reruns + 1, by_number[previous].system_attrs.get(_RERUN_OF)
    give_up = reruns >= MAX_RERUNS
    note = (f"; its configuration was abandoned {reruns + 1} times, so it is not run again "
            "(MAX_RERUNS)" if give_up else "")
    try:  # attrs first: a finished trial takes none (and the abandoned mark needs FAIL too)
      storage.set_trial_system_attr(t._trial_id, _ABANDONED, reason)
      if give_up:
        storage.set_trial_system_attr(t._trial_id, _NO_RERUN, True)
      storage.set_trial_user_attr(t._trial_id, "optlab_fail_reason",
                                  f"abandoned: {reason}{note}")
      storage.set_trial_state_values(t._trial_id, _TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
      continue  # it finished meanwhile, or another worker reaped it
    warnings.warn(f"search: trial {t.number} of study {study.study_name!r} is abandoned: "
                  f"{reason}; it is marked failed" + (note or " and its configuration runs again"),
                  RuntimeWarning, stacklevel=4)
    reaped = True
  return reaped


def _enqueue_rerun(study: optuna.Study, trials) -> None:
  """Queues the first abandoned trial that has no re-run yet, with its parameters and grid point."""
  rerun = {t.system_attrs.get(_RERUN_OF) for t in trials}
  for t in trials:
    if _is_abandoned(t) and t.number not in rerun:
      attrs = {"fixed_params": dict(t.params), _RERUN_OF: t.number}
      attrs.update({k: t.system_attrs[k] for k in _GRID_ATTRS if k in t.system_attrs})
      study.add_trial(optuna.trial.create_trial(state=_TrialState.WAITING, system_attrs=attrs))
      return


def _progress_bar(total: int, initial: int):
  try:
    from tqdm.auto import tqdm
  except ImportError:
    warnings.warn("search: show_progress needs tqdm (pip install tqdm)", stacklevel=3)
    return None
  return tqdm(total=total, initial=initial, desc="search")


def _run_trial(study, ot, objective, space, encodings, catch, tracked) -> None:
  error: BaseException | None = None
  state = None
  value = None
  try:
    config = _suggest(ot, space, encodings)
    raw = objective(dict(config), Trial(ot, config))
  except optuna.TrialPruned:
    state = _TrialState.PRUNED
  except BaseException as e:  # recorded, then raised again unless caught
    state, error = _TrialState.FAIL, e
  if tracked and study._storage.get_trial(ot._trial_id).state != _TrialState.RUNNING:
    reason = study._storage.get_trial_system_attrs(ot._trial_id).get(_ABANDONED, "")
    warnings.warn(f"search: trial {ot.number} was taken for abandoned by another worker while "
                  f"it ran ({reason}); its outcome is dropped (the re-run counts)",
                  RuntimeWarning, stacklevel=4)
    if error is not None and not isinstance(
        error, (*catch, optuna.exceptions.UpdateFinishedTrialError)):
      raise error
    return
  if state is None:
    try:
      value = float(raw)
    except (TypeError, ValueError):
      state = _TrialState.FAIL
      error = TypeError(f"search: the objective must return a float, got {raw!r} "
                        f"({type(raw).__name__}) in trial {ot.number}")
    else:
      if not math.isfinite(value):
        state = _TrialState.FAIL
        ot.set_user_attr("optlab_fail_reason", f"non-finite objective value {value!r}")
  if error is not None:
    ot.set_user_attr("optlab_fail_reason", repr(error))
  if state is None:
    study.tell(ot, value)
  else:
    study.tell(ot, state=state)
  if error is not None and not isinstance(error, catch):
    raise error


def _result(study: optuna.Study, space: SearchSpace, direction: str) -> SearchResult:
  completed = study.get_trials(deepcopy=False, states=(_TrialState.COMPLETE,))
  completed = [t for t in completed if t.value is not None and math.isfinite(t.value)]
  if not completed:
    return SearchResult(study, direction, {}, math.nan, -1, space)
  pick = min if direction == "minimize" else max
  best = pick(completed, key=lambda t: t.value)
  return SearchResult(study, direction, _decode(space, best.params), float(best.value),
                      best.number, space)
