"""Optimizer updates against the machine's streaming bandwidth, measured in the same run.

An update of one large float32 leaf is bandwidth-bound: it must read and write
each of its arrays once. Adam reads θ, g, m, v (16 B) and writes θ, m, v (12 B):
28 bytes per parameter; SGD with momentum 20. The benchmark measures the
bandwidth with a triad ``a ← s·a + b`` (12 bytes per element, in place, the
best of repeats, under ``jit`` with donated buffers, and with PyTorch's
``torch.add(b, a, alpha=s, out=a)`` when torch is installed: the larger is the
machine's figure), then times each update under ``jit`` with donated buffers and
reports ``bytes / seconds / bandwidth``. Triads and updates alternate, so both
see the same load.

Why XLA:CPU stops near 0.6-0.7 with its default flags: it compiles Adam into
three loops (m' from m, g; v' from v, g; θ' from θ, m', v'), 40 bytes per
parameter where 28 are needed (``jax.jit(step).lower(...).compile().as_text()``
shows three ``kLoop`` fusions, each split in two for the two cores:
``outer_dimension_partitions=["2"]``); the loops are vectorized (AVX2) and
threaded, so the lost fraction is the extra memory traffic. XLA:CPU's
multi-output fusion pass (off by default; ``XLA_FLAGS=--xla_backend_extra_options=
xla_cpu_use_multi_output_fusion``) merges loops that read the same arrays; with
it on, optlab's Adam computes its direction from the old moments (see
``optlab.optim._fusion``) and the update is one loop over memory. The benchmark
measures both: this process as it is, and a child process with the option on.

Measured on 2 cores (100M parameters, load ~1; optlab/benchmarks/README.md): Adam
0.68 of the triad by default, 1.20 with the option (torch's fused Adam 1.08-1.25).
Fractions above 1 mean Adam's mix (four streams read, three written in place)
streams better than the triad; XLA's and torch's triads run at ~0.8 of a C triad.
Against a fused C loop in the same process, Adam reaches 0.60 by default and 0.90
with the option.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable

import numpy as np

from optlab.benchmarks import _torch
from optlab.benchmarks._child import run_child

DEFAULT_SIZE = 100_000_000
QUICK_SIZE = 25_000_000  # OPTLAB_BENCH_QUICK=1: fits a small machine's memory and time
# A GPU streams 100M parameters' 2.8 GB in under a millisecond, where the ~0.05 ms of a
# Python call would show: 400M (11.2 GB per Adam update, ~35 GB in all) on accelerators.
ACCELERATOR_SIZE = 400_000_000
BYTES_PER_PARAM = {"adam": 28, "adamw": 28, "sgd_momentum": 20, "optax_adam": 28,
                   "torch_adam_fused": 28}


def _load() -> float:
  return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _optimizers() -> dict[str, object]:
  import optax

  from optlab import optim

  return {
      "adam": optim.adam(1e-3),
      "adamw": optim.adamw(1e-3, weight_decay=1e-4),
      "sgd_momentum": optim.sgd(1e-2, momentum=0.9),
      "optax_adam": optax.adam(1e-3),
  }


def _alternate(fns: dict[str, Callable[[], None]], repeats: int,
               warmup: int = 2) -> dict[str, float]:
  """Best-of-`repeats` seconds of each function, the functions taking turns."""
  for _ in range(warmup):
    for fn in fns.values():
      fn()
  best = dict.fromkeys(fns, float("inf"))
  for _ in range(repeats):
    for name, fn in fns.items():
      start = time.perf_counter()
      fn()
      best[name] = min(best[name], time.perf_counter() - start)
  return best


def _xla_triad(size: int) -> tuple[Callable[[], None], object]:
  import jax
  import jax.numpy as jnp

  triad = jax.jit(lambda a, b: a * jnp.float32(1.0001) + b, donate_argnums=(0,))
  holder = {"a": jnp.ones(size, jnp.float32), "b": jnp.full(size, 1e-3, jnp.float32)}

  def run():
    holder["a"] = triad(holder["a"], holder["b"])
    holder["a"].block_until_ready()

  return run, holder


def _torch_triad(size: int) -> Callable[[], None] | None:
  if not _torch.available():
    return None
  import torch

  device = _torch.device()
  a, b = torch.ones(size, device=device), torch.full((size,), 1e-3, device=device)

  def run():
    torch.add(b, a, alpha=1.0001, out=a)

  return _torch.synchronized(run)


def _count_loops(compiled_text: str, size: int) -> int:
  entry = compiled_text[compiled_text.index("ENTRY"):]
  return sum(1 for line in entry.splitlines()
             if " fusion(" in line and f"f32[{size}]" in line.split(" fusion(")[0])


def _jax_update(tx, size: int) -> tuple[Callable[[], None], int]:
  """The jitted, donating update of one `size` leaf, and the loops XLA compiled it into."""
  import jax
  import jax.numpy as jnp
  import optax

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  params = jnp.ones(size, jnp.float32)
  holder = {"params": params, "state": tx.init(params),
            "grads": jnp.full(size, 1e-3, jnp.float32)}
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(
      holder["params"], holder["state"], holder["grads"]).compile()

  def run():
    holder["params"], holder["state"] = compiled(holder["params"], holder["state"],
                                                 holder["grads"])
    holder["params"].block_until_ready()

  return run, _count_loops(compiled.as_text(), size)


def _torch_update(size: int) -> Callable[[], None] | None:
  if not _torch.available():
    return None
  import torch

  device = _torch.device()
  param = torch.nn.Parameter(torch.ones(size, device=device))
  param.grad = torch.full((size,), 1e-3, device=device)
  optimizer = torch.optim.Adam([param], lr=1e-3, fused=True)
  return _torch.synchronized(optimizer.step)


def fusion_count(tx, size: int = 4096) -> int:
  """How many loops over the parameter XLA compiles the jitted update of `tx` into."""
  import jax
  import optax

  spec = jax.ShapeDtypeStruct((size,), np.float32)

  def step(params, state, grads):
    updates, state = tx.update(grads, state, params)
    return optax.apply_updates(params, updates), state

  state = jax.eval_shape(tx.init, spec)
  compiled = jax.jit(step, donate_argnums=(0, 1)).lower(spec, state, spec).compile()
  return _count_loops(compiled.as_text(), size)


def measure(size: int, repeats: int, torch_baseline: bool = True) -> dict[str, float]:
  """This process's measurements: bandwidth, then each update's seconds and fraction."""
  import gc

  from optlab.optim import _fusion

  results: dict[str, float] = {"size": float(size), "load_1min": _load(),
                               "multi_output_fusion": float(_fusion.single_pass_updates())}
  triad, triad_arrays = _xla_triad(size)
  torch_triad = _torch_triad(size) if torch_baseline else None
  triads = {"xla_triad": triad} | ({"torch_triad": torch_triad} if torch_triad else {})
  best = _alternate(triads, repeats)
  updates = {}
  for name, tx in _optimizers().items():
    run, loops = _jax_update(tx, size)
    results[f"{name}_loops"] = float(loops)
    timed = _alternate({"xla_triad": triad, name: run}, repeats)
    best["xla_triad"] = min(best["xla_triad"], timed["xla_triad"])
    updates[name] = timed[name]
    del run
    gc.collect()
  torch_step = _torch_update(size) if torch_baseline else None
  if torch_step is not None:
    timed = _alternate({"xla_triad": triad, "torch_adam_fused": torch_step}, repeats)
    best["xla_triad"] = min(best["xla_triad"], timed["xla_triad"])
    updates["torch_adam_fused"] = timed["torch_adam_fused"]
  del triad_arrays
  bandwidth = max(12 * size / seconds for seconds in best.values())
  for name, seconds in best.items():
    results[f"{name}_gb_per_s"] = 12 * size / seconds / 1e9
  results["bandwidth_gb_per_s"] = bandwidth / 1e9
  for name, seconds in updates.items():
    results[f"{name}_ms"] = seconds * 1e3
  results["load_1min_end"] = _load()
  for name, seconds in updates.items():
    results[f"ratio_{name}_of_bandwidth"] = BYTES_PER_PARAM[name] * size / seconds / bandwidth
  return results


def _child(size: int, repeats: int, fusion: bool) -> dict[str, float]:
  """The same measurements in a fresh process with XLA:CPU's multi-output fusion on or off."""
  from optlab import _xla_flags

  flags = os.environ.get("XLA_FLAGS", "")
  return run_child("optlab.benchmarks.bandwidth", [str(size), str(repeats)],
                   caller="update_bandwidth", env={
                       "XLA_FLAGS": (_xla_flags.flags_with_multi_output_fusion(flags) if fusion
                                     else _xla_flags.flags_without_multi_output_fusion(flags)),
                       _xla_flags.ENV_VAR: "1" if fusion else "0",
                       "JAX_PLATFORMS": "cpu"})


