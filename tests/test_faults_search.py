"""Faults in a shared hyperparameter search: killed workers, dead hosts, reused pids.

A worker process (tests/_search_kill_worker.py, pure-Python objective) is
SIGKILLed inside a trial chosen by a seeded RNG; resuming the search must abandon
that trial (failed, flagged), evaluate its configuration once more to
completion, and end with exactly `n_trials` trials that were not abandoned, with
no configuration evaluated twice.
"""

from __future__ import annotations

import collections
import importlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import numpy as np
import optuna
import pytest

from optlab.optim.space import LogUniform, Uniform
from optlab.tune import _workers

if str(pathlib.Path(__file__).parent) not in sys.path:  # pytest's rootdir import puts it there
  sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _search_kill_worker as worker

search_module = importlib.import_module("optlab.tune.search")  # optlab.tune.search is shadowed
search = search_module.search

SEED = 9  # the kill points: np.random.default_rng([SEED, case]).integers(1, size - 1)
WORKER = pathlib.Path(__file__).with_name("_search_kill_worker.py")
ENV = {**os.environ, "PYTHONPATH": str(pathlib.Path(__file__).parents[1]), "JAX_PLATFORMS": "cpu"}
SIZES = {"random": 10, "tpe": 10, "grid": 16, "grid_conditional": 20}


def _start(tmp_path, strategy, n_trials, block_at, marker, wait_for=None):
  args = [sys.executable, str(WORKER), str(tmp_path / "study.log"), strategy, str(n_trials or 0),
          str(tmp_path / "evals.jsonl"), str(block_at), str(marker)]
  return subprocess.Popen(args + ([str(wait_for)] if wait_for else []), env=ENV,
                          stderr=subprocess.PIPE, text=True)


def _wait_for(path: pathlib.Path, *procs, timeout=60.0) -> dict:
  deadline = time.monotonic() + timeout
  while not path.exists():
    for proc in procs:
      if proc.poll() is not None:
        pytest.fail(f"worker exited ({proc.returncode}) before {path.name}: "
                    f"{proc.stderr.read()[-3000:]}")
    if time.monotonic() > deadline:
      pytest.fail(f"{path.name} did not appear within {timeout} s")
    time.sleep(0.01)
  return json.loads(path.read_text())


def _kill(proc) -> None:
  proc.kill()  # SIGKILL
  proc.wait(timeout=30)  # reaped: no zombie
  proc.stderr.close()


def _key(config) -> tuple:
  return tuple(sorted((k, v) for k, v in (config.items() if isinstance(config, dict) else config)
                      if v is not None))


def _check(result, strategy, killed, evals_path):
  """The invariants of a finished search after one worker was killed in trial `killed`."""
  size = SIZES[strategy]
  trials = result.study.trials
  abandoned = [t for t in trials if "optlab_abandoned" in t.system_attrs]
  assert [t.number for t in abandoned] == [killed["number"]]
  dead = abandoned[0]
  assert dead.state.name == "FAIL"
  assert f"worker pid {killed['pid']} on host" in dead.system_attrs["optlab_abandoned"]
  assert dead.user_attrs["optlab_fail_reason"].startswith("abandoned: worker pid")
  kept = [t for t in trials if "optlab_abandoned" not in t.system_attrs]
  assert len(kept) == size and all(t.state.name == "COMPLETE" for t in kept)
  (rerun,) = [t for t in kept if t.system_attrs.get("optlab_rerun_of") == dead.number]
  assert rerun.params == dead.params

  rows = {row["number"]: row for row in result.trials()}
  assert len(rows) == size + 1 and rows[dead.number]["state"] == "abandoned"
  configs = [_key({k: rows[t.number][k] for k in result.space}) for t in kept]
  assert len(set(configs)) == size  # no configuration twice
  assert _key(killed["config"]) in configs
  if strategy.startswith("grid"):  # every grid point exactly once
    grid = worker.space_for(strategy)[1].grid(worker.grid_points(strategy))
    assert sorted(configs) == sorted(_key(c) for c in grid)
  assert result.best_trial != dead.number
  assert result.best_value == min(t.value for t in kept)

  events = [json.loads(line) for line in evals_path.read_text().splitlines()]
  ends = collections.Counter(_key(e["config"]) for e in events if e["kind"] == "end")
  assert sorted(ends) == sorted(configs) and set(ends.values()) == {1}  # each finished once
  killed_starts = [e for e in events if e["pid"] == killed["pid"] and e["kind"] == "start"
                   and e["number"] == killed["number"]]
  assert len(killed_starts) == 1 and _key(killed_starts[0]["config"]) == _key(killed["config"])
  assert not [e for e in events if e["pid"] == killed["pid"] and e["kind"] == "end"
              and e["number"] == killed["number"]]


