"""Data-parallel fit and device-sharded sweeps over a jax.sharding.Mesh (8 CPU devices).

The device count is fixed when JAX starts, so the 8-device runs happen in a
subprocess (tests/_multidevice_worker.py with
``XLA_FLAGS=--xla_force_host_platform_device_count=8``); this process, with one
device, runs the same problems meanwhile and compares.
"""

from __future__ import annotations

import functools
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from _multidevice_worker import problem, sweep_problem, train
from flax import nnx

from optlab.train import distributed
from optlab.train.loop import fit

WORKER = pathlib.Path(__file__).with_name("_multidevice_worker.py")


def _start(mode: str, out: pathlib.Path) -> subprocess.Popen:
  env = {**os.environ, "PYTHONPATH": str(WORKER.parents[1]), "JAX_PLATFORMS": "cpu",
         "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
  return subprocess.Popen([sys.executable, str(WORKER), mode, str(out)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, out: pathlib.Path) -> dict[str, np.ndarray]:
  _, err = proc.communicate(timeout=300)
  assert proc.returncode == 0, err[-3000:]
  with np.load(out) as saved:
    return {k: saved[k] for k in saved.files}


def _params(values: dict[str, np.ndarray], prefix: str = "") -> list[np.ndarray]:
  names = sorted((k for k in values if k.startswith(f"{prefix}param")),
                 key=lambda k: int(k.rsplit("param", 1)[1]))
  return [values[k] for k in names]


def _max_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
  assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b, strict=True))
  return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b, strict=True))


@functools.cache
def _reference(scan: bool) -> dict[str, np.ndarray]:
  return train(None, scan=scan)


def test_fit_and_sweep_on_eight_devices_match_one_device(tmp_path):
  out = tmp_path / "fit.npz"
  proc = _start("fit", out)
  reference = {scan: _reference(scan) for scan in (True, False)}
  sweep_one = sweep_problem(None)
  eight = _finish(proc, out)
  for scan, path in ((True, "scan"), (False, "loop")):
    one = reference[scan]
    assert _max_difference(_params(eight, f"{path}/"), _params(one)) < 1e-5, path
    np.testing.assert_allclose(eight[f"{path}/train_loss"], one["train_loss"], rtol=1e-5)
    # Inside the compiled step the batch (outputs and labels) is split along "data";
    # parameters and Adam's state come back replicated on all 8 devices.
    assert list(eight[f"{path}/batch_specs"]) == ["P('data',)"], path
    assert list(eight[f"{path}/state_specs"]) == ["P()"], path
    assert list(eight[f"{path}/state_devices"]) == [8], path
  assert "batch_size 20" in str(eight["bad_batch_error"])
  assert "multiple of 8" in str(eight["bad_batch_error"])
  # Sweep: 6 runs on 8 devices, the chunk rounded up to 8 runs (one per device).
  assert int(eight["sweep/chunk_size"]) == 8
  assert "P('data',)" in set(eight["sweep/run_specs"])
  np.testing.assert_allclose(eight["sweep/val_loss"], sweep_one["val_loss"], rtol=1e-5)
  np.testing.assert_allclose(eight["sweep/train_loss"], sweep_one["train_loss"], rtol=1e-5)
  assert _max_difference(_params(eight, "sweep/"),
                         [np.asarray(p) for p in jax.tree.leaves(sweep_one.params)]) < 1e-5


@pytest.mark.slow
def test_model_sharded_state_on_eight_devices_matches_one_device(tmp_path):
  out = tmp_path / "sharded.npz"
  proc = _start("sharded", out)
  reference = _reference(True)
  eight = _finish(proc, out)
  # A (data 4, model 2) mesh: kernels (and their Adam moments) split along "model".
  assert set(eight["sharded/state_specs"]) == {"P()", "P(None, 'model')"}
  # The batch axis is split along "data" (labels P('data',)); the outputs' class axis
  # may follow the last kernel along "model" (XLA's sharding propagation).
  batch_specs = set(eight["sharded/batch_specs"])
  assert "P('data',)" in batch_specs
  assert batch_specs <= {"P('data',)", "P('data', 'model')"}, batch_specs
  assert _max_difference(_params(eight, "sharded/"), _params(reference)) < 1e-5
  np.testing.assert_allclose(eight["sharded/train_loss"], reference["train_loss"], rtol=1e-5)


