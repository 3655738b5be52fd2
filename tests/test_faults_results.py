"""Faults while results are written: a writer SIGKILLed mid-append, readers racing a writer.

The writer is a child process that loads optlab/results.py on its own (NumPy only,
no JAX start-up) and appends ~1 MB records. tests/test_results.py covers the
in-process cases (a crash before the rename, corrupted lines, concurrent threads).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from optlab import results

SEED = 2024  # the kill points of the random rounds
RESULTS_PY = pathlib.Path(results.__file__)
RECORD_BYTES = 64 * 16384  # 1 MiB of payload per record

WRITER = r"""
import hashlib, importlib.util, os, pathlib, sys, time
spec = importlib.util.spec_from_file_location("results_alone", sys.argv[1])
results = importlib.util.module_from_spec(spec)
spec.loader.exec_module(results)
path, progress, first, count, size = sys.argv[2], sys.argv[3], *map(int, sys.argv[4:7])
if sys.argv[7] == "block-in-fsync":  # stop inside the first append, its temporary file written
  def fsync(fd):
    pathlib.Path(progress + ".blocked").touch()
    while True:  # until SIGKILL
      time.sleep(0.05)
  os.fsync = fsync
for i in range(first, first + count):
  payload = hashlib.sha256(str(i).encode()).hexdigest() * (size // 64)
  results.append_records(path, [{"i": i, "payload": payload}])
  pathlib.Path(progress + ".tmp").write_text(str(i + 1))
  os.replace(progress + ".tmp", progress)
"""


def _payload(i: int, size: int = RECORD_BYTES) -> str:
  return hashlib.sha256(str(i).encode()).hexdigest() * (size // 64)


def _writer(path, progress, first, count, size=RECORD_BYTES, mode="run"):
  return subprocess.Popen([sys.executable, "-c", WRITER, str(RESULTS_PY), str(path),
                           str(progress), str(first), str(count), str(size), mode],
                          stderr=subprocess.PIPE, text=True)


def _wait(condition, proc, what, timeout=60.0):
  deadline = time.monotonic() + timeout
  while not condition():
    if proc.poll() is not None:
      pytest.fail(f"the writer exited ({proc.returncode}) before {what}: {proc.stderr.read()}")
    if time.monotonic() > deadline:
      pytest.fail(f"no {what} within {timeout} s")
    time.sleep(0.001)


def _temporaries(path: pathlib.Path) -> list[pathlib.Path]:
  return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def _read_strictly(path) -> list[dict]:
  """read_records with every warning (a corrupted line) an error."""
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    return results.read_records(path)


def _check_prefix(path, at_least: int, size: int = RECORD_BYTES) -> int:
  records = _read_strictly(path)
  assert [r["i"] for r in records] == list(range(len(records)))  # whole records 0..k-1
  assert all(r["payload"] == _payload(r["i"], size) for r in records)
  assert len(records) >= at_least
  return len(records)


def test_a_writer_killed_mid_append_leaves_a_whole_prefix_and_no_debris(tmp_path):
  path, progress = tmp_path / "runs.jsonl", tmp_path / "progress"
  # Round 0 stops the writer inside its first append's fsync: its temporary file is complete
  # and not yet renamed. Rounds 1-3 kill it at a seeded random moment while it appends.
  proc = _writer(path, progress, 0, 5, mode="block-in-fsync")
  _wait(lambda: pathlib.Path(f"{progress}.blocked").exists(), proc, "the blocked fsync")
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait(timeout=30)
  proc.stderr.close()
  assert not path.exists() and len(_temporaries(path)) == 1  # a killed append's debris
  count, left_behind = 0, 1
  rng = np.random.default_rng(SEED)
  for _ in range(3):
    wait_for, jitter = int(rng.integers(1, 4)), float(rng.uniform(0.0, 0.004))
    progress.unlink(missing_ok=True)
    proc = _writer(path, progress, count, 50)
    target = count + wait_for
    _wait(lambda target=target: progress.exists() and int(progress.read_text() or 0) >= target,
          proc, f"{wait_for} appends")
    assert len(_temporaries(path)) <= 1  # the first append removed the previous round's debris
    _wait(lambda: _temporaries(path), proc, "the next append")  # now inside an append
    time.sleep(jitter)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    left_behind += bool(_temporaries(path))
    count = _check_prefix(path, at_least=count + wait_for)
  # An append after the kills works, and clears what the killed appends left behind.
  results.append_records(path, [{"i": count, "payload": _payload(count)}])
  assert _check_prefix(path, at_least=count + 1) == count + 1
  assert _temporaries(path) == [] and sorted(p.name for p in tmp_path.iterdir()) == [
      "progress", "progress.blocked", "runs.jsonl"]
  assert left_behind >= 1


def test_a_temporary_file_of_another_results_file_is_left_alone(tmp_path):
  ours, theirs = tmp_path / ".runs.jsonl.abcd1234.tmp", tmp_path / ".other.jsonl.abcd1234.tmp"
  lookalike = tmp_path / ".runs.jsonl.backup.tmp"  # not a name mkstemp gives
  for p in (ours, theirs, lookalike):
    p.write_text("{partial")
  results.append_records(tmp_path / "runs.jsonl", [{"i": 0}])
  assert not ours.exists() and theirs.exists() and lookalike.exists()


def test_readers_see_whole_files_while_a_writer_appends(tmp_path):
  path, progress = tmp_path / "runs.jsonl", tmp_path / "progress"
  size, total = 64 * 512, 150  # 32 KiB records: many appends, each a whole new file
  proc = _writer(path, progress, 0, total, size=size)
  counts = []
  try:
    _wait(path.exists, proc, "the first append")
    while True:
      done = proc.poll() is not None
      counts.append(_check_prefix(path, at_least=counts[-1] if counts else 1, size=size))
      if done:
        break
  finally:
    if proc.poll() is None:
      proc.kill()
    proc.wait(timeout=30)
  assert proc.returncode == 0, proc.stderr.read()
  proc.stderr.close()
  assert counts[-1] == total and counts == sorted(counts)  # never fewer records than before
  assert len(set(counts)) >= 10  # the reads really interleaved with the appends