@pytest.mark.parametrize("strategy", ["random", "tpe", "grid", "grid_conditional"])
def test_a_killed_worker_s_trial_runs_again_exactly_once(tmp_path, strategy):
  size = SIZES[strategy]
  case = list(SIZES).index(strategy)
  block_at = int(np.random.default_rng([SEED, case]).integers(1, size - 1))
  n_trials = None if strategy.startswith("grid") else size
  marker = tmp_path / "blocked.json"
  proc = _start(tmp_path, strategy, n_trials, block_at, marker)
  killed = _wait_for(marker, proc)
  assert killed["number"] == block_at and killed["pid"] == proc.pid
  _kill(proc)

  evals = tmp_path / "evals.jsonl"
  with pytest.warns(RuntimeWarning, match=rf"trial {block_at} .* abandoned: worker pid "
                    rf"{proc.pid} on host .* died \(no such process\)"):
    result = worker.run(str(tmp_path / "study.log"), strategy, n_trials,
                        worker.make_objective(str(evals)))
  _check(result, strategy, killed, evals)
  again = worker.run(str(tmp_path / "study.log"), strategy, n_trials,
                     worker.make_objective(str(evals)))
  assert len(again.study.trials) == size + 1  # a finished study: nothing more runs


def test_one_worker_killed_while_another_continues(tmp_path):
  size = SIZES["random"]
  block_at = int(np.random.default_rng([SEED, 99]).integers(1, 5))
  released = tmp_path / "released"
  doomed = _start(tmp_path, "random", size, block_at, tmp_path / "doomed.json")
  survivor = _start(tmp_path, "random", size, -1, tmp_path / "waiting.json", wait_for=released)
  killed = _wait_for(tmp_path / "doomed.json", doomed, survivor)
  _wait_for(tmp_path / "waiting.json", survivor)  # the survivor is inside a trial too
  _kill(doomed)
  released.touch()
  _, err = survivor.communicate(timeout=60)
  assert survivor.returncode == 0, err
  assert "is abandoned" in err  # the survivor re-ran the dead worker's configuration

  evals = tmp_path / "evals.jsonl"
  result = worker.run(str(tmp_path / "study.log"), "random", size,
                      worker.make_objective(str(evals)))
  _check(result, "random", killed, evals)
  (rerun,) = [t for t in result.study.trials if "optlab_rerun_of" in t.system_attrs]
  assert rerun.system_attrs["optlab_worker"]["pid"] == survivor.pid
  assert {t.system_attrs["optlab_worker"]["pid"] for t in result.study.trials} == {
      doomed.pid, survivor.pid}


# ---------------------------------------------------------------------------------------------
# Telling live workers from dead ones.

SPACE = {"x": Uniform(0.0, 1.0), "lr": LogUniform(1e-4, 1.0)}


def _objective(config, trial):
  del trial
  return config["x"] + config["lr"]


def _running_trial(storage, worker_record, heartbeat):
  """A RUNNING trial in the study "faults" of `storage`, claimed by `worker_record`."""
  journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
  study = optuna.load_study(study_name="faults", storage=journal)
  trial = study.ask()
  trial.suggest_float("x", 0.0, 1.0)
  trial.suggest_float("lr", 1e-4, 1.0, log=True)
  if worker_record is not None:
    study._storage.set_trial_system_attr(trial._trial_id, "optlab_worker", worker_record)
    study._storage.set_trial_system_attr(trial._trial_id, "optlab_heartbeat", heartbeat)
  return trial