def update_bandwidth(size: int | None = None, repeats: int = 7, *,
                     multi_output_fusion: bool = True,
                     torch_baseline: bool = True) -> dict[str, float]:
  """Each optimizer's update of one `size`-parameter float32 leaf as a fraction of bandwidth.

  Args:
    size: parameters (default 100M on a CPU, 400M on an accelerator; 25M with
      ``OPTLAB_BENCH_QUICK=1``).
    repeats: timed calls of each update (the best is kept).
    multi_output_fusion: also measure in a child process with XLA:CPU's
      multi-output fusion set the other way from this process (optlab turns it
      on by default; skipped when the backend is not a CPU).
    torch_baseline: also time PyTorch's triad and fused Adam (when installed).

  Returns:
    Seconds, bandwidths, loop counts and the ``ratio_*_of_bandwidth`` fractions;
    keys of the child process's measurements start with ``mof_`` (fusion on
    there) or ``xla_default_`` (fusion off there).
  """
  import jax

  if size is None:
    if os.environ.get("OPTLAB_BENCH_QUICK"):
      size = QUICK_SIZE
    else:
      size = DEFAULT_SIZE if jax.default_backend() == "cpu" else ACCELERATOR_SIZE
  results = measure(size, repeats, torch_baseline)
  if multi_output_fusion and jax.default_backend() == "cpu":
    fusion = not results["multi_output_fusion"]
    child = _child(size, repeats, fusion)
    prefix = "mof_" if fusion else "xla_default_"
    ratios = {k: v for k, v in results.items() if k.startswith("ratio")}
    results = {k: v for k, v in results.items() if not k.startswith("ratio")}
    results |= {f"{prefix}{k}": v for k, v in child.items() if not k.startswith("ratio")}
    results |= {f"ratio_{prefix}{k[len('ratio_'):]}": v for k, v in child.items()
                if k.startswith("ratio")} | ratios
  return results


if __name__ == "__main__":
  print(json.dumps(measure(int(sys.argv[1]), int(sys.argv[2]))))
