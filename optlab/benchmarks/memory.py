"""Memory of a training step per optimizer, relative to SGD; accumulation and bfloat16.

Two tables, both from the compiler, never from running anything (deterministic):

1. **Per optimizer** (MLP 784-512-512-10, batch 256, float32, fit's step: the
   optimizer chained with the learning-rate scale, the non-finite check, the state
   donated): the optimizer state's bytes per parameter (``jax.eval_shape(tx.init,
   params)``) and the step's peak memory, each relative to SGD.
2. **Larger than memory at full batch** (Adam on MLP 784-1024-1024-10 with an
   effective batch of 4096): the full-batch step against gradient accumulation
   (``accumulate_steps`` micro-batches summed inside the step by a ``lax.scan``)
   and bfloat16 compute with float32 master weights, relative to the full-batch
   float32 step.

Peak memory is ``arguments + outputs − aliased + temporaries`` from
``jax.jit(step).lower(...).compile().memory_analysis()``: everything the step's
buffers occupy, with the donated state counted once (outputs written in place of
their inputs). It is an upper bound of the live set XLA's buffer assignment
reaches. XLA's own ``peak_memory_in_bytes`` is not used: on CPU it reports about
the argument size alone, whatever the temporaries.

On CPU, XLA computes bfloat16 dot products in float32 (it converts the operands
and rounds the result), so bfloat16 saves memory (stored activations and the
compute copy of the weights are half the size) but not time; on GPUs and TPUs the
products run in bfloat16.

Measured on CPU (jax 0.10.2, optax 0.2.8; the numbers are the compiler's, so any
CPU gives them): Adam's step peaks at 1.27× SGD's, Shampoo 4.5×, SOAP 4.4×, Muon
1.9× (Newton–Schulz temporaries), Adafactor 0.90× (0.05 B/param of state). Two
registry optimizers keep buffers their defaults never use, so that the
hyperparameter can be injected and swept later: ``sgd`` keeps its velocity (4
B/param) at ``momentum=0`` (``gd`` is the stateless form), and ``rmsprop`` keeps a
momentum buffer and the centered mean (12 B/param where 4 are used). Accumulating
16 micro-batches of 256 instead of one batch of 4096 cuts Adam's peak to 0.68×;
bfloat16 raises it on CPU (1.12× at full batch; see above).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from optlab import models, optim
from optlab.train import steps as steps_lib
from optlab.train.state import TrainState, learning_rate_scale, split_model

# (label, registry name, hyperparameters): the optimizers of the per-optimizer table.
OPTIMIZERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("sgd", "sgd", {}),
    ("gd (stateless sgd)", "gd", {}),
    ("momentum", "sgd", {"momentum": 0.9}),
    ("adam", "adam", {}),
    ("adamw", "adamw", {}),
    ("adagrad", "adagrad", {}),
    ("rmsprop", "rmsprop", {}),
    ("lion", "optax.lion", {}),
    ("adafactor", "optax.adafactor", {}),
    ("shampoo", "shampoo", {}),
    ("soap", "soap", {}),
    ("muon", "muon", {}),
    ("mars", "mars", {}),
    ("adam_mini", "adam_mini", {}),
    ("cautious_adamw", "cautious_adamw", {}),
)

MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class StepMemory:
  """Byte counts of one compiled step, from ``Compiled.memory_analysis()``."""

  argument: int
  output: int
  alias: int
  temp: int

  @property
  def peak(self) -> int:
    """``argument + output − alias + temp``: the donated state counted once."""
    return self.argument + self.output - self.alias + self.temp


def tree_bytes(tree: Any) -> int:
  """Total bytes of the array leaves of `tree` (arrays or ``ShapeDtypeStruct``)."""
  return sum(int(leaf.size) * jnp.dtype(leaf.dtype).itemsize for leaf in jax.tree.leaves(tree))


def optimizer_state_bytes(tx: optax.GradientTransformation, params: Any) -> int:
  """Bytes of ``tx.init(params)``, found without allocating it (``jax.eval_shape``)."""
  return tree_bytes(jax.eval_shape(tx.init, params))


def step_memory(
    model: nnx.Module,
    tx: optax.GradientTransformation,
    feature_shape: Sequence[int],
    batch_size: int,
    *,
    accumulate_steps: int = 1,
    compute_dtype: Any = None,
) -> StepMemory:
  """Memory of fit's compiled train step for `model` and `tx` on float inputs.

  The step is ``make_train_step`` of ``chain(tx, learning_rate_scale())`` with the
  non-finite check, jitted with the state donated (as ``fit`` runs it), lowered
  on abstract arguments (nothing is allocated) for a batch of
  ``batch_size × accumulate_steps`` float32 examples of `feature_shape` and
  integer labels (cross-entropy loss).

  Args:
    model: an NNX classifier; it may be abstract (``nnx.eval_shape``).
    tx: the optimizer.
    feature_shape: the shape of one input example, e.g. ``(784,)``.
    batch_size: examples per (micro-)batch.
    accumulate_steps: micro-batches per optimizer step (see ``make_train_step``).
    compute_dtype: e.g. ``jnp.bfloat16`` for mixed precision.

  Returns:
    A :class:`StepMemory`.
  """
  full_tx = optax.chain(tx, learning_rate_scale())
  graphdef, _, params, rest = split_model(model)
  abstract = jax.eval_shape(lambda: (params, rest))
  scalar = jax.ShapeDtypeStruct((), jnp.int32)
  state = TrainState(scalar, abstract[0], abstract[1], jax.eval_shape(full_tx.init, params),
                     scalar)
  n = batch_size * accumulate_steps
  x = jax.ShapeDtypeStruct((n, *feature_shape), jnp.float32)
  y = jax.ShapeDtypeStruct((n,), jnp.int32)
  step = steps_lib.make_train_step(graphdef, full_tx, steps_lib.cross_entropy,
                                   accumulate_steps=accumulate_steps,
                                   compute_dtype=compute_dtype)
  stats = jax.jit(step, donate_argnums=(0,)).lower(state, x, y).compile().memory_analysis()
  return StepMemory(argument=stats.argument_size_in_bytes, output=stats.output_size_in_bytes,
                    alias=stats.alias_size_in_bytes, temp=stats.temp_size_in_bytes)


def _mlp(sizes: Sequence[int]) -> nnx.Module:
  """An abstract (never allocated) MLP with these layer widths."""
  return nnx.eval_shape(lambda: models.MLP(sizes[0], list(sizes[1:-1]), sizes[-1],
                                           rngs=nnx.Rngs(0)))


def optimizer_table(
    sizes: Sequence[int] = (784, 512, 512, 10),
    batch_size: int = 256,
    optimizers: Sequence[tuple[str, str, dict[str, Any]]] = OPTIMIZERS,
) -> list[dict[str, Any]]:
  """One row per optimizer: state bytes per parameter and step memory, relative to the first.

  The first optimizer (SGD in :data:`OPTIMIZERS`) is the baseline of the ratios.
  Each row: ``name``, ``state_bytes_per_param``, ``state_ratio``, ``argument_mib``,
  ``temp_mib``, ``peak_mib``, ``peak_ratio``.
  """
  model = _mlp(sizes)
  _, _, params, _ = split_model(model)
  num_params = sum(int(p.size) for p in jax.tree.leaves(params))
  rows = []
  for label, name, hyperparams in optimizers:
    tx = optim.get(name, **hyperparams)
    state_bytes = optimizer_state_bytes(tx, params)
    memory = step_memory(model, tx, sizes[:1], batch_size)
    rows.append({"name": label, "state_bytes_per_param": state_bytes / num_params,
                 "argument_mib": memory.argument / MiB, "temp_mib": memory.temp / MiB,
                 "peak_mib": memory.peak / MiB})
  base = rows[0]
  for row in rows:
    row["state_ratio"] = (row["state_bytes_per_param"] / base["state_bytes_per_param"]
                          if base["state_bytes_per_param"] else float("nan"))
    row["peak_ratio"] = row["peak_mib"] / base["peak_mib"]
  return rows


def accumulation_table(
    sizes: Sequence[int] = (784, 1024, 1024, 10),
    batch_size: int = 4096,
    accumulate_steps: int = 16,
    optimizer: str = "adam",
    compute_dtypes: Sequence[Any] = (None, jnp.bfloat16),
) -> list[dict[str, Any]]:
  """Full batch against accumulation and bfloat16 at the same effective batch.

  Rows: the full batch in each of `compute_dtypes` (None: float32), then
  `accumulate_steps` micro-batches of ``batch_size // accumulate_steps`` in each.
  Each row: ``name``, ``argument_mib``, ``temp_mib``, ``peak_mib``, ``peak_ratio``
  (to the first row).
  """
  if batch_size % accumulate_steps:
    raise ValueError(f"accumulation_table: batch_size {batch_size} is not a multiple of "
                     f"accumulate_steps {accumulate_steps}")
  model = _mlp(sizes)
  tx = optim.get(optimizer)
  micro = batch_size // accumulate_steps
  def short(dtype):
    return "f32" if dtype is None else {"bfloat16": "bf16"}.get(jnp.dtype(dtype).name,
                                                                jnp.dtype(dtype).name)

  variants = [(f"{optimizer} {short(d)}, batch {batch_size}", batch_size, 1, d)
              for d in compute_dtypes] + [
      (f"{optimizer} {short(d)}, {accumulate_steps}×{micro}", micro, accumulate_steps, d)
      for d in compute_dtypes]
  rows = []
  for label, micro_batch, steps, dtype in variants:
    memory = step_memory(model, tx, sizes[:1], micro_batch, accumulate_steps=steps,
                         compute_dtype=dtype)
    rows.append({"name": label, "argument_mib": memory.argument / MiB,
                 "temp_mib": memory.temp / MiB, "peak_mib": memory.peak / MiB})
  for row in rows:
    row["peak_ratio"] = row["peak_mib"] / rows[0]["peak_mib"]
  return rows


def format_table(rows: Sequence[dict[str, Any]]) -> str:
  """A Markdown table of `rows` (the columns of the first row, ratios last)."""
  headers = {"name": "", "state_bytes_per_param": "state B/param", "state_ratio": "state / SGD",
             "argument_mib": "arguments MiB", "temp_mib": "temp MiB", "peak_mib": "peak MiB",
             "peak_ratio": "peak ratio"}
  keys = [k for k in rows[0] if not k.endswith("ratio")] + [
      k for k in rows[0] if k.endswith("ratio")]
  lines = ["| " + " | ".join(headers.get(k, k) for k in keys) + " |",
           "|" + "|".join("---" if k == "name" else "---:" for k in keys) + "|"]
  for row in rows:
    cells = [row[k] if isinstance(row[k], str) else
             (f"{row[k]:.2f}x" if k.endswith("ratio") else f"{row[k]:.2f}") for k in keys]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def memory(optimizers: Sequence[tuple[str, str, dict[str, Any]]] = OPTIMIZERS,
           sizes: Sequence[int] = (784, 512, 512, 10), batch_size: int = 256,
           accumulation_sizes: Sequence[int] = (784, 1024, 1024, 10),
           accumulation_batch: int = 4096, accumulate_steps: int = 16) -> dict[str, float]:
  """``optlab bench memory``: both tables as flat values, the ratios last.

  Keys: ``state_B_per_param/<optimizer>``, ``peak_MiB/<optimizer>``, then
  ``peak_MiB/<variant>`` of the accumulation table, then ``ratio_state/<optimizer>``
  and ``ratio_peak/<optimizer>`` (to SGD) and ``ratio_peak/<variant>`` (to the
  full-batch float32 step).
  """
  rows = optimizer_table(sizes, batch_size, optimizers)
  accumulated = accumulation_table(accumulation_sizes, accumulation_batch, accumulate_steps)
  values: dict[str, float] = {}
  for row in rows:
    values[f"state_B_per_param/{row['name']}"] = row["state_bytes_per_param"]
    values[f"peak_MiB/{row['name']}"] = row["peak_mib"]
  for row in accumulated:
    values[f"peak_MiB/{row['name']}"] = row["peak_mib"]
  for row in rows:
    values[f"ratio_state/{row['name']}"] = row["state_ratio"]
  for row in rows:
    values[f"ratio_peak/{row['name']}"] = row["peak_ratio"]
  for row in accumulated:
    values[f"ratio_peak/{row['name']}"] = row["peak_ratio"]
  return values


def main(argv: Sequence[str] | None = None) -> int:
  """``python -m optlab.benchmarks.memory``: prints both tables as Markdown."""
  argparse.ArgumentParser(prog="python -m optlab.benchmarks.memory",
                          description=__doc__.splitlines()[0]).parse_args(argv)
  device = jax.devices()[0]
  print(f"# device: {device.platform} ({device.device_kind}), jax {jax.__version__}, "
        f"optax {optax.__version__}")
  print("\nMLP 784-512-512-10, batch 256, float32 (ratios to SGD):\n")
  print(format_table(optimizer_table()))
  print("\nAdam, MLP 784-1024-1024-10, effective batch 4096 (ratios to the float32 full "
        "batch):\n")
  print(format_table(accumulation_table()))
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