def _frozen(record, heartbeat=None):
  return optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING, system_attrs={
      "optlab_worker": record, **({} if heartbeat is None else {"optlab_heartbeat": heartbeat})})


def _dead_pid() -> int:
  proc = subprocess.Popen([sys.executable, "-c", "pass"])
  proc.wait()
  return proc.pid


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_abandon_reason_tells_live_dead_and_reused_pids():
  here, now = _workers.identity(), time.time()
  assert here["start"] is not None and here["boot"] and here["pidns"]

  def reason(record, heartbeat=None, locked=True):
    return _workers.abandon_reason(_frozen(record, heartbeat), here, now, 300.0, locked)

  assert reason(here) is None  # this very process
  assert reason({**here, "pid": os.getppid(), "start": None}) is None  # alive, start unknown
  assert reason({**here, "start": here["start"] + 1}).endswith(
      "died (exited (its pid now belongs to another process))")
  assert reason({**here, "pid": _dead_pid()}).endswith("died (no such process)")
  assert reason({**here, "boot": "another-boot"}).endswith("(the host has rebooted since)")
  zombie = subprocess.Popen([sys.executable, "-c", "pass"])
  try:
    deadline = time.monotonic() + 30
    while (_workers._proc_stat(zombie.pid) or ("?",))[0] != "Z":  # exited, not reaped
      assert time.monotonic() < deadline
      time.sleep(0.01)
    assert reason({**here, "pid": zombie.pid, "start": None}).endswith("(a zombie))")
  finally:
    zombie.wait()
  # Other hosts (or other pid namespaces): the heartbeat decides.
  other = {**here, "host": "elsewhere"}
  assert reason(other, heartbeat=now - 299.0) is None
  assert reason(other) is None  # no sign of life recorded at all: not judged
  assert "sent no heartbeat for 400 s" in reason({**other, "since": now - 400.0})  # the claim
  assert reason({**other, "since": now - 400.0}, heartbeat=now - 1.0) is None
  assert "sent no heartbeat for 301 s" in reason(other, heartbeat=now - 301.0)
  assert reason({**here, "pidns": "pid:[1]"}, heartbeat=now - 10.0) is None
  # A trial nobody claimed is an orphan only under the lock that creating and claiming share.
  assert reason(None).startswith("no worker claimed it")
  assert reason(None, locked=False) is None


def test_a_silent_worker_on_another_host_is_abandoned_after_the_grace_period(tmp_path):
  storage = str(tmp_path / "study.log")
  kwargs = {"strategy": "random", "storage": storage, "study_name": "faults"}
  search(_objective, SPACE, n_trials=2, **kwargs)
  record = {**_workers.identity(), "host": "elsewhere", "pid": 4321}
  stale = _running_trial(storage, record, time.time() - 3600)
  with pytest.warns(RuntimeWarning, match=rf"trial {stale.number} .* abandoned: worker pid 4321 "
                    r"on host elsewhere sent no heartbeat for 36\d\d s"):
    result = search(_objective, SPACE, n_trials=3, **kwargs)
  trials = result.study.trials
  assert len(trials) == 4 and trials[stale.number].state.name == "FAIL"
  assert trials[3].system_attrs["optlab_rerun_of"] == stale.number
  assert trials[3].params == trials[stale.number].params and trials[3].state.name == "COMPLETE"
  # A live one (recent heartbeat) keeps running and counting: nothing more is started.
  fresh = _running_trial(storage, record, time.time())
  result = search(_objective, SPACE, n_trials=4, **kwargs)
  assert len(result.study.trials) == 5 and result.study.trials[fresh.number].state.name == "RUNNING"
  # An unclaimed running trial (its worker died between creating and claiming it) is an orphan.
  orphan = _running_trial(storage, None, None)
  with pytest.warns(RuntimeWarning, match=rf"trial {orphan.number} .* no worker claimed it"):
    result = search(_objective, SPACE, n_trials=5, **kwargs)
  assert result.study.trials[orphan.number].state.name == "FAIL"
  assert len(result.study.trials) == 7  # + the orphan's re-run; the fresh trial still counts


