"""Faults during training: kill and resume, torn checkpoints, full or unwritable disks, NaN/Inf.

The subprocess tests start tests/_fit_worker.py with ``sys.executable`` and kill it with
SIGKILL at a moment drawn from a seeded RNG, after polling a file the child writes (never a
blind sleep); every wait has a 60 s timeout, so a broken child fails the test instead of
hanging it.
"""

import errno
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _blobs import blobs
from _fit_worker import big_state, digits_task
from flax import nnx

from optlab import results, train
from optlab.train import checkpoint
from optlab.train.checkpoint import Checkpointer
from optlab.train.history import read_history

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("_fit_worker.py")

TIMEOUT = 60.0
KILL_SEED = 9  # seeds every random kill moment below


# --------------------------------------------------------------------------- helpers

class TinyNet(nnx.Module):
  def __init__(self, din=4, hidden=16, classes=3, *, seed=0):
    rngs = nnx.Rngs(seed)
    self.hidden = nnx.Linear(din, hidden, rngs=rngs)
    self.out = nnx.Linear(hidden, classes, rngs=rngs)

  def __call__(self, x):
    return self.out(nnx.relu(self.hidden(x)))


TRAIN, VAL = blobs(240, 0), blobs(120, 1)


def params_of(model):
  return nnx.state(model, nnx.Param)


def assert_trees_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def without_times(record):
  return {k: v for k, v in record.items() if k not in ("kind", "run", "epoch_seconds")}


@pytest.fixture(scope="module")
def child_env(tmp_path_factory):
  """The children's environment: this checkout, the CPU, and a compilation cache of their own
  (a resumed child loads the programs its killed predecessor compiled: same binaries, ~2 s
  less per start)."""
  cache = tmp_path_factory.mktemp("jax_cache")
  return dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", OPTLAB_CACHE_DIR="",
              JAX_COMPILATION_CACHE_DIR=str(cache), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
              JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0")


_CHILDREN: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_orphans():
  """Kills whatever child a failing test left running."""
  yield
  while _CHILDREN:
    proc = _CHILDREN.pop()
    if proc.poll() is None:
      proc.kill()
      proc.wait()


