"""Who runs a search trial, and whether it still does: worker records and heartbeats.

:func:`optlab.tune.search.search` records in each trial the worker that runs it
(:func:`identity`) and refreshes a heartbeat while it runs (:func:`heartbeat`);
:func:`abandon_reason` tells a live worker's trial from a dead one's. On the same
host a worker is alive while its pid exists, is not a zombie and still has the
start time it recorded (so a reused pid is not mistaken for it; Linux /proc, the
pid alone elsewhere on POSIX). On another host, or where liveness cannot be read,
a heartbeat older than a grace period means dead. A trial claimed with a deadline
(``search(trial_timeout=...)``) is abandoned once the deadline has passed, whether
its worker lives or not (:func:`overdue`).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import threading
import time
from typing import Any

from optlab.tune import _optuna

optuna = _optuna.deferred()  # importable without Optuna (search itself needs it)

WORKER = "optlab_worker"  # trial system attrs: who runs it, its last heartbeat
HEARTBEAT = "optlab_heartbeat"


def _proc_stat(pid: int) -> tuple[str, int] | None:
  """(state letter, start time in clock ticks after boot) of process `pid`, from /proc."""
  try:
    with open(f"/proc/{pid}/stat", "rb") as f:
      data = f.read()
    fields = data[data.rindex(b")") + 2:].split()  # the command name may hold spaces
    return fields[0].decode(), int(fields[19])
  except (OSError, ValueError, IndexError):
    return None


def _read_text(path: str) -> str | None:
  try:
    return pathlib.Path(path).read_text().strip()
  except OSError:
    return None


def identity() -> dict[str, Any]:
  """This process: host, pid, start time, boot id and pid namespace (None where unknown).

  A trial's record adds ``since``, the time it was claimed: its first sign of life;
  with a trial timeout, also ``trial_timeout`` (seconds) and ``deadline``
  (``since + trial_timeout``, as ``time.time()``).
  """
  stat = _proc_stat(os.getpid())
  try:
    namespace = os.readlink("/proc/self/ns/pid")  # containers on one host may share its name
  except OSError:
    namespace = None
  return {"host": socket.gethostname(), "pid": os.getpid(),
          "start": None if stat is None else stat[1],
          "boot": _read_text("/proc/sys/kernel/random/boot_id"), "pidns": namespace}


def process_gone(pid: int, start: int | None) -> str | None:
  """Why process `pid` (started at `start`) is gone: None if it lives, "" if unknown."""
  if os.name != "posix":  # os.kill(pid, 0) would terminate it on Windows
    return ""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return "no such process"
  except PermissionError:
    pass  # it exists, under another user
  except (OSError, OverflowError):
    return ""
  if not os.path.isdir("/proc/self"):
    return None
  stat = _proc_stat(pid)
  if stat is None:
    return "no such process"  # it ended since os.kill
  if stat[0] in ("Z", "X"):
    return "exited (a zombie)"
  if start is not None and stat[1] != start:
    return "exited (its pid now belongs to another process)"
  return None


def overdue(trial: optuna.trial.FrozenTrial, now: float) -> str | None:
  """Why the running `trial` is past the deadline its worker recorded, or None.

  A hung objective cannot be told from a slow one, and its worker may still be
  alive (its heartbeat thread still beats): the deadline alone decides.
  """
  worker = trial.system_attrs.get(WORKER)
  if not isinstance(worker, dict):
    return None
  deadline, timeout = worker.get("deadline"), worker.get("trial_timeout")
  if not isinstance(deadline, (int, float)) or now <= deadline:
    return None
  since = worker.get("since")
  ran = f" {now - since:.3g} s ago" if isinstance(since, (int, float)) else ""
  limit = f"trial_timeout of {timeout:g} s" if isinstance(timeout, (int, float)) else "its deadline"
  return (f"it exceeded {limit} (worker pid {worker.get('pid')} on host {worker.get('host')} "
          f"started it{ran})")


def abandon_reason(trial: optuna.trial.FrozenTrial, here: dict[str, Any], now: float,
                   grace: float, locked: bool) -> str | None:
  """Why the running `trial` is abandoned, or None while its worker may still run it.

  A trial past its deadline (:func:`overdue`) is abandoned first of all; then one
  whose worker is dead.

  Args:
    trial: a RUNNING trial.
    here: :func:`identity` of the calling process.
    now: ``time.time()``.
    grace: seconds without a heartbeat after which a worker on another host is dead.
    locked: whether the caller holds the lock under which workers create and claim
      trials; then a trial that no worker claimed is an orphan.
  """
  late = overdue(trial, now)
  if late is not None:
    return late
  worker = trial.system_attrs.get(WORKER)
  if not isinstance(worker, dict):
    return ("no worker claimed it (its worker died right after creating it, or it was not "
            "started by optlab.tune.search)") if locked else None
  name = f"worker pid {worker.get('pid')} on host {worker.get('host')}"
  if worker.get("host") == here["host"] and worker.get("pidns") == here["pidns"]:
    if worker.get("boot") != here["boot"]:
      return f"{name} died (the host has rebooted since)"
    try:
      pid = int(worker["pid"])
    except (KeyError, TypeError, ValueError):
      pid = None
    gone = "" if pid is None else process_gone(pid, worker.get("start"))
    if gone is None:
      return None
    if gone:
      return f"{name} died ({gone})"
  beats = [trial.system_attrs.get(HEARTBEAT), worker.get("since")]
  beat = max((b for b in beats if isinstance(b, (int, float))), default=None)
  if beat is not None and now - beat > grace:
    return f"{name} sent no heartbeat for {now - beat:.0f} s (grace period {grace:g} s)"
  return None


class Heartbeat:
  """A thread that writes the current trial's heartbeat every `every` seconds.

  Call :meth:`claim` when a trial starts and :meth:`release` when it ends; use
  as a context manager around the whole search (one thread, not one per trial).
  A beat that fails (a busy storage, a trial that just finished) is dropped. No
  beat is written past the trial's deadline: a worker whose objective hangs
  stops vouching for a trial that the other workers abandon.
  """

  def __init__(self, storage: optuna.storages.BaseStorage, every: float):
    self.storage = storage
    self.every = every
    self._current: tuple[int, float | None] | None = None  # (trial id, deadline): set at once
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, name="optlab-heartbeat", daemon=True)

  def claim(self, trial_id: int, deadline: float | None = None) -> None:
    """Beats for `trial_id` from now on, until `deadline` (a ``time.time()``; None: no limit)."""
    self._current = (trial_id, deadline)

  def release(self) -> None:
    """Stops beating: the trial has ended."""
    self._current = None

  def _run(self) -> None:
    while not self._stop.wait(self.every):
      current, now = self._current, time.time()
      if current is None or (current[1] is not None and now > current[1]):
        continue
      with contextlib.suppress(Exception):
        self.storage.set_trial_system_attr(current[0], HEARTBEAT, now)

  def __enter__(self) -> Heartbeat:
    self._thread.start()
    return self

  def __exit__(self, *exc_info) -> None:
    self._stop.set()
    self._thread.join()
