"""A worker of tests/test_tune_search.py: runs search() on a shared study, then exits.

Usage: python _shared_study_worker.py STORAGE STRATEGY SEED N_TRIALS [WORKER_ID N_WORKERS]

With WORKER_ID and N_WORKERS, the workers wait for each other after their
(slow) imports, so that their trials really interleave.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

from optlab.optim.space import LogUniform, Uniform
from optlab.tune.search import search

SPACE = {"x": Uniform(0.0, 1.0), "lr": LogUniform(1e-4, 1.0)}


def objective(config, trial):
  trial.optuna_trial.set_user_attr("pid", os.getpid())
  time.sleep(0.02)  # long enough for the workers' trials to interleave
  return (config["x"] - 0.3) ** 2 + config["lr"]


def _barrier(storage: str, worker: int, workers: int, timeout: float = 60.0) -> None:
  base = pathlib.Path(storage)
  base.with_name(f"{base.name}.ready{worker}").touch()
  deadline = time.monotonic() + timeout
  while not all(base.with_name(f"{base.name}.ready{i}").exists() for i in range(workers)):
    if time.monotonic() > deadline:
      raise TimeoutError("the other workers did not start")
    time.sleep(0.01)


if __name__ == "__main__":
  storage, strategy, seed, n_trials = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
  if len(sys.argv) > 5:
    _barrier(storage, int(sys.argv[5]), int(sys.argv[6]))
  search(objective, SPACE, strategy=strategy, seed=seed, n_trials=n_trials, storage=storage,
         study_name="shared")
