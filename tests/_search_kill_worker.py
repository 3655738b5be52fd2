"""A worker of tests/test_faults_search.py: runs search() on a shared journal, maybe blocking.

Usage: python _search_kill_worker.py STORAGE STRATEGY N_TRIALS LOG BLOCK_AT MARKER [WAIT_FOR]

Every evaluation appends "start" and "end" lines (pid, trial number, configuration)
to LOG. The BLOCK_AT-th trial this worker evaluates (0-based; -1: none) writes
MARKER (its number, configuration and pid, as JSON) and then blocks until the
test kills the process. With WAIT_FOR, each trial first writes MARKER (once) and
waits for the file WAIT_FOR to exist, so that this worker is in a trial while the
test kills another one. The objective is pure Python: no JAX work in the child.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys
import time

from optlab.optim.space import Choice, Conditional, IntUniform, LogUniform, SearchSpace, Uniform
from optlab.tune.search import search

SPACES = {  # grid: 4 x 4 = 16 points; conditional grid: 3 * 4 + 2 * 4 = 20 points
    "flat": SearchSpace({"x": Uniform(0.0, 1.0), "lr": LogUniform(1e-4, 1.0)}),
    "conditional": SearchSpace({
        "kind": Choice(("a", "b")),
        "x": Conditional(Uniform(0.0, 1.0), parent="kind", values=("a",)),
        "width": Conditional(IntUniform(1, 2), parent="kind", values=("b",)),
        "lr": LogUniform(1e-4, 1.0),
    }),
}
GRID_POINTS = {"flat": 4, "conditional": {"x": 3, "width": 2, "lr": 4}}


def space_for(strategy: str) -> tuple[str, SearchSpace]:
  """("grid" or the strategy, its space) for "grid", "grid_conditional", "random", "tpe"."""
  if strategy == "grid_conditional":
    return "grid", SPACES["conditional"]
  return strategy, SPACES["flat"]


def grid_points(strategy: str):
  return GRID_POINTS["conditional" if strategy == "grid_conditional" else "flat"]


def make_objective(log: str, block_at: int = -1, marker: str | None = None,
                   wait_for: str | None = None):
  evaluated = 0

  def write(kind: str, trial, config) -> None:
    line = json.dumps({"kind": kind, "pid": os.getpid(), "number": trial.number,
                       "config": sorted(config.items())}) + "\n"
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
      os.write(fd, line.encode())  # one small O_APPEND write: never torn between processes
    finally:
      os.close(fd)

  def signal(trial, config) -> None:
    tmp = f"{marker}.{os.getpid()}.tmp"
    pathlib.Path(tmp).write_text(json.dumps({"number": trial.number, "pid": os.getpid(),
                                             "config": sorted(config.items())}))
    os.replace(tmp, marker)  # the test never reads a half-written marker

  def objective(config, trial):
    nonlocal evaluated
    write("start", trial, config)
    if evaluated == block_at:
      signal(trial, config)
      while True:  # until SIGKILL
        time.sleep(0.05)
    if wait_for is not None:
      if not os.path.exists(marker):
        signal(trial, config)
      deadline = time.monotonic() + 60
      while not os.path.exists(wait_for):
        if time.monotonic() > deadline:
          raise TimeoutError(f"{wait_for} did not appear")
        time.sleep(0.01)
    evaluated += 1
    value = (config.get("x", 0.5) - 0.3) ** 2 + config["lr"] + 0.1 * config.get("width", 0)
    write("end", trial, config)
    return value

  return objective


def run(storage: str, strategy: str, n_trials: int | None, objective):
  sampler, space = space_for(strategy)
  return search(objective, space, strategy=sampler, n_trials=n_trials, seed=0,
                storage=storage, study_name="faults", grid_points=grid_points(strategy))


if __name__ == "__main__":
  storage, strategy, n, log, block_at, marker = sys.argv[1:7]
  wait_for = sys.argv[7] if len(sys.argv) > 7 else None
  run(storage, strategy, int(n) if int(n) > 0 else None,
      make_objective(log, int(block_at), marker, wait_for))
