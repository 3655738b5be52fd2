"""Training throughput of optlab's engine against PyTorch eager on the same processor.

(a) dispatch-bound: MLP 64-128-10 on digits, batch 64, one whole epoch;
(b) compute-bound: MLP 784-512-512-10, batch 256, steps per second;
(c) the scanned epoch against a Python loop of the same jitted step.

PyTorch is optional: ``pip install torch==2.13.0`` (the CPU build). Without it,
(a) and (b) report optlab's numbers only. When JAX runs on a GPU, PyTorch runs on
CUDA (``optlab.benchmarks._torch``).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import optax
from flax import nnx

from optlab import models
from optlab.benchmarks import _torch
from optlab.benchmarks._timing import best_time
from optlab.train import TrainState, learning_rate_scale, split_model
from optlab.train import steps as steps_lib


def _digits() -> tuple[np.ndarray, np.ndarray]:
  from optlab import data

  digits = data.digits(flatten=True)
  x = data.Standardizer.fit(digits.x).apply(digits.x).astype(np.float32)
  return x, digits.y.astype(np.int32)


def _batches(x, y, batch_size: int, steps: int | None) -> list[tuple[Any, Any]]:
  """The batches of one epoch's order (key 0), repeated or cut to `steps` when given."""
  import jax

  indices = np.asarray(steps_lib.epoch_batch_indices(jax.random.key(0), x.shape[0], batch_size))
  if steps is not None:
    indices = np.resize(indices, (steps, batch_size))
  return [(x[i], y[i]) for i in indices]


def _jax_epoch(sizes, x, y, batch_size, *, scan: bool, steps: int | None = None,
               skip_nonfinite: bool = True, packed: bool = False):
  """Returns a function that runs one epoch (or `steps` steps) with optlab's step.

  With `packed`, parameters and Adam's state live in one contiguous buffer, as
  with ``fit(packed=True)`` (see ``optlab.train.packing``).
  """
  import jax
  import jax.numpy as jnp

  from optlab.optim.packed import Packing
  from optlab.optim.packed import packed as packed_transformation

  model = models.MLP(sizes[0], list(sizes[1:-1]), sizes[-1], rngs=nnx.Rngs(0))
  tx = optax.chain(optax.adam(1e-3), learning_rate_scale())
  graphdef, _, params, rest = split_model(model)
  packing = None
  if packed:
    packing = Packing.of(params)
    tx, params = packed_transformation(tx, packing), packing.pack(params)
  state = TrainState(jnp.zeros([], jnp.int32), params, rest, tx.init(params),
                     jnp.zeros([], jnp.int32))
  step = steps_lib.make_train_step(graphdef, tx, steps_lib.cross_entropy,
                                   skip_nonfinite=skip_nonfinite, packing=packing)
  x, y = jax.device_put(x), jax.device_put(y)
  key = jax.random.key(0)
  holder = {"state": state}
  if scan:
    epoch = jax.jit(steps_lib.make_scan_epoch(step, batch_size), donate_argnums=(0,))

    def run():
      holder["state"], losses = epoch(holder["state"], x, y, key)
      losses.block_until_ready()
  else:
    flat = steps_lib.FlatStateStep(step, state)  # as fit's Python loop calls its step
    holder["state"] = flat.flatten(state)
    batches = _batches(x, y, batch_size, steps)

    def run():
      for xb, yb in batches:
        holder["state"], loss = flat(holder["state"], xb, yb)
      loss.block_until_ready()

  return run


def _plain_jax_steps(sizes, x, y, batch_size, *, steps: int):
  """The same steps in plain JAX + optax: the yardstick for "the engine adds no overhead".

  A pure MLP function (ReLU, He-initialized), ``jax.value_and_grad``,
  ``optax.adam(1e-3)`` and ``optax.apply_updates`` in one jitted step with donated
  buffers: no train state, no non-finite check, no learning-rate scale, no Flax.
  """
  import jax
  import jax.numpy as jnp

  rng = np.random.default_rng(0)
  params = [(jnp.asarray(rng.normal(size=(a, b)) * np.sqrt(2 / a), jnp.float32),
             jnp.zeros(b, jnp.float32)) for a, b in itertools.pairwise(sizes)]
  tx = optax.adam(1e-3)

  def loss_fn(params, xb, yb):
    h = xb
    for w, b in params[:-1]:
      h = jax.nn.relu(h @ w + b)
    w, b = params[-1]
    return optax.softmax_cross_entropy_with_integer_labels(h @ w + b, yb).mean()

  def step(params, opt_state, xb, yb):
    loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  jitted = jax.jit(step, donate_argnums=(0, 1))
  batches = _batches(jax.device_put(x), jax.device_put(y), batch_size, steps)
  holder = {"params": params, "opt_state": tx.init(params)}

  def run():
    for xb, yb in batches:
      holder["params"], holder["opt_state"], loss = jitted(holder["params"],
                                                           holder["opt_state"], xb, yb)
    loss.block_until_ready()

  return run


