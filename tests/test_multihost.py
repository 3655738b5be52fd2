"""Multi-host data parallelism through jax.distributed, on one machine.

Two processes, each with 2 CPU devices, meet at a coordinator on 127.0.0.1
(``optlab.train.distributed.initialize_from_env``; CPU collectives through gloo,
jax's default) and train one model data-parallel over the global 4-device mesh,
each feeding its own devices' halves of every batch. Process 0 saves the final
parameters; they must equal one process's, on one device, up to reduction order.
"""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np

WORKER = pathlib.Path(__file__).with_name("_multidevice_worker.py")


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    sock.bind(("127.0.0.1", 0))
    return sock.getsockname()[1]


def test_two_processes_train_like_one(tmp_path):
  from _multidevice_worker import train

  out = tmp_path / "multihost.npz"
  base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  base.update({"PYTHONPATH": str(WORKER.parents[1]), "JAX_PLATFORMS": "cpu",
               "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{_free_port()}",
               "JAX_NUM_PROCESSES": "2", "JAX_NUM_CPU_DEVICES": "2"})
  procs = [subprocess.Popen([sys.executable, str(WORKER), "multihost", str(out)],
                            env={**base, "JAX_PROCESS_ID": str(i)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  try:
    reference = {scan: train(None, scan=scan) for scan in (True, False)}
    errors = [proc.communicate(timeout=300)[1] for proc in procs]
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
  for i, proc in enumerate(procs):
    assert proc.returncode == 0, f"process {i}:\n{errors[i][-3000:]}"
  with np.load(out) as saved:
    two = {k: saved[k] for k in saved.files}
  assert int(two["process_count"]) == 2 and int(two["device_count"]) == 4
  for scan, path in ((True, "scan"), (False, "loop")):
    one = reference[scan]
    names = sorted((k for k in one if k.startswith("param")), key=lambda k: int(k[5:]))
    difference = max(float(np.max(np.abs(two[f"{path}/{k}"] - one[k]))) for k in names)
    assert difference < 1e-5, (path, difference)
    np.testing.assert_allclose(two[f"{path}/train_loss"], one["train_loss"], rtol=1e-5)
    assert list(two[f"{path}/batch_specs"]) == ["P('data',)"]
    assert list(two[f"{path}/state_specs"]) == ["P()"]
    assert list(two[f"{path}/state_devices"]) == [4]