def test_mesh_and_batch_size_are_checked():
  mesh = distributed.data_mesh()
  x = np.zeros((8, 2), np.float32)
  y = np.zeros(8, np.int32)
  model = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
  with pytest.raises(TypeError, match=r"mesh must be a jax\.sharding\.Mesh"):
    fit(model, optax.sgd(0.1), (x, y), batch_size=4, mesh=jax.devices())
  two_axes = jax.sharding.Mesh(np.asarray(jax.devices()).reshape(1, 1), ("a", "b"))
  with pytest.raises(ValueError, match="name the batch axis 'data'"):
    distributed.check_mesh(two_axes, "fit")
  distributed.check_batch_size(3, mesh, "fit")  # one device: any batch size
  with pytest.raises(ValueError, match=r"batch_size 6 does not split over the 4 devices.*8"):
    distributed.check_batch_size(6, jax.sharding.Mesh(
        np.asarray(jax.devices() * 4, dtype=object), ("data",)), "fit")


def test_one_device_mesh_gives_the_same_fit():
  """mesh= on a single device takes the sharded code path and changes nothing."""

  def run(mesh):
    model = nnx.Linear(8, 3, rngs=nnx.Rngs(0))
    result = fit(model, optax.adam(1e-2), problem(), epochs=1, batch_size=32, mesh=mesh,
                 progress=False)
    return [np.asarray(p) for p in jax.tree.leaves(nnx.state(model, nnx.Param))], result

  plain, _ = run(None)
  placed, result = run(distributed.data_mesh())
  assert _max_difference(plain, placed) == 0.0
  assert result.state.params["kernel"][...].sharding.mesh.shape == {"data": 1}


def test_initialize_from_env(monkeypatch):
  for name in distributed.ENV_VARIABLES:
    monkeypatch.delenv(name, raising=False)
  assert distributed.initialize_from_env() is False
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "127.0.0.1:1")
  with pytest.raises(ValueError, match="JAX_NUM_PROCESSES, JAX_PROCESS_ID not"):
    distributed.initialize_from_env()
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "2")
  with pytest.raises(ValueError, match="0 ≤ JAX_PROCESS_ID < JAX_NUM_PROCESSES"):
    distributed.initialize_from_env()
  monkeypatch.setenv("JAX_PROCESS_ID", "one")
  with pytest.raises(ValueError, match="must be integers"):
    distributed.initialize_from_env()


def test_state_shardings_rule():
  # Two "model" slots on the one device: enough to read the rule (nothing is placed).
  mesh = jax.sharding.Mesh(np.asarray(jax.devices() * 2, dtype=object).reshape(1, 2),
                           ("data", "model"))
  tree = {"big": np.zeros((3, 1 << 16), np.float32), "odd": np.zeros((3, 1 << 16 | 1)),
          "small": np.zeros((4, 4), np.float32), "key": jax.random.key(0)}
  specs = jax.tree.map(lambda s: s.spec, distributed.state_shardings(tree, mesh))
  assert specs["big"] == jax.sharding.PartitionSpec(None, "model")
  replicated = jax.sharding.PartitionSpec()
  assert specs["odd"] == specs["small"] == specs["key"] == replicated
  # A model axis of one device splits nothing; keys survive placement.
  one = jax.sharding.Mesh(np.asarray(jax.devices(), dtype=object).reshape(1, 1),
                          ("data", "model"))
  placed = distributed.put(tree, distributed.state_shardings(tree, one))
  assert all(leaf.sharding.spec == replicated for leaf in jax.tree.leaves(placed))
  assert jax.dtypes.issubdtype(placed["key"].dtype, jax.dtypes.prng_key)
