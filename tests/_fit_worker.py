"""A child process of tests/test_faults_training.py, killed (SIGKILL) part-way by the test.

Usage:
  python _fit_worker.py fit OUT DATA SEED EPOCHS
    Trains a small MLP on scikit-learn's digits (DATA: an .npz of x_train, y_train,
    x_val, y_val that the test wrote from ``digits_task()``, sparing each child the
    seconds of importing scikit-learn) with
    ``fit(..., checkpoint_dir=OUT/ckpt, history_path=OUT/history.jsonl, resume=True)``,
    then writes OUT/params.npz (the final parameters, one array per path) and
    OUT/result.json (FitResult.history, status, skipped steps). Run again on the same
    OUT after a kill, it resumes from the last checkpoint.

  python _fit_worker.py checkpoints DIR MEGABYTES START
    Saves checkpoints of ``big_state(MEGABYTES, epoch)`` (arrays holding the epoch number)
    for epochs START, START + 1, ... forever, with ``Checkpointer(DIR, keep=2)``,
    writing each finished epoch to DIR/../saved.txt; the test kills it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np


def _write_atomically(path: Path, data: bytes) -> None:
  tmp = path.with_name(f".{path.name}.tmp")
  tmp.write_bytes(data)
  os.replace(tmp, path)


def digits_task() -> dict[str, np.ndarray]:
  """Digits, pixels scaled to [0, 1]: 1,024 training and 256 validation examples."""
  from optlab import data

  dataset = data.digits(flatten=True)
  x = dataset.x / np.float32(16.0)
  order = np.random.default_rng(0).permutation(len(x))
  train, val = order[:1024], order[1024:1280]
  return {"x_train": x[train], "y_train": dataset.y[train],
          "x_val": x[val], "y_val": dataset.y[val]}


def run_fit(out: Path, data_path: Path, seed: int, epochs: int) -> None:
  import optax
  from flax import nnx

  from optlab import models, train
  from optlab.train.paths import flatten_with_paths

  with np.load(data_path) as arrays:
    task = dict(arrays)
  model = models.MLP(64, [32], 10, dropout=0.1, rngs=nnx.Rngs(seed))
  result = train.fit(
      model, optax.adam(3e-3), (task["x_train"], task["y_train"]),
      validation=(task["x_val"], task["y_val"]), epochs=epochs, batch_size=32, seed=seed,
      checkpoint_dir=out / "ckpt", checkpoint_keep=2, checkpoint_monitor="val_loss",
      history_path=out / "history.jsonl", resume=True, progress=False,
      callbacks=[train.EarlyStopping("val_loss", patience=100)],
  )
  paths, leaves = flatten_with_paths(nnx.state(result.model, nnx.Param))
  params = {path: np.asarray(leaf) for path, leaf in zip(paths, leaves, strict=True)}
  tmp = out / ".params.tmp.npz"
  np.savez(tmp, **params)
  os.replace(tmp, out / "params.npz")
  _write_atomically(out / "result.json", json.dumps({
      "history": result.history, "status": result.status,
      "skipped_steps": result.skipped_steps, "step": int(result.state.step),
  }).encode())


def big_state(megabytes: float, epoch: int) -> dict:
  """About `megabytes` of float32 arrays holding `epoch`: one filled with it, two holding
  ``epoch + noise`` (a fixed pattern, so that the saved files are as large as the arrays,
  not compressed away), and an int32 scalar."""
  n = int(megabytes * 2**20 / 4 / 3) // 2 * 2
  noise = np.random.default_rng(0).random(n, dtype=np.float32)
  return {"filled": np.full((n,), epoch, np.float32),
          "noisy": {"a": np.float32(epoch) + noise,
                    "b": (np.float32(epoch) - noise).reshape(n // 2, 2)},
          "epoch": np.asarray(epoch, np.int32)}


def run_checkpoints(directory: Path, megabytes: float, start: int) -> None:
  from optlab.train.checkpoint import Checkpointer

  checkpointer = Checkpointer(directory, keep=2)
  progress = directory.parent / "saved.txt"
  epoch = start
  while True:
    checkpointer.save(epoch, big_state(megabytes, epoch), {"epoch": epoch}, {})
    with open(progress, "a") as f:
      f.write(f"{epoch}\n")
    epoch += 1


if __name__ == "__main__":
  mode = sys.argv[1]
  if mode == "fit":
    run_fit(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
  elif mode == "checkpoints":
    run_checkpoints(Path(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
  else:
    raise SystemExit(f"unknown mode {mode!r}; expected 'fit' or 'checkpoints'")
