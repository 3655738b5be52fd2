"""A vectorized sweep against the same runs one after another.

64 runs (8 learning rates × 8 seeds) of an MLP 64-64-10 with SGD + momentum on
digits (standardized, batch 64, a few epochs, validation every epoch):
``optlab.tune.sweep`` as a user calls it (vmapped chunks, one per CPU core,
trained side by side from threads: ``vectorized_*``), the same call with every
run in one program and ``workers=1`` (``one_program_*``), against the same call
with ``chunk_size=1, workers=1`` (one run per program, the runs one after
another). Compilation is excluded from all of them (``sweep`` compiles ahead of
time and reports it separately) and printed on its own lines.

What bounds the ratio on a CPU (measured history and profiles in
``optlab/benchmarks/README.md``): the sequential runs already compile whole epochs
into one ``lax.scan``; inside the compiled programs a vmapped run-step costs
~0.8 of a single run's (batched products are faster, elementwise and reduction
work is not), so most of what vectorizing removes is per-run host work (state
set-up, a program call, a synchronisation and an evaluation call per epoch).
XLA:CPU runs a batched matrix product on one thread and one program's operations
one after another, but programs called from different threads run side by side,
so ``sweep`` trains one chunk per core at once (``workers``): 1.6–2.1× the one
program on 2 cores. The roofline (printed): the matrix-product FLOPs of a
run-epoch, this machine's rate for one large product (``matmul_peak_gflops``,
~210 on 2 cores), the rate the vectorized sweep reaches
(``vectorized_matmul_gflops``) and the ratio a sweep doing nothing but its
products at that peak would reach (``speedup_bound_at_matmul_peak``, 16–17×).
Then the same products as XLA:CPU runs them, and nothing else: the runs' batched
products of every step in a ``lax.scan`` per chunk, the chunks side by side as
the sweep runs them (``xla_products_*``), and the ratio a sweep would reach if
nothing but those products took time (``speedup_bound_at_xla_products``: 8.0–9.0×
on 2 cores, the products at 101–118 GFLOP/s, about half the large product's rate:
small 64-wide and 10-wide batched products). The goal of 10× is out of reach of
XLA:CPU on 2 cores even with everything but the products free (48.9× on one H200).

The all-cores child (``all_cores_*``) repeats the measurements in a process with
one CPU device per core (``--xla_force_host_platform_device_count``), where the
runs are also split over the devices (``mesh=distributed.data_mesh()``,
``sharded_*``): the older way to use every core, kept for comparison.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from optlab import models
from optlab.benchmarks._child import run_child


def _digits() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
  from optlab import data

  splits = data.train_val_test_split(data.digits(flatten=True), val_fraction=0.0,
                                     test_fraction=0.2, seed=0)
  scaler = data.Standardizer.fit(splits.train.x)
  train = scaler.apply(splits.train.x).astype(np.float32), splits.train.y.astype(np.int32)
  val = scaler.apply(splits.test.x).astype(np.float32), splits.test.y.astype(np.int32)
  return train, val


def _max_accuracy_gap(a, b) -> float:
  """Largest |Δ validation accuracy| between two sweeps' runs that both completed."""
  both = (a.status == "completed") & (b.status == "completed")
  gap = np.abs(a["val_accuracy"] - b["val_accuracy"])[both]
  return float(gap.max()) if gap.size else 0.0


def _matmul_peak_gflops(n: int = 1024, repeats: int = 5) -> float:
  """This machine's float32 matrix-product rate, GFLOP/s: an n×n×n product under ``jit``."""
  import time

  import jax
  import jax.numpy as jnp

  a = jnp.ones((n, n), jnp.float32)
  product = jax.jit(jnp.matmul)
  product(a, a).block_until_ready()
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    product(a, a).block_until_ready()
    best = min(best, time.perf_counter() - start)
  return 2 * n**3 / best / 1e9


