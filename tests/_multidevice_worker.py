"""Worker of tests/test_data_parallel.py and tests/test_multihost.py (not collected).

Usage:
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python _multidevice_worker.py fit OUT.npz
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python _multidevice_worker.py sharded OUT.npz
  JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT JAX_NUM_PROCESSES=2 JAX_PROCESS_ID=i \\
    JAX_NUM_CPU_DEVICES=2 python _multidevice_worker.py multihost OUT.npz

The device count must be fixed before JAX starts, so these runs live in their own
processes; the tests run the same problems on one device and compare. Each mode
saves ``name -> array`` into OUT.npz (process 0 only, for ``multihost``).
"""

from __future__ import annotations

import importlib
import json
import sys

import jax
import numpy as np
import optax
from flax import nnx

from optlab import models
from optlab.train import distributed
from optlab.train.loop import fit
from optlab.train.steps import cross_entropy

BATCH = 32


def problem() -> tuple[np.ndarray, np.ndarray]:
  rng = np.random.default_rng(0)
  x = rng.normal(size=(128, 8)).astype(np.float32)
  y = ((x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5)).astype(np.int32)
  return x, y


def train(mesh, scan: bool, batch_size: int = BATCH) -> dict[str, np.ndarray]:
  """Adam on a small MLP for 2 epochs; final parameters, losses and shardings seen."""
  seen: list[str] = []

  def loss(outputs, labels):
    # Called at trace time of the train step only (no validation set): the
    # shardings the partitioner chose for the batch inside the compiled step.
    for array in (outputs, labels):
      jax.debug.inspect_array_sharding(
          array, callback=lambda s: seen.append(repr(getattr(s, "spec", s))))
    return cross_entropy(outputs, labels)

  model = models.MLP(8, [16], 3, rngs=nnx.Rngs(0))
  result = fit(model, optax.adam(1e-2), problem(), epochs=2, batch_size=batch_size, seed=1,
               scan=scan, mesh=mesh, loss=loss, progress=False)
  params = nnx.state(model, nnx.Param)
  leaves = jax.tree.leaves(params) + jax.tree.leaves(result.state.opt_state)
  out = {f"param{i}": np.asarray(p) for i, p in enumerate(jax.tree.leaves(params))}
  out["train_loss"] = np.asarray([h["train_loss"] for h in result.history])
  out["batch_specs"] = np.asarray(sorted(set(seen)) if mesh is not None else [])
  out["state_specs"] = np.asarray(sorted({repr(getattr(a.sharding, "spec", a.sharding))
                                          for a in leaves}))
  out["state_devices"] = np.asarray(sorted({len(a.sharding.device_set) for a in leaves}))
  return out


def _sweep_module():
  # optlab.tune re-exports the function sweep under the module's name.
  return importlib.import_module("optlab.tune.sweep")


def sweep_problem(mesh):
  """3 learning rates × 2 seeds of SGD, 6 runs per chunk (8 on an 8-device mesh)."""
  x, y = problem()
  return _sweep_module().sweep(
      lambda rngs: models.MLP(8, [8], 3, rngs=rngs), "sgd", (x, y),
      hyperparams={"learning_rate": [0.03, 0.1, 0.3]}, seeds=2, epochs=2, batch_size=BATCH,
      validation=(x, y), keep_params=True, chunk_size=6, mesh=mesh)


def _prefixed(prefix: str, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  return {f"{prefix}/{k}": v for k, v in values.items()}


def main(mode: str, path: str) -> None:
  out: dict[str, np.ndarray] = {}
  if mode == "fit":
    mesh = distributed.data_mesh()
    out.update(_prefixed("scan", train(mesh, scan=True)))
    out.update(_prefixed("loop", train(mesh, scan=False)))
    try:
      train(mesh, scan=True, batch_size=20)
    except ValueError as error:
      out["bad_batch_error"] = np.asarray(str(error))
    result = sweep_problem(mesh)
    out["sweep/val_loss"] = result["val_loss"]
    out["sweep/train_loss"] = result["train_loss"]
    out["sweep/chunk_size"] = np.asarray(result.chunk_size)
    for i, leaf in enumerate(jax.tree.leaves(result.params)):
      out[f"sweep/param{i}"] = np.asarray(leaf)
    # The shardings the sweep's compiled programs take: the run axis split.
    compiled = importlib.import_module("optlab.tune._chunks")._COMPILED
    specs = {repr(s.spec) for program in compiled.values()
             for s in jax.tree.leaves(program.input_shardings) if hasattr(s, "spec")}
    out["sweep/run_specs"] = np.asarray(sorted(specs))
  elif mode == "sharded":
    # A mesh with a model axis: large arrays of the state split along it.
    distributed.MIN_SHARD_SIZE = 64
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()).reshape(4, 2), ("data", "model"))
    out.update(_prefixed("sharded", train(mesh, scan=True)))
  elif mode == "multihost":
    assert distributed.initialize_from_env(), "the JAX_* variables are not set"
    mesh = distributed.data_mesh()
    out.update(_prefixed("scan", train(mesh, scan=True)))
    out.update(_prefixed("loop", train(mesh, scan=False)))
    out["process_count"] = np.asarray(jax.process_count())
    out["device_count"] = np.asarray(jax.device_count())
    if not distributed.is_main_process():
      return
  else:
    raise SystemExit(f"unknown mode {mode!r}")
  np.savez(path, **out)
  print(json.dumps({"saved": path, "devices": jax.device_count()}))


if __name__ == "__main__":
  main(*sys.argv[1:3])
