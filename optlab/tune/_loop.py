"""The worker loop of a search: claim a trial under the lock, run it, record it; reap the dead.

:func:`run` is the loop of :func:`optlab.tune.search.search` once the study and
its sampler exist. Under the lock beside the storage it reaps the running trials
of dead workers (:func:`reap`), counts the study's trials, queues the re-run of an
abandoned one (:func:`enqueue_rerun`), asks for a new trial and claims it (worker
record: :mod:`optlab.tune._workers`); then, outside the lock, it evaluates the
trial and records its outcome (:func:`run_trial`), unless another worker took it
for abandoned meanwhile. With a trial timeout, a worker that finds no trial left
to start waits for the running trials that have a deadline, so that it can reap
and re-run one that passes it.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

from optlab.tune import _optuna, _study, _workers

optuna = _optuna.deferred()  # this module imports without Optuna (search itself needs it)

ABANDONED = "optlab_abandoned"  # trial system attrs: why it was abandoned, whether it is given
NO_RERUN = "optlab_no_rerun"  # up, and which abandoned trial a re-run repeats (worker and
RERUN_OF = "optlab_rerun_of"  # heartbeat: optlab.tune._workers)
TIMED_OUT = "optlab_timed_out"  # set (to its trial_timeout) on a trial abandoned for its deadline
GRID_ATTRS = ("grid_id", "search_space", "optlab_grid_id")  # a re-run keeps its grid point
WAIT_POLL_SECONDS = 1.0  # a worker waiting for others' deadlines looks at the study this often


def run(study, evaluate: Callable[[Any], Any], n_trials: int, make_sampler, lock_path, timeout,
        catch, show_progress, *, trial_timeout: float | None, heartbeat_seconds: float,
        grace_seconds: float, max_reruns: int, max_timeout_reruns: int) -> None:
  """Runs trials until the study counts `n_trials` (or `timeout` seconds have passed).

  Args:
    study: the ``optuna.Study``.
    evaluate: ``evaluate(optuna_trial) -> value``: suggests a configuration and
      calls the objective on it.
    n_trials: the trials (running or finished, not abandoned) the study should count.
    make_sampler: ``make_sampler(count)``, called once, under the lock, with the
      count this worker starts from.
    lock_path: the lock file shared by the workers, or None.
    timeout: stop asking for new trials after this many seconds (None: never).
    catch: exception types that fail a trial without stopping the search.
    show_progress: show a tqdm progress bar.
    trial_timeout: seconds after which a trial this worker claims is abandoned, or
      None. With it, a worker that finds the study full waits (while `timeout`
      allows) until no running trial with a deadline is left.
    heartbeat_seconds, grace_seconds, max_reruns, max_timeout_reruns: see
      ``optlab.tune.search``.
  """
  deadline = None if timeout is None else time.monotonic() + timeout
  states = optuna.trial.TrialState
  counted = (states.COMPLETE, states.PRUNED, states.FAIL, states.RUNNING)
  tracked = not isinstance(study._storage, optuna.storages.InMemoryStorage)
  here = _workers.identity()
  bar = None
  sampler_ready = False
  beats = (_workers.Heartbeat(study._storage, heartbeat_seconds) if tracked
           else contextlib.nullcontext())
  try:
    with beats:
      while deadline is None or time.monotonic() < deadline:
        with _study.file_lock(lock_path):
          trials = study.get_trials(deepcopy=False)
          if tracked and reap(study, trials, here, lock_path is not None, grace_seconds,
                              max_reruns, max_timeout_reruns):
            trials = study.get_trials(deepcopy=False)
          count = sum(t.state in counted and not is_abandoned(t) for t in trials)
          if count >= n_trials:
            wait = None if trial_timeout is None else _until_next_deadline(trials)
            if wait is None:
              break
            ot = None
          else:
            if not sampler_ready:
              study.sampler = make_sampler(count)
              sampler_ready = True
              if show_progress:
                bar = _progress_bar(n_trials, count)
            if tracked:
              enqueue_rerun(study, trials)
            ot = study.ask()
            if tracked:  # claimed under the lock: a running trial without a worker is an orphan
              since = time.time()
              limit = None if trial_timeout is None else since + trial_timeout
              record = {**here, "since": since}
              if limit is not None:
                record.update(trial_timeout=trial_timeout, deadline=limit)
              study._storage.set_trial_system_attr(ot._trial_id, _workers.WORKER, record)
              beats.claim(ot._trial_id, limit)
        if ot is None:  # the study is full, but a running trial may yet be abandoned
          left = math.inf if deadline is None else deadline - time.monotonic()
          time.sleep(max(0.0, min(wait, left)))
          continue
        try:
          run_trial(study, ot, evaluate, catch, tracked)
        finally:
          if tracked:
            beats.release()
        if bar is not None:
          bar.update(1)
  finally:
    if bar is not None:
      bar.close()


def is_abandoned(trial) -> bool:
  """Whether `trial` was abandoned and is run again (so it does not count)."""
  attrs = trial.system_attrs
  return (trial.state == optuna.trial.TrialState.FAIL and ABANDONED in attrs
          and not attrs.get(NO_RERUN))


def reap(study, trials, here: dict[str, Any], locked: bool, grace_seconds: float,
         max_reruns: int, max_timeout_reruns: int) -> bool:
  """Marks failed and abandoned the running trials of dead workers and those past their deadline.

  A configuration is given up (its trial stays failed and counts) once it was
  abandoned ``max_reruns + 1`` times, or past its deadline ``max_timeout_reruns + 1``
  times. Returns whether any trial was abandoned.
  """
  now, storage = time.time(), study._storage
  by_number = {t.number: t for t in trials}
  reaped = False
  for t in trials:
    if t.state != optuna.trial.TrialState.RUNNING:
      continue
    reason = _workers.abandon_reason(t, here, now, grace_seconds, locked)
    if reason is None:
      continue
    timed_out = _workers.overdue(t, now) is not None
    reruns, timeouts, previous = 0, 0, t.system_attrs.get(RERUN_OF)
    while previous in by_number and reruns <= max(max_reruns, max_timeout_reruns):
      attrs = by_number[previous].system_attrs
      reruns, timeouts, previous = reruns + 1, timeouts + (TIMED_OUT in attrs), attrs.get(RERUN_OF)
    note = ""
    if timed_out and timeouts >= max_timeout_reruns:
      note = (f"; its configuration exceeded trial_timeout {timeouts + 1} times, so it is not "
              "run again (MAX_TIMEOUT_RERUNS)")
    elif reruns >= max_reruns:
      note = (f"; its configuration was abandoned {reruns + 1} times, so it is not run again "
              "(MAX_RERUNS)")
    try:  # attrs first: a finished trial takes none (and the abandoned mark needs FAIL too)
      storage.set_trial_system_attr(t._trial_id, ABANDONED, reason)
      if timed_out:
        storage.set_trial_system_attr(t._trial_id, TIMED_OUT,
                                      t.system_attrs[_workers.WORKER].get("trial_timeout", True))
      if note:
        storage.set_trial_system_attr(t._trial_id, NO_RERUN, True)
      storage.set_trial_user_attr(t._trial_id, "optlab_fail_reason",
                                  f"abandoned: {reason}{note}")
      storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
      continue  # it finished meanwhile, or another worker reaped it
    warnings.warn(f"search: trial {t.number} of study {study.study_name!r} is abandoned: "
                  f"{reason}; it is marked failed" + (note or " and its configuration runs again"),
                  RuntimeWarning, stacklevel=4)
    reaped = True
  return reaped


def _until_next_deadline(trials) -> float | None:
  """Seconds to wait before looking at the study again; None if no running trial has a deadline."""
  deadlines = []
  for t in trials:
    worker = t.system_attrs.get(_workers.WORKER)
    if (t.state == optuna.trial.TrialState.RUNNING and isinstance(worker, dict)
        and isinstance(worker.get("deadline"), (int, float))):
      deadlines.append(worker["deadline"])
  if not deadlines:
    return None
  return min(max(min(deadlines) - time.time(), 0.0) + 0.01, WAIT_POLL_SECONDS)


def enqueue_rerun(study, trials) -> None:
  """Queues the first abandoned trial that has no re-run yet, with its parameters and grid point."""
  rerun = {t.system_attrs.get(RERUN_OF) for t in trials}
  for t in trials:
    if is_abandoned(t) and t.number not in rerun:
      attrs = {"fixed_params": dict(t.params), RERUN_OF: t.number}
      attrs.update({k: t.system_attrs[k] for k in GRID_ATTRS if k in t.system_attrs})
      study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.WAITING,
                                                system_attrs=attrs))
      return


def _progress_bar(total: int, initial: int):
  try:
    from tqdm.auto import tqdm
  except ImportError:
    warnings.warn("search: show_progress needs tqdm (pip install tqdm)", stacklevel=3)
    return None
  return tqdm(total=total, initial=initial, desc="search")


def run_trial(study, ot, evaluate, catch, tracked) -> None:
  """Evaluates trial `ot` and records its value or state, unless it was taken for abandoned.

  A trial that another worker abandoned while it ran (its worker was taken for
  dead, or it passed its deadline) is finished already: its outcome is dropped
  with a warning, never written over the failed state or added as a second result.
  """
  states = optuna.trial.TrialState
  error: BaseException | None = None
  state = None
  value = None
  try:
    raw = evaluate(ot)
  except optuna.TrialPruned:
    state = states.PRUNED
  except BaseException as e:  # recorded, then raised again unless caught
    state, error = states.FAIL, e
  if tracked and study._storage.get_trial(ot._trial_id).state != states.RUNNING:
    _drop(study, ot, error, catch)
    return
  if state is None:
    try:
      value = float(raw)
    except (TypeError, ValueError):
      state = states.FAIL
      error = TypeError(f"search: the objective must return a float, got {raw!r} "
                        f"({type(raw).__name__}) in trial {ot.number}")
    else:
      if not math.isfinite(value):
        state = states.FAIL
  try:
    if error is not None:
      ot.set_user_attr("optlab_fail_reason", repr(error))
    elif state == states.FAIL:
      ot.set_user_attr("optlab_fail_reason", f"non-finite objective value {value!r}")
    if state is None:
      study.tell(ot, value)
    else:
      study.tell(ot, state=state)
  except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
    # Abandoned by another worker between the check above and this record (tell raises
    # ValueError for a trial that is no longer running): the storage kept its state.
    if not tracked or ABANDONED not in study._storage.get_trial_system_attrs(ot._trial_id):
      raise
    _drop(study, ot, error, catch)
    return
  if error is not None and not isinstance(error, catch):
    raise error


def _drop(study, ot, error, catch) -> None:
  """Warns that the outcome of `ot`, abandoned while it ran, is dropped; raises its error."""
  attrs = study._storage.get_trial_system_attrs(ot._trial_id)
  counts = "it stays failed and counts" if attrs.get(NO_RERUN) else "the re-run counts"
  warnings.warn(f"search: trial {ot.number} was taken for abandoned by another worker while "
                f"it ran ({attrs.get(ABANDONED, '')}); its outcome is dropped ({counts})",
                RuntimeWarning, stacklevel=5)
  if error is not None and not isinstance(
      error, (*catch, optuna.exceptions.UpdateFinishedTrialError)):
    raise error
