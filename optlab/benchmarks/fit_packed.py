"""``fit`` packed against unpacked on a model with many small parameter arrays.

An MLP of 250 hidden layers of width 64 (502 parameter arrays, 1,040,650
parameters), Adam, batch 32: ``fit(..., packed=True)`` keeps the parameters and
Adam's moments in one buffer each (``optlab.train.packing``) against the default
``fit`` over the tree, for both epoch paths:

* the scanned epoch (``scan=True``): compile seconds (``FitResult.compile_seconds``:
  trace, lower and compile the epoch) and milliseconds per step of a compiled epoch;
* the Python loop of jitted steps (``scan=False``): each call passes the whole
  train state, so a step over the tree takes about 4 × 502 arrays and returns
  as many; packed, a handful. Compile seconds here are the first epoch's time
  less a later epoch's (the first call compiles).

Milliseconds per step are the best epoch after the first, divided by the steps
per epoch. The runs happen in a child process with JAX's persistent compilation
cache off (else a second run would load the programs, not compile them).
``max_abs_difference_*`` compares the final parameters of the packed and the
unpacked run of each path.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from optlab.benchmarks._child import run_child


def _run(depth: int, width: int, x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int,
         *, scan: bool, packed: bool) -> tuple[float, float, list[np.ndarray]]:
  """(compile seconds, ms per step, final parameters) of one fit."""
  import jax
  from flax import nnx

  from optlab import models, optim
  from optlab.train.loop import fit

  model = models.MLP(width, [width] * depth, 10, rngs=nnx.Rngs(0))
  result = fit(model, optim.get("adam", learning_rate=1e-3), (x, y), epochs=epochs,
               batch_size=batch_size, scan=scan, packed=packed, progress=False)
  seconds = [h["epoch_seconds"] for h in result.history]
  steps = x.shape[0] // batch_size
  best = min(seconds[1:])
  compile_seconds = result.compile_seconds if scan else seconds[0] - best
  params = [np.asarray(p) for p in jax.tree.leaves(nnx.state(result.model, nnx.Param))]
  return compile_seconds, 1e3 * best / steps, params


def measure(depth: int, width: int, batch_size: int, steps: int, epochs: int,
            paths: tuple[str, ...]) -> dict[str, float]:
  """This process's numbers (see :func:`fit_packed`), without the ratios."""
  from flax import nnx

  from optlab import models
  from optlab.optim.packed import Packing
  from optlab.train.state import split_model

  rng = np.random.default_rng(0)
  x = rng.normal(size=(batch_size * steps, width)).astype(np.float32)
  y = rng.integers(0, 10, size=batch_size * steps).astype(np.int32)
  packing = Packing.of(split_model(models.MLP(width, [width] * depth, 10,
                                              rngs=nnx.Rngs(0)))[2])
  results: dict[str, float] = {"leaves": float(packing.num_leaves),
                               "params": float(packing.num_params)}
  for path in paths:
    finals = {}
    for name, packed in (("tree", False), ("packed", True)):
      compile_s, ms, finals[name] = _run(depth, width, x, y, batch_size, epochs,
                                         scan=path == "scan", packed=packed)
      results[f"{path}_{name}_compile_s"] = compile_s
      results[f"{path}_{name}_ms_per_step"] = ms
    results[f"max_abs_difference_{path}"] = max(
        float(np.max(np.abs(a - b))) for a, b in zip(finals["tree"], finals["packed"],
                                                     strict=True))
  return results


def fit_packed(depth: int = 250, width: int = 64, batch_size: int = 32, steps: int = 32,
               epochs: int = 4, paths: tuple[str, ...] = ("scan", "loop")) -> dict[str, float]:
  """Compile seconds and ms per step of ``fit`` packed and unpacked, scanned and looped.

  The runs happen in a child process with the persistent compilation cache off
  (``OPTLAB_CACHE_DIR=off``), so every program is compiled, never loaded.

  Args:
    depth: hidden layers of the MLP (2 parameter arrays each, plus the head's 2).
    width: their width (and the input's).
    batch_size: examples per step.
    steps: steps per epoch.
    epochs: epochs per run (the first compiles; the best of the others is timed).
    paths: which epoch paths to measure: ``"scan"`` and/or ``"loop"``.

  Returns:
    Per path (``scan``, ``loop``) and representation (``tree``, ``packed``):
    ``<path>_<repr>_compile_s`` and ``<path>_<repr>_ms_per_step``; the largest
    difference of the final parameters; and, last, the ratios tree / packed.
  """
  if epochs < 2:
    raise ValueError(f"fit_packed: epochs must be ≥ 2 (the first compiles), got {epochs}")
  paths = tuple(paths)
  if not paths or set(paths) - {"scan", "loop"}:
    raise ValueError(f"fit_packed: paths must be some of ('scan', 'loop'), got {paths!r}")
  args = {"depth": depth, "width": width, "batch_size": batch_size, "steps": steps,
          "epochs": epochs, "paths": list(paths)}
  results: dict[str, float] = {"load_1min": os.getloadavg()[0]}
  results |= run_child("optlab.benchmarks.fit_packed", [json.dumps(args)], caller="fit_packed",
                       env={"OPTLAB_CACHE_DIR": "off"}, drop=("PYTEST_CURRENT_TEST",))
  results["load_1min_end"] = os.getloadavg()[0]
  for path in paths:
    results[f"ratio_{path}_compile_tree_over_packed"] = (
        results[f"{path}_tree_compile_s"] / results[f"{path}_packed_compile_s"])
  for path in paths:
    results[f"ratio_{path}_step_tree_over_packed"] = (
        results[f"{path}_tree_ms_per_step"] / results[f"{path}_packed_ms_per_step"])
  return results


if __name__ == "__main__":
  arguments = json.loads(sys.argv[1])
  arguments["paths"] = tuple(arguments["paths"])
  print(json.dumps(measure(**arguments)))