def test_a_configuration_that_keeps_killing_its_workers_is_given_up(tmp_path):
  storage = str(tmp_path / "study.log")
  kwargs = {"strategy": "random", "storage": storage, "study_name": "faults"}
  search(_objective, SPACE, n_trials=1, **kwargs)
  journal = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
  study = optuna.load_study(study_name="faults", storage=journal)
  params = {"x": 0.25, "lr": 0.01}  # e.g. a configuration that runs out of memory
  dists = {"x": optuna.distributions.FloatDistribution(0.0, 1.0),
           "lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)}
  state = optuna.trial.TrialState
  for previous in (None, 1):  # trials 1 and 2: two attempts whose workers died
    attrs = {"optlab_abandoned": "died"} | ({} if previous is None else
                                            {"optlab_rerun_of": previous})
    study.add_trial(optuna.trial.create_trial(state=state.FAIL, params=params,
                                              distributions=dists, system_attrs=attrs))
  dead = {**_workers.identity(), "pid": _dead_pid(), "start": None}
  study.add_trial(optuna.trial.create_trial(  # trial 3: the third attempt, its worker dead too
      state=state.RUNNING, params=params, distributions=dists,
      system_attrs={"optlab_rerun_of": 2, "optlab_worker": dead, "optlab_heartbeat": 0.0}))
  with pytest.warns(RuntimeWarning, match=r"trial 3 .* abandoned 3 times, so it is not run again"):
    result = search(_objective, SPACE, n_trials=3, **kwargs)
  trials = result.study.trials
  assert len(trials) == 5 and trials[3].system_attrs["optlab_no_rerun"] is True
  assert trials[3].state.name == "FAIL" and "not run again" in trials[3].user_attrs[
      "optlab_fail_reason"]
  assert trials[4].params != params and "optlab_rerun_of" not in trials[4].system_attrs


def test_heartbeat_is_written_while_a_trial_runs(tmp_path, monkeypatch):
  monkeypatch.setattr(search_module, "HEARTBEAT_SECONDS", 0.02)
  beats = []

  def objective(config, trial):
    storage, trial_id = trial.optuna_trial.storage, trial.optuna_trial._trial_id
    for _ in range(3):
      time.sleep(0.1)
      beats.append(storage.get_trial_system_attrs(trial_id).get("optlab_heartbeat"))
    return config["x"]

  t0 = time.time()
  result = search(objective, SPACE, strategy="random", n_trials=2,
                  storage=str(tmp_path / "study.log"))
  assert len(beats) == 6 and None not in beats and beats[3] > beats[2]
  assert t0 < beats[0] < beats[1] < beats[2] and beats[3] < beats[4] < beats[5] <= time.time()
  for trial in result.study.trials:  # the claim: this process, and when
    record = dict(trial.system_attrs["optlab_worker"])
    first_beat = beats[3 * trial.number]
    assert trial.datetime_start.timestamp() - 1 < record.pop("since") < first_beat
    assert record == _workers.identity() and record["host"] == socket.gethostname()


def test_a_worker_taken_for_dead_drops_its_result_with_a_warning(tmp_path):
  storage = str(tmp_path / "study.log")

  def objective(config, trial):  # another host's worker reaps trial 0 while it runs
    ot = trial.optuna_trial
    if trial.number == 0:
      ot.storage.set_trial_system_attr(ot._trial_id, "optlab_abandoned", "test")
      ot.storage.set_trial_state_values(ot._trial_id, optuna.trial.TrialState.FAIL)
      trial.report(1.0, 0)  # raises: a finished trial takes no more writes
    return config["x"]

  with pytest.warns(RuntimeWarning, match=r"trial 0 was taken for abandoned .*\(test\)"):
    result = search(objective, SPACE, strategy="random", n_trials=1, storage=storage,
                    study_name="faults")
  first, rerun = result.study.trials
  assert first.state.name == "FAIL" and not first.intermediate_values
  assert rerun.state.name == "COMPLETE" and rerun.system_attrs["optlab_rerun_of"] == 0
  assert rerun.params == first.params and result.best_trial == 1


def test_in_memory_searches_record_no_workers():
  result = search(_objective, SPACE, strategy="random", n_trials=2)
  assert all("optlab_worker" not in t.system_attrs for t in result.study.trials)