def _start(env: dict, log: Path, *args) -> subprocess.Popen:
  # stderr to a file: orbax's warnings could fill a pipe and block the child.
  with open(log, "ab") as stderr:
    proc = subprocess.Popen([sys.executable, str(WORKER), *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr)
  _CHILDREN.append(proc)
  return proc


def _log_tail(log: Path) -> str:
  return log.read_text(errors="replace")[-3000:] if log.exists() else ""


def _wait_for(condition, proc: subprocess.Popen, log: Path, what: str) -> None:
  deadline = time.monotonic() + TIMEOUT
  while not condition():
    if proc.poll() is not None:
      pytest.fail(f"the child exited ({proc.returncode}) before {what}:\n{_log_tail(log)}")
    if time.monotonic() > deadline:
      proc.kill()
      pytest.fail(f"timed out waiting for {what}:\n{_log_tail(log)}")
    time.sleep(0.005)


def _finish(proc: subprocess.Popen, log: Path) -> None:
  try:
    proc.wait(timeout=TIMEOUT)
  except subprocess.TimeoutExpired:
    proc.kill()
    pytest.fail(f"the child did not finish in {TIMEOUT} s:\n{_log_tail(log)}")
  assert proc.returncode == 0, _log_tail(log)


def _kill(proc: subprocess.Popen) -> None:
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait(timeout=TIMEOUT)
  assert proc.returncode == -signal.SIGKILL, (
      f"the child ended ({proc.returncode}) before it could be killed")


def _evaluations_since(history: Path, start: int) -> set[int]:
  """Epochs of the evaluation records after the first `start` records of the history file."""
  if not history.exists():
    return set()
  return {r["epoch"] for r in results.read_records(history)[start:]
          if r.get("kind") == "evaluation"}


def _count_records(history: Path) -> int:
  return len(results.read_records(history)) if history.exists() else 0


def _step_dirs(folder: Path) -> list[str]:
  """Everything in `folder`: checkpoint epochs in numeric order, then any other name."""
  names = os.listdir(folder) if folder.exists() else []
  return sorted(names, key=lambda d: (0, int(d), "") if d.isdigit() else (1, 0, d))


# --------------------------------------------------------------------------- kill and resume

EPOCHS = 8


@pytest.fixture(scope="module")
def digits_npz(tmp_path_factory):
  path = tmp_path_factory.mktemp("digits") / "digits.npz"
  np.savez(path, **digits_task())
  return path


def _check_same_run(reference: Path, resumed: Path):
  with np.load(reference / "params.npz") as a, np.load(resumed / "params.npz") as b:
    assert sorted(a) == sorted(b)
    for name in a:
      assert np.array_equal(a[name], b[name]), name  # bit-identical
  expected = json.loads((reference / "result.json").read_text())
  got = json.loads((resumed / "result.json").read_text())
  assert got["status"] == expected["status"] == "completed"
  assert got["step"] == expected["step"]
  assert [without_times(h) for h in got["history"]] == [
      without_times(h) for h in expected["history"]]
  # The history file: one record per epoch, the reference's values, one run id throughout.
  records = results.read_records(resumed / "history.jsonl")
  assert len({r["run"] for r in records}) == 1
  assert [r["kind"] for r in records].count("run_start") == 1
  evaluations = read_history(resumed / "history.jsonl")
  assert [r["epoch"] for r in evaluations] == list(range(EPOCHS))
  assert [without_times(r) for r in evaluations] == [
      without_times(h) for h in expected["history"]]
  # Only whole checkpoints are left: the last two, one best, no temporary or trash folder.
  ckpt = resumed / "ckpt"
  assert _step_dirs(ckpt / "last") == [str(EPOCHS - 2), str(EPOCHS - 1)]
  best = _step_dirs(ckpt / "best")
  assert len(best) == 1 and best[0].isdigit()
  checkpointer = Checkpointer(ckpt, keep=2, monitor="val_loss")
  for epoch in (EPOCHS - 2, EPOCHS - 1):
    state, record = checkpointer.restore(None, epoch)
    assert record["epoch"] == epoch and record["run"] == records[0]["run"]
    assert len(record["history"]) == epoch + 1
  state, _ = checkpointer.restore(None, EPOCHS - 1)
  with np.load(reference / "params.npz") as final:  # the last checkpoint holds the final params
    stored = sorted(np.asarray(x).tobytes() for x in jax.tree.leaves(state["state"]["params"]))
    assert stored == sorted(final[name].tobytes() for name in final)
  checkpointer.close()
  return records


def _kill_and_resume(env: dict, base: Path, digits_npz: Path, rng: np.random.Generator,
                     kills: int):
  """Runs the child on `base` and SIGKILLs it up to `kills` times, each time once the history
  file shows the child finished a random epoch, after a random delay (so the kill lands in
  that epoch's checkpoint save or in the next epoch), resuming after each kill.

  Returns the last (unkilled) child, its log, and (epoch, delay, latest checkpoint) per kill.
  """
  log = base.with_suffix(".log")
  history = base / "history.jsonl"
  points = []
  done = 0  # kill after epoch ≥ 1, so that a checkpoint exists and the run keeps its id
  for _ in range(kills):
    if done + 1 > EPOCHS - 3:
      break
    epoch = int(rng.integers(done + 1, EPOCHS - 2))  # leaves ≥ 2 epochs to kill in
    delay = float(rng.uniform(0.0, 0.15))
    start = _count_records(history)
    proc = _start(env, log, "fit", base, digits_npz, 0, EPOCHS)
    _wait_for(lambda e=epoch, s=start: e in _evaluations_since(history, s), proc, log,
              f"epoch {epoch} in the history file")
    time.sleep(delay)  # the random moment to kill at
    _kill(proc)
    assert not (base / "result.json").exists()
    done = max(int(d) for d in _step_dirs(base / "ckpt" / "last") if d.isdigit())
    assert done >= epoch - 1
    points.append((epoch, delay, done))
  return _start(env, log, "fit", base, digits_npz, 0, EPOCHS), log, points


def test_killed_run_resumes_bit_identical_to_an_uninterrupted_one(tmp_path, digits_npz, child_env):
  """SIGKILL a training child after a random epoch (seed KILL_SEED), resume it from its
  checkpoint, and compare with an uninterrupted child (started alongside, on the other core):
  the same parameters bit for bit, the same metrics, each epoch once in the history file."""
  reference_log = tmp_path / "reference.log"
  reference = _start(child_env, reference_log, "fit", tmp_path / "reference", digits_npz, 0,
                     EPOCHS)
  resumed, log, points = _kill_and_resume(child_env, tmp_path / "killed", digits_npz,
                                          np.random.default_rng(KILL_SEED), 1)
  _finish(reference, reference_log)
  _finish(resumed, log)
  records = _check_same_run(tmp_path / "reference", tmp_path / "killed")
  (_, _, done_epoch), = points
  resumes = [r for r in records if r["kind"] == "resume"]
  assert [r["from_epoch"] for r in resumes] == [done_epoch + 1]


@pytest.mark.slow
def test_repeated_kills_at_random_moments_resume_bit_identical(tmp_path, digits_npz, child_env):
  """Three kills in a row in one run, each at a random epoch and delay (seed KILL_SEED + 1)."""
  reference_log = tmp_path / "reference.log"
  reference = _start(child_env, reference_log, "fit", tmp_path / "reference", digits_npz, 0,
                     EPOCHS)
  resumed, log, points = _kill_and_resume(child_env, tmp_path / "killed", digits_npz,
                                          np.random.default_rng(KILL_SEED + 1), 3)
  assert len(points) >= 2
  _finish(reference, reference_log)
  _finish(resumed, log)
  records = _check_same_run(tmp_path / "reference", tmp_path / "killed")
  resumes = [r["from_epoch"] for r in records if r["kind"] == "resume"]
  assert resumes == [done + 1 for _, _, done in points]


# --------------------------------------------------------------------------- atomic checkpoints

MEGABYTES = 4


def _check_checkpoints_after_kill(directory: Path, saved: list[int]) -> None:
  """Every checkpoint listed is whole, the latest is at least the last one reported saved, and
  a new Checkpointer saves and restores there again (leaving no temporary folder behind)."""
  template = big_state(MEGABYTES, 0)
  checkpointer = Checkpointer(directory, keep=2)
  latest = checkpointer.latest_epoch()
  assert latest is not None and latest >= saved[-1]
  listed = [int(d) for d in _step_dirs(directory / "last") if d.isdigit()]
  assert latest == max(listed)
  for epoch in listed:  # readers see whole checkpoints only, never a torn one
    state, record = checkpointer.restore(template, epoch)
    assert record == {"epoch": epoch}
    assert_trees_equal(state, big_state(MEGABYTES, epoch))
  state, _ = checkpointer.restore(template)
  assert_trees_equal(state, big_state(MEGABYTES, latest))
  checkpointer.save(latest + 1, big_state(MEGABYTES, latest + 1), {"epoch": latest + 1},
                    {})
  state, record = checkpointer.restore(template)
  assert record == {"epoch": latest + 1}
  assert_trees_equal(state, big_state(MEGABYTES, latest + 1))
  checkpointer.close()
  assert _step_dirs(directory / "last") == [str(latest), str(latest + 1)]


def _kill_saving_child(env: dict, base: Path, delay: float) -> list[int]:
  """Starts the checkpoint-saving child, waits for its first save, kills it `delay` s later."""
  log = base / "child.log"
  saved_file = base / "saved.txt"
  proc = _start(env, log, "checkpoints", base / "ckpt", MEGABYTES, 0)
  _wait_for(lambda: saved_file.exists() and saved_file.read_text().count("\n") >= 1, proc, log,
            "the first checkpoint")
  time.sleep(delay)  # the random moment to kill at
  _kill(proc)
  return [int(line) for line in saved_file.read_text().split()]


def test_checkpoints_survive_a_kill_at_a_random_moment(tmp_path, child_env):
  """SIGKILL a child saving 4 MB checkpoints in a loop at a random moment (seed KILL_SEED):
  the latest checkpoint restores whole, and the directory takes new checkpoints."""
  delay = float(np.random.default_rng(KILL_SEED).uniform(0.0, 0.5))
  saved = _kill_saving_child(child_env, tmp_path, delay)
  _check_checkpoints_after_kill(tmp_path / "ckpt", saved)


@pytest.mark.slow
def test_checkpoints_survive_kills_at_many_moments(tmp_path, child_env):
  for i, delay in enumerate(np.random.default_rng(KILL_SEED + 1).uniform(0.0, 0.5, size=6)):
    base = tmp_path / str(i)
    base.mkdir()
    saved = _kill_saving_child(child_env, base, float(delay))
    _check_checkpoints_after_kill(base / "ckpt", saved)


def test_leftover_temporary_and_trash_folders_are_removed(tmp_path):
  """What a kill can leave (orbax's unfinished ``<epoch>.orbax-checkpoint-tmp``, a half-emptied
  ``.trash``) is removed when the directory is opened, and never listed as a checkpoint."""
  state = {"w": np.arange(6, dtype=np.float32)}
  checkpointer = Checkpointer(tmp_path, keep=2)
  for epoch in range(3):
    checkpointer.save(epoch, state, {"epoch": epoch}, {})
  checkpointer.close()
  assert _step_dirs(tmp_path / "last") == ["1", "2"]  # epoch 0 moved to .trash, then deleted
  torn = tmp_path / "last" / "3.orbax-checkpoint-tmp"
  (torn / "state").mkdir(parents=True)
  (torn / "state" / "half_written").write_bytes(b"\0" * 100)
  (tmp_path / "last" / ".trash" / "0" / "state").mkdir(parents=True)
  reopened = Checkpointer(tmp_path, keep=2)
  assert reopened.latest_epoch() == 2
  reopened.save(3, state, {"epoch": 3}, {})
  restored, record = reopened.restore(state)
  assert record == {"epoch": 3}
  assert_trees_equal(restored, state)
  reopened.close()
  assert _step_dirs(tmp_path / "last") == ["2", "3"]



def test_a_checkpoint_written_on_another_device_restores_here(tmp_path):
  """A checkpoint names the device that wrote it (a CPU run's says ``cpu:0``, which a GPU
  process does not have; seen on an H200): restored without a template, its arrays come to
  this process's first device instead of failing with orbax's topology error."""
  state = {"w": jnp.arange(6.0).reshape(2, 3), "k": jax.random.key(3),
           "n": {"b": jnp.ones(2, jnp.int32)}}
  checkpointer = Checkpointer(tmp_path, keep=2)
  checkpointer.save(1, checkpoint.to_storable(state), {"epoch": 1}, {})
  checkpointer.close()
  shardings = tmp_path / "last" / "1" / "state" / "_sharding"
  text = shardings.read_text()
  assert "cpu:0" in text
  shardings.write_text(text.replace("cpu:0", "cuda:0"))  # as if a GPU machine had written it
  reopened = Checkpointer(tmp_path, keep=2)
  stored, record = reopened.restore(None)
  assert record == {"epoch": 1}
  assert all(leaf.devices() == {jax.local_devices()[0]} for leaf in jax.tree.leaves(stored))
  assert_trees_equal(stored, checkpoint.to_storable(state))
  restored, _ = reopened.restore(state)  # with a template: its shardings
  assert_trees_equal(checkpoint.to_storable(restored), checkpoint.to_storable(state))
  reopened.close()

# --------------------------------------------------------------------------- resume bookkeeping

FIT = dict(validation=VAL, epochs=5, batch_size=30, seed=1, progress=False)


def test_resume_keeps_the_run_id_and_read_history_gives_each_epoch_once(tmp_path):
  """A run killed between an epoch's history record and its checkpoint redoes that epoch:
  the history file then holds the epoch twice, and read_history keeps the redone one.
  (That the resumed parameters equal an uninterrupted run's is tests/test_train.py's.)"""
  path = tmp_path / "history.jsonl"
  first = train.fit(TinyNet(), optax.adam(0.01), TRAIN, history_path=path,
                    checkpoint_dir=tmp_path / "ckpt", stop_after_epoch=2, **FIT)
  assert first.status == "interrupted"
  # As if killed after writing epoch 2's record but before its checkpoint was complete.
  shutil.rmtree(tmp_path / "ckpt" / "last" / "2")
  resumed = train.fit(TinyNet(seed=5), optax.adam(0.01), TRAIN, history_path=path,
                      checkpoint_dir=tmp_path / "ckpt", resume=True, **FIT)
  assert resumed.status == "completed"
  records = results.read_records(path)
  run = records[0]["run"]
  assert [r["kind"] for r in records] == ["run_start"] + ["evaluation"] * 3 + ["resume"] + [
      "evaluation"] * 3
  assert {r["run"] for r in records} == {run}  # the resumed run keeps the id
  assert records[4]["from_epoch"] == 2 and "provenance" in records[4]
  assert [r["epoch"] for r in records if r["kind"] == "evaluation"] == [0, 1, 2, 2, 3, 4]
  history = read_history(path)
  assert [r["epoch"] for r in history] == [0, 1, 2, 3, 4]
  assert history[2] == records[5]  # the redone epoch, not the one written before the kill
  assert [without_times(r) for r in history] == [without_times(h) for h in resumed.history]
  assert read_history(path, run=run) == history


def test_resume_refuses_another_run_name_and_old_checkpoints_fall_back(tmp_path, monkeypatch):
  path = tmp_path / "history.jsonl"
  train.fit(TinyNet(), optax.sgd(0.1), TRAIN, history_path=path, checkpoint_dir=tmp_path / "c",
            run_name="first", stop_after_epoch=0, **FIT)
  with pytest.raises(ValueError, match="run_name 'second' differs from the run 'first'"):
    train.fit(TinyNet(), optax.sgd(0.1), TRAIN, checkpoint_dir=tmp_path / "c", resume=True,
              run_name="second", **FIT)
  # A checkpoint written before run ids were stored: the run name given (or a new id) is used.
  restore = Checkpointer.restore

  def without_run(self, *args, **kwargs):
    state, record = restore(self, *args, **kwargs)
    return state, {k: v for k, v in record.items() if k != "run"}

  monkeypatch.setattr(Checkpointer, "restore", without_run)
  train.fit(TinyNet(), optax.sgd(0.1), TRAIN, history_path=path, checkpoint_dir=tmp_path / "c",
            resume=True, run_name="renamed", stop_after_epoch=1, **FIT)
  records = results.read_records(path)
  assert [(r["kind"], r["run"]) for r in records] == [
      ("run_start", "first"), ("evaluation", "first"), ("resume", "renamed"),
      ("evaluation", "renamed")]


def test_read_history_picks_runs_and_says_what_is_missing(tmp_path):
  path = tmp_path / "history.jsonl"
  results.append_records(path, [
      {"kind": "run_start", "run": "a"},
      {"kind": "evaluation", "run": "a", "epoch": 0, "val_loss": 3.0},
      {"kind": "run_start", "run": "b"},
      {"kind": "evaluation", "run": "b", "epoch": 1, "val_loss": 2.0},
      {"kind": "evaluation", "run": "b", "epoch": 0, "val_loss": 1.0},
      {"kind": "run_start", "run": "a"},  # "a" started again from scratch under the same name
      {"kind": "evaluation", "run": "a", "epoch": 0, "val_loss": 4.0},
  ])
  assert [r["val_loss"] for r in read_history(path)] == [4.0]
  assert [(r["epoch"], r["val_loss"]) for r in read_history(path, "b")] == [(0, 1.0), (1, 2.0)]
  with pytest.raises(ValueError, match=r"no evaluation records of run 'c'.*runs there: a, b"):
    read_history(path, "c")
  empty = tmp_path / "empty.jsonl"
  results.append_records(empty, [{"kind": "run_start", "run": "a"}])
  with pytest.raises(ValueError, match="no evaluation records in"):
    read_history(empty)
  with pytest.raises(FileNotFoundError):
    read_history(tmp_path / "missing.jsonl")


def test_plots_and_update_statistics_read_a_resumed_history_once_per_epoch(tmp_path):
  matplotlib = pytest.importorskip("matplotlib")
  matplotlib.use("Agg")
  from optlab.diagnostics import updates

  path = tmp_path / "history.jsonl"
  results.append_records(path, [
      {"kind": "run_start", "run": "r"},
      *({"kind": "evaluation", "run": "r", "epoch": e, "train_loss": 1.0 / (e + 1),
         "val_loss": 1.0, "update_ratio/w": 0.01 * (e + 1)} for e in range(3)),
      {"kind": "resume", "run": "r", "from_epoch": 2},
      {"kind": "evaluation", "run": "r", "epoch": 2, "train_loss": 0.3, "val_loss": 1.0,
       "update_ratio/w": 0.5},
      {"kind": "evaluation", "run": "other", "epoch": 0, "train_loss": 9.0},
  ])
  with pytest.raises(ValueError, match="no 'update_ratio' statistics"):
    updates.layer_curves(path)  # the last run written is "other"
  epochs, values = updates.layer_curves(read_history(path, "r"))["w"]
  assert epochs.tolist() == [0, 1, 2] and values.tolist() == [0.01, 0.02, 0.5]
  out = train.plot_learning_curves(path, tmp_path / "curves.png", run="r", metrics=("loss",))
  assert out.stat().st_size > 1000


# --------------------------------------------------------------------------- disk full / unwritable

def _fake_disk(monkeypatch, free: int):
  usage = shutil.disk_usage("/")
  monkeypatch.setattr(shutil, "disk_usage",
                      lambda path: usage._replace(free=free, used=usage.total - free))


def _counting_loss(traces):
  def loss(logits, labels):
    traces.append(1)
    return train.cross_entropy(logits, labels)
  return loss


@pytest.mark.parametrize("monitor, copies", [(None, 3), ("val_loss", 4)])
def test_a_full_disk_fails_before_anything_compiles(tmp_path, monkeypatch, monitor, copies):
  model = TinyNet()
  params = params_of(model)
  # params and their best copy, then step, skipped and the learning-rate scale (int32, float32)
  one_state = checkpoint.storage_bytes(params) * 2 + 3 * 4
  one = math.ceil(one_state * checkpoint.SPACE_MARGIN) + checkpoint.SPACE_OVERHEAD
  needed = copies * one  # keep=2, one being written, and the best
  _fake_disk(monkeypatch, needed - 1)
  traces = []
  with pytest.raises(OSError, match=rf"not enough free space for checkpoints in "
                                    rf"{re.escape(str(tmp_path))}: need about {needed:,} bytes "
                                    rf".* {needed - 1:,} bytes free") as error:
    train.fit(model, optax.sgd(0.1), TRAIN, checkpoint_dir=tmp_path, checkpoint_keep=2,
              checkpoint_monitor=monitor, loss=_counting_loss(traces), **FIT)
  assert error.value.errno == errno.ENOSPC
  assert traces == []  # nothing traced, let alone compiled or trained


def test_checkpoints_already_there_count_as_room(tmp_path, monkeypatch):
  """Checkpoints in the directory (a resumed run's) are replaced, so they count as room."""
  template = {"w": np.random.default_rng(0).random(1000, dtype=np.float32)}
  one = math.ceil(4000 * checkpoint.SPACE_MARGIN) + checkpoint.SPACE_OVERHEAD
  checkpointer = Checkpointer(tmp_path, keep=2)
  _fake_disk(monkeypatch, 3 * one)  # just enough
  assert checkpointer.check_space(template) == 3 * one
  for epoch in range(2):
    checkpointer.save(epoch, template, {"epoch": epoch}, {})
  present = sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
  assert present > 8000
  needed = 3 * one - present
  assert checkpointer.check_space(template) == needed
  _fake_disk(monkeypatch, needed - 1)
  with pytest.raises(OSError, match=f"need about {needed:,} bytes .* {needed - 1:,} bytes free"):
    checkpointer.check_space(template)
  checkpointer.close()


def test_an_unwritable_history_directory_fails_before_anything_compiles(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  traces = []
  with pytest.raises(OSError, match=f"cannot write the history file to {re.escape(str(blocker))}"):
    train.fit(TinyNet(), optax.sgd(0.1), TRAIN, history_path=blocker / "history.jsonl",
              loss=_counting_loss(traces), **FIT)
  assert traces == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions")
@pytest.mark.parametrize("where", ["history_path", "checkpoint_dir"])
def test_a_read_only_directory_fails_before_anything_compiles(tmp_path, where):
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  traces = []
  target = {"history_path": locked / "history.jsonl", "checkpoint_dir": locked}[where]
  try:
    with pytest.raises(OSError, match=f"cannot write .* to {re.escape(str(locked))}"):
      train.fit(TinyNet(), optax.sgd(0.1), TRAIN, loss=_counting_loss(traces),
                **{where: target}, **FIT)
  finally:
    locked.chmod(0o700)
  assert traces == []


# --------------------------------------------------------------------------- NaN and Inf mid-run
# Faults are injected at chosen optimizer steps through `augment`, which fit calls with
# fold_in(split(fold_in(key(seed), epoch))[1], step) on both the scanned and the Python path: it
# writes a fault code into an extra input column (or NaN/Inf into the data itself), which the
# model and the loss read. The reference run puts NO_OP at the same steps instead: a zero
# gradient, so that with plain SGD the step leaves the parameters exactly as they were, which
# is what a skipped step must do. Both runs run the same program, only the data differ.

LOSS_NAN, LOSS_INF, GRAD_NAN, GRAD_INF, DATA_NAN, DATA_INF, NO_OP = range(1, 8)
FAULTS = {0: LOSS_NAN, 5: GRAD_NAN, 6: DATA_INF, 13: LOSS_INF, 18: GRAD_INF, 29: DATA_NAN}
STEPS_PER_EPOCH = 240 // 30
FAULT_FIT = dict(epochs=4, batch_size=30, seed=3, metrics=(), progress=False)


@jax.custom_vjp
def _poison_gradient(x, value):
  return x


def _poison_forward(x, value):
  return x, value


def _poison_backward(value, g):  # the cotangent replaced by `value` (NaN or Inf) unless 0
  return jnp.where(value == 0, g, value), jnp.zeros_like(value)


_poison_gradient.defvjp(_poison_forward, _poison_backward)


class FaultyNet(nnx.Module):
  """TinyNet whose last input column holds a fault code (the batch's maximum counts)."""

  def __init__(self, *, seed=0):
    rngs = nnx.Rngs(seed)
    self.hidden = nnx.Linear(4, 16, rngs=rngs)
    self.out = nnx.Linear(16, 3, rngs=rngs)

  def __call__(self, x):
    code = jnp.max(x[:, -1])
    logits = self.out(nnx.relu(self.hidden(x[:, :-1])))
    logits = jnp.where(code == NO_OP, jax.lax.stop_gradient(logits), logits)
    bad = jnp.select([code == GRAD_NAN, code == GRAD_INF], [jnp.nan, jnp.inf], 0.0)
    logits = _poison_gradient(logits, bad)  # finite loss, non-finite gradients
    return jnp.concatenate([logits, jnp.broadcast_to(code, (x.shape[0], 1))], axis=1)


def faulty_loss(outputs, labels):
  """Cross-entropy; NaN or Inf added for the loss faults (the gradients stay finite)."""
  code = outputs[0, -1]
  bad = jnp.select([code == LOSS_NAN, code == LOSS_INF], [jnp.nan, jnp.inf], 0.0)
  return train.cross_entropy(outputs[:, :-1], labels) + bad


def inject(faults: dict[int, int], seed: int):
  """An `augment` that puts fault `faults[step]` into the batch of optimizer step `step`."""
  steps = sorted(faults)
  targets = jnp.stack([jax.random.key_data(jax.random.fold_in(
      jax.random.split(jax.random.fold_in(jax.random.key(seed), s // STEPS_PER_EPOCH))[1], s))
      for s in steps])
  codes = jnp.asarray([faults[s] for s in steps], jnp.float32)

  def augment(key, x):
    hit = jnp.all(jax.random.key_data(key)[None, :] == targets, axis=1)
    code = jnp.max(jnp.where(hit, codes, 0.0))
    value = jnp.select([code == DATA_NAN, code == DATA_INF], [jnp.nan, jnp.inf], x[0, 0])
    x = x.at[0, 0].set(value)  # one input of one example
    return x.at[:, -1].set(jnp.where((code == DATA_NAN) | (code == DATA_INF), 0.0, code))

  return augment


def with_code_column(xy):
  x, y = xy
  return np.concatenate([x, np.zeros((len(x), 1), np.float32)], axis=1), y


def _all_finite(tree):
  return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree)
             if jnp.issubdtype(leaf.dtype, jnp.inexact))


def _expected_skips(epochs):
  return [sum(1 for s in FAULTS if s < (epoch + 1) * STEPS_PER_EPOCH) for epoch in range(epochs)]


@pytest.mark.parametrize("scan", [True, False], ids=["scan", "python_loop"])
def test_nan_and_inf_in_loss_gradients_and_data_never_reach_the_parameters(tmp_path, scan):
  train_xy, val_xy = with_code_column(TRAIN), with_code_column(VAL)
  path = tmp_path / "history.jsonl"
  faulty = train.fit(FaultyNet(), optax.sgd(0.1), train_xy, validation=val_xy, loss=faulty_loss,
                     augment=inject(FAULTS, seed=3), scan=scan, history_path=path, **FAULT_FIT)
  reference = train.fit(FaultyNet(), optax.sgd(0.1), train_xy, validation=val_xy,
                        loss=faulty_loss, augment=inject(dict.fromkeys(FAULTS, NO_OP), seed=3),
                        scan=scan, **FAULT_FIT)
  assert faulty.status == reference.status == "completed"
  assert _all_finite(faulty.state)
  # Exactly the run whose faulty steps changed nothing, bit for bit.
  assert_trees_equal(faulty.state.params, reference.state.params)
  assert [h["val_loss"] for h in faulty.history] == [h["val_loss"] for h in reference.history]
  # The exact count, in the result, the logs and the history file.
  assert faulty.skipped_steps == len(FAULTS) and reference.skipped_steps == 0
  assert int(faulty.state.step) == int(reference.state.step) == 4 * STEPS_PER_EPOCH
  assert [h["skipped_steps"] for h in faulty.history] == _expected_skips(4)
  assert [r["skipped_steps"] for r in read_history(path)] == _expected_skips(4)


def test_skipped_steps_leave_the_optimizer_state_finite_and_untouched():
  """Adam: a skipped step changes neither the moments nor the step count of the optimizer."""
  train_xy = with_code_column(TRAIN)
  faulty = train.fit(FaultyNet(), optax.adam(0.01), train_xy, loss=faulty_loss,
                     augment=inject(FAULTS, seed=3), **FAULT_FIT)
  assert faulty.status == "completed" and faulty.skipped_steps == len(FAULTS)
  assert _all_finite(faulty.state.opt_state) and _all_finite(faulty.state.params)
  adam_state = faulty.state.opt_state[0][0]
  assert int(adam_state.count) == 4 * STEPS_PER_EPOCH - len(FAULTS)
  assert [h["skipped_steps"] for h in faulty.history] == _expected_skips(4)