def _matmul_flop_per_run_epoch(examples: int, batch_size: int, hidden: int) -> float:
  """Matrix-product FLOPs of one run's epoch of the MLP 64-hidden-10 (SGD, no input gradient).

  Per step of B examples: forward 2B(64h + 10h), weight gradients as much again,
  and the hidden layer's input gradient 2B·10h (the data's is not taken).
  """
  per_step = 4 * batch_size * (64 * hidden + hidden * 10) + 2 * batch_size * 10 * hidden
  return (examples // batch_size) * per_step


def _products_only_seconds(num_runs: int, steps: int, batch_size: int, hidden: int,
                           workers: int, repeats: int = 5) -> float:
  """Seconds XLA:CPU takes for nothing but the sweep's matrix products.

  The runs' batched products of `steps` steps of the MLP 64-hidden-10 (forward, both
  weight gradients, the hidden layer's input gradient; a tiny update keeps each step
  dependent on the last), in one ``lax.scan`` per chunk, the runs split into
  `workers` chunks called from as many threads, as ``sweep`` runs them: what the
  vectorized sweep would take if everything else (data, loss, updates, checks,
  evaluation, host work) cost nothing.
  """
  import time
  from concurrent.futures import ThreadPoolExecutor

  import jax
  import jax.numpy as jnp

  def products(w1, w2, x):
    def step(carry, _):
      w1, w2 = carry
      h = jnp.einsum("rbi,rih->rbh", x, w1)
      out = jnp.einsum("rbh,rho->rbo", h, w2)
      dw2 = jnp.einsum("rbh,rbo->rho", h, out)
      dh = jnp.einsum("rbo,rho->rbh", out, w2)
      dw1 = jnp.einsum("rbi,rbh->rih", x, dh)
      return (w1 - 1e-9 * dw1, w2 - 1e-9 * dw2), None

    return jax.lax.scan(step, (w1, w2), None, length=steps)[0]

  chunk = -(-num_runs // workers)
  rng = np.random.default_rng(0)
  args = [tuple(jnp.asarray(rng.normal(size=shape).astype(np.float32) * 0.1)
                for shape in ((chunk, 64, hidden), (chunk, hidden, 10), (chunk, batch_size, 64)))
          for _ in range(workers)]
  compiled = jax.jit(products).lower(*args[0]).compile()
  run = lambda a: jax.block_until_ready(compiled(*a))  # noqa: E731
  with ThreadPoolExecutor(workers) as pool:
    list(pool.map(run, args))
    best = float("inf")
    for _ in range(repeats):
      start = time.perf_counter()
      list(pool.map(run, args))
      best = min(best, time.perf_counter() - start)
  return best


def _measure(num_learning_rates: int, num_seeds: int, epochs: int, hidden: int,
             batch_size: int, repeats: int, mesh: bool = False) -> dict[str, float]:
  from optlab.train import distributed
  from optlab.tune.sweep import sweep

  train, val = _digits()
  learning_rates = np.geomspace(1e-3, 0.3, num_learning_rates).tolist()

  def model_fn(rngs):
    return models.MLP(64, [hidden], 10, rngs=rngs)

  def run(chunk_size, mesh=None, workers=None):
    return sweep(model_fn, "sgd", train, validation=val,
                 hyperparams={"learning_rate": learning_rates}, fixed={"momentum": 0.9},
                 seeds=num_seeds, epochs=epochs, batch_size=batch_size, chunk_size=chunk_size,
                 mesh=mesh, workers=workers)

  num_runs = num_learning_rates * num_seeds
  if mesh:  # every run on one of the devices: the vectorized run axis split over all cores
    sharded = [run(num_runs, distributed.data_mesh()) for _ in range(repeats)]
  vectorized = [run(None) for _ in range(repeats)]  # default chunks: one per core on a CPU
  one_program = [run(num_runs, workers=1) for _ in range(repeats)]
  sequential = [run(1, workers=1) for _ in range(repeats)]
  vectorized_s = min(r.train_seconds for r in vectorized)
  one_program_s = min(r.train_seconds for r in one_program)
  sequential_s = min(r.train_seconds for r in sequential)
  vectorized, sequential = vectorized[0], sequential[0]
  results = {
      "runs": float(num_runs),
      "epochs": float(epochs),
      "vectorized_compile_s": vectorized.compile_seconds,
      "sequential_compile_s": sequential.compile_seconds,
      "vectorized_train_s": vectorized_s,
      "sequential_train_s": sequential_s,
      "sequential_ms_per_run_epoch": 1e3 * sequential_s / (num_runs * epochs),
      "vectorized_ms_per_run_epoch": 1e3 * vectorized_s / (num_runs * epochs),
      "vectorized_chunks": float(vectorized.num_chunks),
      "one_program_ms_per_run_epoch": 1e3 * one_program_s / (num_runs * epochs),
      "max_val_accuracy_difference_one_program": _max_accuracy_gap(one_program[0], sequential),
      "max_val_accuracy_difference": _max_accuracy_gap(vectorized, sequential),
  }
  # The roofline: what the ratio would be if the vectorized sweep did nothing but its
  # matrix products, at this machine's measured rate for one large product.
  peak = _matmul_peak_gflops()
  flop = _matmul_flop_per_run_epoch(train[0].shape[0], batch_size, hidden)
  products_s = num_runs * epochs * flop / (peak * 1e9)
  results["matmul_peak_gflops"] = peak
  results["matmul_mflop_per_run_epoch"] = flop / 1e6
  results["vectorized_matmul_gflops"] = num_runs * epochs * flop / vectorized_s / 1e9
  results["speedup_bound_at_matmul_peak"] = sequential_s / products_s
  # The same products as XLA:CPU runs them (chunks side by side, as the sweep): the
  # ratio the vectorized sweep would reach if nothing but its products took time.
  from optlab.tune.sweep import default_workers

  steps = train[0].shape[0] // batch_size
  threads = min(vectorized.num_chunks, default_workers())  # as the sweep ran its chunks
  xla_products_s = epochs * _products_only_seconds(num_runs, steps, batch_size, hidden, threads)
  results["xla_products_ms_per_run_epoch"] = 1e3 * xla_products_s / (num_runs * epochs)
  results["xla_products_gflops"] = num_runs * epochs * flop / xla_products_s / 1e9
  results["speedup_bound_at_xla_products"] = sequential_s / xla_products_s
  results["ratio_one_program_speedup"] = sequential_s / one_program_s
  results["ratio_vectorized_speedup"] = sequential_s / vectorized_s
  if mesh:
    sharded_s = min(r.train_seconds for r in sharded)
    results["sharded_max_val_accuracy_difference"] = _max_accuracy_gap(sharded[0], sequential)
    results["devices"] = float(len(distributed.data_mesh().devices.flat))
    results["sharded_train_s"] = sharded_s
    results["sharded_ms_per_run_epoch"] = 1e3 * sharded_s / (num_runs * epochs)
    results["ratio_sharded_speedup"] = sequential_s / sharded_s
  return results


def _all_cores_child(arguments: dict[str, int]) -> dict[str, float]:
  """The measurements again in a process with one CPU device per core, runs split over them."""
  flags = os.environ.get("XLA_FLAGS", "")
  count = f"--xla_force_host_platform_device_count={os.cpu_count()}"
  return run_child("optlab.benchmarks.sweeps", [json.dumps(arguments)],
                   caller="sweep_vectorized_vs_sequential",
                   env={"XLA_FLAGS": f"{flags} {count}".strip(), "JAX_PLATFORMS": "cpu"})


def sweep_vectorized_vs_sequential(
    num_learning_rates: int = 8,
    num_seeds: int = 8,
    epochs: int = 3,
    hidden: int = 64,
    batch_size: int = 64,
    repeats: int = 3,
    all_cores: bool = True,
) -> dict[str, float]:
  """Seconds of the vectorized sweep and of the same runs in sequence, and their ratio.

  Each is run `repeats` times (compiled once: later calls reuse the executable)
  and the fastest training time is kept. With `all_cores` (on a CPU with more
  than one core and one JAX device), the measurements are repeated in a child
  process that has one CPU device per core, where the vectorized sweep also runs
  with its runs split over the devices (``all_cores_*`` keys; its ratio against
  the child's own sequential runs is printed last).
  """
  import jax

  arguments = {"num_learning_rates": num_learning_rates, "num_seeds": num_seeds,
               "epochs": epochs, "hidden": hidden, "batch_size": batch_size,
               "repeats": repeats}
  results = _measure(**arguments)
  if (all_cores and jax.default_backend() == "cpu" and (os.cpu_count() or 1) > 1
      and jax.device_count() == 1):
    child = _all_cores_child(arguments)
    ratios = {k: v for k, v in results.items() if k.startswith("ratio")}
    results = {k: v for k, v in results.items() if not k.startswith("ratio")}
    results |= {f"all_cores_{k}": v for k, v in child.items() if not k.startswith("ratio")}
    results |= ratios | {f"ratio_all_cores_{k[len('ratio_'):]}": v for k, v in child.items()
                         if k.startswith("ratio")}
  return results


if __name__ == "__main__":  # the all-cores child: one JSON line of measurements
  print(json.dumps(_measure(**json.loads(sys.argv[1]), mesh=True)))
