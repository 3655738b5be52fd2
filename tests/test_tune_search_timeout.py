"""search(trial_timeout=...): a worker whose trial hangs while its process lives.

A hung worker is alive (its heartbeat thread beats on), so only the deadline its
trial records can free the study. The two-process test runs this file as the
hung worker (``python test_tune_search_timeout.py STORAGE MARKER TRIAL_TIMEOUT``):
its first trial writes MARKER and sleeps far longer than the test, which kills it.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import pathlib
import subprocess
import sys
import threading
import time

import optuna
import pytest

from optlab.optim.space import LogUniform, SearchSpace, Uniform
from optlab.tune import _workers

search_module = importlib.import_module("optlab.tune.search")  # optlab.tune.search is shadowed
search = search_module.search

SPACE = {"x": Uniform(0.0, 1.0), "lr": LogUniform(1e-4, 1.0)}
GRID = {"x": 4, "lr": 2}  # 8 grid points
ENV = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1]), "JAX_PLATFORMS": "cpu"}


def _value(config) -> float:
  return (config["x"] - 0.3) ** 2 + config["lr"]


def _grid_search(objective, storage, trial_timeout, **kwargs):
  return search(objective, SPACE, strategy="grid", grid_points=GRID, storage=storage,
                study_name="hung", trial_timeout=trial_timeout, **kwargs)


def _hung_worker(storage: str, marker: str, trial_timeout: float) -> None:
  """The hung process: its first trial announces itself in `marker`, then never returns."""
  search_module.HEARTBEAT_SECONDS = 0.05  # beats often, to show that they stop at the deadline
  hung = False

  def objective(config, trial):
    nonlocal hung
    if not hung:
      hung = True
      pathlib.Path(marker + ".tmp").write_text(json.dumps(
          {"number": trial.number, "pid": os.getpid(), "config": config}))
      os.replace(marker + ".tmp", marker)  # never read half-written
      time.sleep(3600)  # a deadlocked computation: the test kills the process
    return _value(config)

  _grid_search(objective, storage, trial_timeout)


def _wait_for(path: pathlib.Path, proc, timeout: float = 60.0) -> dict:
  deadline = time.monotonic() + timeout
  while not path.exists():
    if proc.poll() is not None:
      pytest.fail(f"the hung worker exited ({proc.returncode}): {proc.stderr.read()[-3000:]}")
    if time.monotonic() > deadline:
      pytest.fail(f"{path.name} did not appear within {timeout} s")
    time.sleep(0.01)
  return json.loads(path.read_text())


def test_a_hung_worker_s_trial_is_abandoned_at_its_deadline_and_run_again(tmp_path):
  storage, marker, trial_timeout = tmp_path / "study.log", tmp_path / "hung.json", 1.0
  hung = subprocess.Popen([sys.executable, __file__, str(storage), str(marker),
                           str(trial_timeout)], env=ENV, stderr=subprocess.PIPE, text=True)
  try:
    stuck = _wait_for(marker, hung)
    assert stuck["number"] == 0 and stuck["pid"] == hung.pid
    evaluated = []

    def objective(config, trial):
      del trial
      evaluated.append(tuple(sorted(config.items())))
      time.sleep(0.01)
      return _value(config)

    with pytest.warns(RuntimeWarning, match=rf"trial 0 .* abandoned: it exceeded trial_timeout "
                      rf"of 1 s \(worker pid {hung.pid} on host .* started it .* s ago\); it is "
                      "marked failed and its configuration runs again"):
      result = _grid_search(objective, storage, trial_timeout, timeout=60.0)  # never hangs
    returned = time.time()
    assert hung.poll() is None  # the hung worker still lives: only its trial was abandoned
  finally:
    hung.kill()
    hung.wait(timeout=30)
    hung.stderr.close()

  trials = result.study.trials
  first = trials[0]
  record = first.system_attrs["optlab_worker"]
  assert record["pid"] == hung.pid and record["trial_timeout"] == trial_timeout
  assert record["deadline"] == pytest.approx(record["since"] + trial_timeout)
  assert returned > record["deadline"]  # this worker waited for the deadline, then re-ran it
  assert first.state.name == "FAIL" and first.value is None
  assert first.system_attrs["optlab_timed_out"] == trial_timeout
  assert "optlab_no_rerun" not in first.system_attrs
  assert first.user_attrs["optlab_fail_reason"].startswith(
      "abandoned: it exceeded trial_timeout of 1 s")
  # The hung worker beat while its trial was young, and stopped at the deadline.
  assert record["since"] < first.system_attrs["optlab_heartbeat"] <= record["deadline"]

  kept = [t for t in trials if t.number != 0]
  assert len(trials) == 9 and all(t.state.name == "COMPLETE" for t in kept)
  (rerun,) = [t for t in kept if "optlab_rerun_of" in t.system_attrs]
  assert rerun.system_attrs["optlab_rerun_of"] == 0 and rerun.params == first.params
  assert {t.system_attrs["optlab_worker"]["pid"] for t in kept} == {os.getpid()}
  configs = sorted(tuple(sorted(t.params.items())) for t in kept)
  grid = sorted(tuple(sorted(c.items())) for c in SearchSpace(SPACE).grid(GRID))
  assert configs == grid  # every grid point exactly once: none lost, none twice
  assert sorted(evaluated) == grid
  assert tuple(sorted(stuck["config"].items())) in grid
  rows = {row["number"]: row for row in result.trials()}
  assert rows[0]["state"] == "abandoned" and result.best_trial != 0
  assert result.best_value == min(t.value for t in kept)
  # The study is complete: a resumed search runs nothing more.
  assert len(_grid_search(objective, storage, trial_timeout).study.trials) == 9


def test_a_timed_out_trial_that_returns_late_is_dropped(tmp_path):
  storage = str(tmp_path / "study.log")
  started, outcome = threading.Event(), {}

  def slow(config, trial):  # its first trial returns long after its deadline
    if trial.number == 0:
      started.set()
      time.sleep(1.2)
      return -1.0  # would be the best value, were it recorded
    return _value(config)

  def first_worker():
    try:
      outcome["result"] = search(slow, SPACE, strategy="random", n_trials=4, storage=storage,
                                 trial_timeout=0.4)
    except BaseException as error:  # re-raised below, in the test's thread
      outcome["error"] = error

  with pytest.warns(RuntimeWarning) as caught:
    thread = threading.Thread(target=first_worker)
    thread.start()
    assert started.wait(30)
    other = search(lambda c, t: _value(c), SPACE, strategy="random", n_trials=4,
                   storage=storage, trial_timeout=0.4)
    thread.join(30)
  assert "error" not in outcome, outcome.get("error")
  messages = [str(w.message) for w in caught]
  assert any("trial 0 of study 'optlab' is abandoned: it exceeded trial_timeout of 0.4 s" in m
             for m in messages)
  assert any(m.startswith("search: trial 0 was taken for abandoned by another worker while it "
                          "ran (it exceeded trial_timeout of 0.4 s") and
             m.endswith("its outcome is dropped (the re-run counts)") for m in messages)
  for result in (other, outcome["result"]):
    trials = result.study.trials
    assert len(trials) == 5 and trials[0].state.name == "FAIL" and trials[0].value is None
    assert all(t.state.name == "COMPLETE" for t in trials[1:])
    assert trials[4].system_attrs["optlab_rerun_of"] == 0
    assert trials[4].params == trials[0].params
    assert result.best_value != -1.0 and result.best_trial != 0


def _trial(study, state, params, attrs):
  dists = {"x": optuna.distributions.FloatDistribution(0.0, 1.0),
           "lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}
  study.add_trial(optuna.trial.create_trial(state=state, params=params, distributions=dists,
                                            system_attrs=attrs))


def _study_with_one_trial(tmp_path):
  """A journal-file study that `search` ran one random trial of, and the kwargs to go on."""
  storage = str(tmp_path / "study.log")
  kwargs = {"strategy": "random", "storage": storage, "study_name": "hung"}
  search(lambda c, t: _value(c), SPACE, n_trials=1, **kwargs)
  journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
  return optuna.load_study(study_name="hung", storage=journal), kwargs


def test_a_configuration_that_times_out_again_is_given_up(tmp_path):
  study, kwargs = _study_with_one_trial(tmp_path)
  params, now, state = {"x": 0.25, "lr": 0.01}, time.time(), optuna.trial.TrialState
  _trial(study, state.FAIL, params, {"optlab_abandoned": "it exceeded trial_timeout of 1 s",
                                     "optlab_timed_out": 1.0})
  alive = {**_workers.identity(), "since": now - 10.0, "trial_timeout": 1.0,
           "deadline": now - 9.0}  # this very process: alive, but its re-run hangs too
  _trial(study, state.RUNNING, params, {"optlab_rerun_of": 1, "optlab_worker": alive})
  with pytest.warns(RuntimeWarning, match=r"trial 2 .* exceeded trial_timeout of 1 s .* its "
                    r"configuration exceeded trial_timeout 2 times, so it is not run again"):
    result = search(lambda c, t: _value(c), SPACE, n_trials=3, trial_timeout=5.0, **kwargs)
  trials = result.study.trials
  assert len(trials) == 4 and trials[2].state.name == "FAIL"
  assert trials[2].system_attrs["optlab_no_rerun"] is True
  assert "not run again (MAX_TIMEOUT_RERUNS)" in trials[2].user_attrs["optlab_fail_reason"]
  assert trials[3].params != params and "optlab_rerun_of" not in trials[3].system_attrs
  assert {r["state"] for r in result.trials()} == {"complete", "abandoned", "fail"}


def test_a_running_trial_before_its_deadline_is_left_alone(tmp_path):
  study, kwargs = _study_with_one_trial(tmp_path)
  now = time.time()
  elsewhere = {**_workers.identity(), "host": "elsewhere", "since": now, "trial_timeout": 60.0,
               "deadline": now + 60.0}
  _trial(study, optuna.trial.TrialState.RUNNING, {"x": 0.5, "lr": 0.1},
         {"optlab_worker": elsewhere})
  # Without trial_timeout a worker that finds the study full returns at once, as before.
  result = search(lambda c, t: _value(c), SPACE, n_trials=2, **kwargs)
  assert [t.state.name for t in result.study.trials] == ["COMPLETE", "RUNNING"]
  # With it, the worker waits for that deadline, but no longer than `timeout`.
  t0 = time.monotonic()
  result = search(lambda c, t: _value(c), SPACE, n_trials=2, trial_timeout=60.0, timeout=0.3,
                  **kwargs)
  assert 0.3 <= time.monotonic() - t0 < 5.0
  assert [t.state.name for t in result.study.trials] == ["COMPLETE", "RUNNING"]


def test_overdue_names_the_timeout_whether_or_not_the_worker_lives():
  here, now = _workers.identity(), time.time()

  def frozen(record):
    return optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING,
                                     system_attrs={"optlab_worker": record})

  late = frozen({**here, "since": now - 3.0, "trial_timeout": 2.0, "deadline": now - 1.0})
  expected = f"it exceeded trial_timeout of 2 s (worker pid {os.getpid()} on host "
  assert _workers.overdue(late, now).startswith(expected)
  assert _workers.overdue(late, now).endswith("started it 3 s ago)")
  assert _workers.abandon_reason(late, here, now, 300.0, True).startswith(expected)
  young = frozen({**here, "since": now, "trial_timeout": 2.0, "deadline": now + 2.0})
  assert _workers.overdue(young, now) is None
  assert _workers.abandon_reason(young, here, now, 300.0, True) is None  # alive, in time
  assert _workers.overdue(frozen({**here, "since": now - 1e6}), now) is None  # no deadline


class _Recorder:
  def __init__(self):
    self.beats = []

  def set_trial_system_attr(self, trial_id, key, value):
    self.beats.append((trial_id, key, value))


def test_heartbeat_stops_at_the_deadline():
  storage = _Recorder()
  with _workers.Heartbeat(storage, every=0.01) as beats:
    deadline = time.time() + 0.15
    beats.claim(7, deadline)
    time.sleep(0.4)
    stopped = len(storage.beats)
    beats.release()
    beats.claim(8)  # no deadline: beats on
    time.sleep(0.1)
  assert stopped >= 3 and {b[:2] for b in storage.beats[:stopped]} == {(7, "optlab_heartbeat")}
  assert deadline - 0.1 < storage.beats[stopped - 1][2] <= deadline
  assert len(storage.beats) > stopped and storage.beats[-1][0] == 8


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, True, "5"])
def test_trial_timeout_must_be_a_positive_number(tmp_path, bad):
  calls = []
  with pytest.raises(ValueError, match=r"trial_timeout must be a finite number of seconds > 0 "
                     rf"or None, got {bad!r}"):
    search(lambda c, t: calls.append(c) or 0.0, SPACE, strategy="random", n_trials=1,
           storage=str(tmp_path / "s.log"), trial_timeout=bad)
  assert not calls


@pytest.mark.parametrize("storage", [None, "memory"])
def test_trial_timeout_needs_a_shared_storage(storage):
  storage = optuna.storages.InMemoryStorage() if storage == "memory" else storage
  with pytest.raises(ValueError, match="trial_timeout needs a file or database storage"):
    search(lambda c, t: 0.0, SPACE, strategy="random", n_trials=1, storage=storage,
           trial_timeout=10.0)


if __name__ == "__main__":
  _hung_worker(sys.argv[1], sys.argv[2], float(sys.argv[3]))