def _torch_epoch(sizes, x, y, batch_size, *, fused: bool, steps: int | None = None):
  import torch

  device = _torch.device()
  torch.manual_seed(0)
  layers = []
  for a, b in itertools.pairwise(sizes):
    layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
  model = torch.nn.Sequential(*layers[:-1]).to(device)
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused, foreach=not fused)
  loss_fn = torch.nn.CrossEntropyLoss()
  xt, yt = torch.from_numpy(x).to(device), torch.from_numpy(y).long().to(device)
  n = (x.shape[0] // batch_size) * batch_size
  order = torch.randperm(x.shape[0])[:n].reshape(-1, batch_size).to(device)
  if steps is not None:
    order = order.repeat((steps + len(order) - 1) // len(order), 1)[:steps]
  batches = [(xt[i], yt[i]) for i in order]

  def run():
    for xb, yb in batches:
      optimizer.zero_grad(set_to_none=True)
      loss = loss_fn(model(xb), yb)
      loss.backward()
      optimizer.step()

  return _torch.synchronized(run)


def _interleaved_best(runners: dict[str, Any], rounds: int, repeats: int) -> dict[str, float]:
  """Best time of each runner over `rounds` rounds that take turns (load drifts hit all alike)."""
  best = dict.fromkeys(runners, float("inf"))
  for _ in range(rounds):
    for name, run in runners.items():
      best[name] = min(best[name], best_time(run, repeats=repeats))
  return best


def small_mlp_epoch(repeats: int = 10, rounds: int = 5) -> dict[str, float]:
  """(a) MLP 64-128-10 on digits, batch 64, one epoch: optlab's scan epoch vs torch eager.

  Two optlab rows: the default train state (a tree of parameters) and the packed
  one (``fit(packed=True)``: parameters and Adam's state in one buffer each). The
  runners take turns for `rounds` rounds of `repeats` epochs; each keeps its best.
  """
  x, y = _digits()
  sizes = (64, 128, 10)
  runners = {"optlab_scan_epoch_s": _jax_epoch(sizes, x, y, 64, scan=True),
             "optlab_packed_scan_epoch_s": _jax_epoch(sizes, x, y, 64, scan=True, packed=True)}
  torch_available = _torch.available()
  if torch_available:
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    runners["torch_fused_epoch_s"] = _torch_epoch(sizes, x, y, 64, fused=True)
    runners["torch_foreach_epoch_s"] = _torch_epoch(sizes, x, y, 64, fused=False)
  results = _interleaved_best(runners, rounds, repeats)
  if torch_available:
    results["ratio_vs_torch_fused"] = (
        results["torch_fused_epoch_s"] / results["optlab_scan_epoch_s"])
    results["ratio_vs_torch_foreach"] = (
        results["torch_foreach_epoch_s"] / results["optlab_scan_epoch_s"])
    results["ratio_packed_vs_torch_fused"] = (
        results["torch_fused_epoch_s"] / results["optlab_packed_scan_epoch_s"])
  return results


def large_mlp_steps(steps: int = 50, repeats: int = 2, rounds: int = 5) -> dict[str, float]:
  """(b) MLP 784-512-512-10, batch 256: steps per second, optlab vs torch fused Adam.

  optlab's rows: a Python loop of the jitted step (fit's path for data that does
  not fit on the device), with and without the non-finite skip, and the scanned
  epoch over the 8 batches of the data (fit's path when the data fits). A plain
  JAX + optax step (``_plain_jax_steps``) measures what the engine adds: the
  ``engine_*_vs_plain_jax`` ratios (1.0 = no overhead). The
  runners take turns for `rounds` rounds of `repeats` runs of `steps` steps (the
  scanned epoch: of ``ceil(steps / 8)`` epochs); each keeps its best.
  """
  rng = np.random.default_rng(0)
  batch, batches = 256, 8
  x = rng.normal(size=(batch * batches, 784)).astype(np.float32)
  y = rng.integers(0, 10, size=batch * batches).astype(np.int32)
  sizes = (784, 512, 512, 10)
  epochs = -(-steps // batches)
  scan_epoch = _jax_epoch(sizes, x, y, batch, scan=True)

  def scanned():
    for _ in range(epochs):
      scan_epoch()

  # fit's default step checks every gradient for NaN/Inf and skips a step that has one.
  runners = {"optlab": (_jax_epoch(sizes, x, y, batch, scan=False, steps=steps), steps),
             "optlab_unchecked": (_jax_epoch(sizes, x, y, batch, scan=False, steps=steps,
                                             skip_nonfinite=False), steps),
             "optlab_scan": (scanned, epochs * batches),
             "plain_jax_optax": (_plain_jax_steps(sizes, x, y, batch, steps=steps), steps)}
  torch_available = _torch.available()
  if torch_available:
    runners["torch_fused"] = (_torch_epoch(sizes, x, y, batch, fused=True, steps=steps), steps)
    runners["torch_foreach"] = (_torch_epoch(sizes, x, y, batch, fused=False, steps=steps),
                                steps)
  best = _interleaved_best({name: run for name, (run, _) in runners.items()}, rounds, repeats)
  results = {f"{name}_steps_per_s": runners[name][1] / seconds for name, seconds in best.items()}
  plain = results["plain_jax_optax_steps_per_s"]
  results["engine_vs_plain_jax"] = results["optlab_steps_per_s"] / plain
  results["engine_scan_vs_plain_jax"] = results["optlab_scan_steps_per_s"] / plain
  if torch_available:
    fused = results["torch_fused_steps_per_s"]
    results["ratio_plain_jax_vs_torch_fused"] = plain / fused
    results["ratio_unchecked_vs_torch_fused"] = results["optlab_unchecked_steps_per_s"] / fused
    results["ratio_scan_vs_torch_fused"] = results["optlab_scan_steps_per_s"] / fused
    results["ratio_vs_torch_fused"] = results["optlab_steps_per_s"] / fused
  return results


def scan_vs_loop(repeats: int = 5) -> dict[str, float]:
  """(c) a digits epoch (MLP 64-128-10, batch 64): scanned epoch vs a loop of jitted steps."""
  x, y = _digits()
  sizes = (64, 128, 10)
  scanned = best_time(_jax_epoch(sizes, x, y, 64, scan=True), repeats=repeats)
  looped = best_time(_jax_epoch(sizes, x, y, 64, scan=False), repeats=repeats)
  return {"scan_epoch_s": scanned, "loop_epoch_s": looped, "ratio_scan_speedup": looped / scanned}
