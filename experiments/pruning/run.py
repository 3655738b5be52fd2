"""pruning: accuracy against sparsity, one-shot vs gradual (iterative) magnitude pruning.

A 64-256-10 MLP on sklearn digits is pruned to each final sparsity (of its kernels) in
three ways, all with ``optax.chain(adam, optlab.structure.pruning.prune(...))``:
one-shot (train dense, prune the trained weights once by global magnitude, fine-tune
briefly; Han et al. 2015), iterative (from scratch, sparsity raised along Zhu & Gupta's
cubic schedule during training, same total budget), and, optionally, lottery-ticket
rewinding (the one-shot masks, the weights rewound to an early iterate, retrained;
Frankle & Carbin 2019). Claim (Zhu & Gupta 2017): gradual pruning holds the dense
accuracy to a higher sparsity than one-shot pruning with brief fine-tuning.

Every run goes through one compiled program: the schedule's sparsity, begin, end and
frequency and the number of epochs are traced arguments, so dense, one-shot, iterative
and rewound runs differ only in their inputs.

Usage:
  python experiments/pruning/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure]
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, metrics, models, optim, results  # noqa: E402
from optlab.structure import pruning  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402
from optlab.train import steps  # noqa: E402
from optlab.train.state import TrainState, split_model  # noqa: E402

STUDY = "pruning"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
ARMS = ("one_shot", "iterative", "rewind")
NEVER = 2**30  # a pruning step that never comes

config = load_module("optlab_pruning_config", HERE / "config.py")


def load_workload(cfg) -> dict[str, Any]:
  """Digits, a stratified train/test split, standardized with training statistics."""
  splits = data.train_val_test_split(data.digits(flatten=True), 0.0, cfg.test_fraction,
                                     cfg.data_seed)
  scaler = data.Standardizer.fit(np.asarray(splits.train.x, np.float32))
  prep = lambda ds: (np.asarray(scaler.apply(np.asarray(ds.x, np.float32)), np.float32),  # noqa: E731
                     np.asarray(ds.y, np.int32))
  train, test = prep(splits.train), prep(splits.test)
  return {"train": train, "test": test, "num_classes": int(train[1].max()) + 1,
          "description": "sklearn digits (8x8), stratified train/test split, standardized"}


def make_tx(cfg, schedule: pruning.PolynomialSparsity, masks: Any = None):
  """The study's optimizer: Adam, then pruning (last in the chain)."""
  return optax.chain(optim.get("adam", learning_rate=cfg.learning_rate),
                     pruning.prune(schedule, scope=cfg.scope, masks=masks))


def _is_prune_state(x: Any) -> bool:
  return isinstance(x, pruning.PruneState)


def _rows(state: Any, leaf_fn, step_fn) -> Any:
  """Maps `leaf_fn` over every leaf of `state` but the prune step counter (`step_fn`)."""
  def go(x):
    if _is_prune_state(x):
      return pruning.PruneState(step_fn(x.step), jax.tree.map(leaf_fn, x.masks))
    return jax.tree.map(leaf_fn, x)
  return jax.tree.map(go, state, is_leaf=_is_prune_state)


def make_program(cfg, graphdef):
  """``program(states, s_f, timing, epochs, first_epoch, seeds, salt, x, y) -> states``.

  Compiled once, it runs a batch of rows (sparsity level × seed) as one ``jax.vmap``:
  `states`, `s_f` and `seeds` (the batch order's PRNG seed, folded with `salt`) have a
  leading row axis. The schedule's ``timing = (begin, end, frequency)`` (steps of the
  prune state's own counter) and the number of epochs are traced but shared by the rows,
  and the prune step counter is not batched, so the pruning step stays a real
  ``lax.cond`` (the weights are sorted only at pruning steps).
  """

  def one(state, s_f, timing, epochs, first_epoch, seed, salt, x, y):
    begin, end, every = timing
    tx = make_tx(cfg, pruning.PolynomialSparsity(s_f, begin, end, frequency=every))
    step = steps.make_train_step(graphdef, tx, steps.cross_entropy, skip_nonfinite=False)
    epoch = steps.make_scan_epoch(step, cfg.batch_size)
    key = jax.random.fold_in(jax.random.key(seed), salt)
    body = lambda i, s: epoch(s, x, y, jax.random.fold_in(key, first_epoch + i))[0]  # noqa: E731
    return jax.lax.fori_loop(0, epochs, body, state)

  def program(states, s_f, timing, epochs, first_epoch, seeds, salt, x, y):
    axes = _rows(states, lambda _: 0, lambda _: None)
    batched = jax.vmap(one, in_axes=(axes, 0, None, None, None, 0, None, None, None),
                       out_axes=axes)
    return batched(states, s_f, timing, epochs, first_epoch, seeds, salt, x, y)

  return jax.jit(program)


def run(cfg, results_path: pathlib.Path | None, seed: int = 0) -> list[dict]:
  """Trains every arm × sparsity × seed; returns (and appends) one record."""
  start = time.perf_counter()
  work = load_workload(cfg)
  (x, y), test = work["train"], work["test"]
  x, y = jnp.asarray(x), jnp.asarray(y)
  test = tuple(map(jnp.asarray, test))
  steps_per_epoch = len(y) // cfg.batch_size
  seeds = list(range(seed, seed + cfg.num_seeds))
  levels = list(cfg.sparsities)
  # Rows: sparsity level major, seed minor.
  row_level = np.repeat(np.asarray(levels, np.float32), len(seeds))
  row_level_exact = [s_f for s_f in levels for _ in seeds]
  row_seed = np.tile(np.asarray(seeds, np.int32), len(levels))
  make_model = lambda rngs: models.MLP(x.shape[1], cfg.hidden_sizes,  # noqa: E731
                                       work["num_classes"], rngs=rngs)
  graphdef, eval_graphdef, _, _ = split_model(nnx.eval_shape(lambda: make_model(nnx.Rngs(0))))

  # Initial weights built eagerly per seed (a vmapped initializer compiles slowly), then
  # laid out as rows on the host.
  initial = {s: jax.device_get(split_model(make_model(nnx.Rngs(s)))[2:]) for s in seeds}
  stack = lambda trees: jax.tree.map(lambda *a: jnp.asarray(np.stack(a)), *trees)  # noqa: E731
  params0 = stack([initial[s][0] for s in row_seed])
  rest = stack([initial[s][1] for s in row_seed])
  all_kept = jax.tree.map(lambda a: np.ones(a.shape, bool), jax.device_get(params0))

  @jax.jit
  def fresh(params, masks):
    """Rows of fresh train states: `params` masked by `masks`, a new optimizer state whose
    masks are `masks` (``pruning.rewind`` when `params` are early weights)."""
    params = pruning.rewind(params, masks)
    init = lambda p, m: make_tx(cfg, pruning.PolynomialSparsity(0.0, NEVER, NEVER),  # noqa: E731
                                m).init(p)
    opt_state = _rows(jax.vmap(init)(params, masks), lambda a: a, lambda step: step[0])
    zeros = jnp.zeros(len(row_seed), jnp.int32)
    return TrainState(zeros, params, rest, opt_state, zeros)

  program = make_program(cfg, graphdef)
  evaluate = jax.jit(jax.vmap(steps.make_evaluate(
      eval_graphdef, steps.cross_entropy, {"accuracy": metrics.get("accuracy")}, 512),
      in_axes=(0, 0, None, None)))
  never = (NEVER, NEVER, 1)
  timings: list[float] = []
  row_seed_j, no_pruning = jnp.asarray(row_seed), np.zeros_like(row_level)

  def train(state, s_f, timing, epochs, first_epoch, salt=0):
    t = time.perf_counter()
    state = program(state, jnp.asarray(s_f, jnp.float32), tuple(map(jnp.int32, timing)),
                    jnp.int32(epochs), jnp.int32(first_epoch), row_seed_j, jnp.int32(salt), x, y)
    jax.block_until_ready(state.params)
    timings.append(time.perf_counter() - t)
    return state

  def score(arm, state):
    out = jax.device_get(evaluate(state.params, state.model_state, *test))
    params, masks = jax.device_get((state.params, pruning.masks_of(state.opt_state)))
    rows = []
    for i, (s_f, s) in enumerate(zip(row_level_exact, row_seed, strict=True)):
      pick = lambda tree, i=i: jax.tree.map(lambda a: a[i], tree)  # noqa: E731
      report = pruning.sparsity_report(pick(params), pick(masks))
      kernels = {k: v for k, v in report["layers"].items() if k.endswith("kernel")}
      size = sum(v["size"] for v in kernels.values())
      nonzero = sum(v["nonzero"] for v in kernels.values())
      rows.append({"arm": arm, "sparsity": 0.0 if arm == "dense" else float(s_f),
                   "seed": int(s), "test_accuracy": float(out["accuracy"][i]),
                   "test_loss": float(out["loss"][i]), "kernel_weights": size,
                   "kernel_nonzero": nonzero, "kernel_sparsity": 1.0 - nonzero / size,
                   "pruned": report["pruned"], "nonzero_params": report["nonzero"],
                   "params": report["size"],
                   "layer_sparsity": {k: v["sparsity"] for k, v in kernels.items()}})
    return rows

  start_states = fresh(params0, all_kept)
  # Dense: rewind_epoch epochs (the rewinding point), then the rest of the budget (every
  # row of a seed trains the same dense model: one compiled program serves every stage).
  early = train(start_states, no_pruning, never, cfg.rewind_epoch, 0)
  dense = train(early, no_pruning, never, cfg.train_epochs - cfg.rewind_epoch,
                cfg.rewind_epoch)
  runs = score("dense", dense)[: len(seeds)]
  # One-shot: prune the trained weights at the first fine-tuning step, then fine-tune.
  one_shot = train(fresh(dense.params, all_kept), row_level, (0, 0, 1), cfg.finetune_epochs,
                   cfg.train_epochs)
  runs += score("one_shot", one_shot)
  # Iterative: from scratch, Zhu & Gupta's schedule, the same total budget.
  iterative = (cfg.prune_begin_epoch * steps_per_epoch, cfg.prune_end_epoch * steps_per_epoch,
               cfg.prune_every)
  gradual = train(start_states, row_level, iterative, cfg.train_epochs + cfg.finetune_epochs, 0)
  runs += score("iterative", gradual)
  if cfg.rewind:
    # Lottery ticket: the one-shot masks (from the trained weights), the early weights
    # (``pruning.rewind`` inside ``fresh``), retrained with the masks fixed.
    masks = pruning.masks_of(one_shot.opt_state)
    ticket = train(fresh(early.params, masks), no_pruning, never, cfg.train_epochs,
                   0, salt=1)
    runs += score("rewind", ticket)
  elapsed = time.perf_counter() - start
  record = {
      "study": STUDY, "run_id": uuid.uuid4().hex[:12], "config": cfg._asdict(),
      "seeds": seeds, "dataset_description": work["description"],
      "sizes": {"train": len(y), "test": len(test[1])},
      "model": f"MLP {x.shape[1]}-{'-'.join(map(str, cfg.hidden_sizes))}-"
               f"{work['num_classes']}, ReLU",
      "optimizer": f"adam(learning_rate={cfg.learning_rate:g}) then prune (scope={cfg.scope})",
      "steps_per_epoch": steps_per_epoch,
      "schedule": {"begin_step": iterative[0], "end_step": iterative[1],
                   "frequency": iterative[2], "power": 3.0,
                   "total_steps": (cfg.train_epochs + cfg.finetune_epochs) * steps_per_epoch},
      "runs": runs, "summary": summarize(runs, levels),
      "timing": {"wall_s": elapsed, "compile_s": timings[0], "train_calls_s": timings,
                 "rows_per_call": len(row_seed)},
      "provenance": results.provenance(),
  }
  records = [results.to_jsonable(record)]
  if results_path is not None:
    results.append_records(results_path, records)
  return records


def summarize(runs: Sequence[dict], sparsities: Sequence[float],
              tolerance: float = 0.01) -> dict[str, Any]:
  """Mean test accuracy per arm and sparsity, and how far each arm holds the dense accuracy.

  An arm "holds" a sparsity when its mean test accuracy is at most `tolerance` below the
  dense model's mean; ``held`` is the largest sparsity s such that the arm holds every
  level up to s. The claim is reproduced when the iterative arm holds a higher sparsity
  than the one-shot arm.
  """
  dense = float(np.mean([r["test_accuracy"] for r in runs if r["arm"] == "dense"]))
  out: dict[str, Any] = {"dense_accuracy": dense, "tolerance": tolerance,
                         "sparsities": list(sparsities), "mean": {}, "std": {}, "held": {}}
  for arm in ARMS:
    accs = [[r["test_accuracy"] for r in runs if r["arm"] == arm and r["sparsity"] == s]
            for s in sparsities]
    if not all(accs):
      continue
    mean = [float(np.mean(a)) for a in accs]
    out["mean"][arm], out["std"][arm] = mean, [float(np.std(a)) for a in accs]
    held = 0.0
    for s, m in zip(sparsities, mean, strict=True):
      if m < dense - tolerance:
        break
      held = float(s)
    out["held"][arm] = held
  iterative, one_shot = out["mean"].get("iterative"), out["mean"].get("one_shot")
  if iterative and one_shot:
    out["iterative_minus_one_shot"] = [a - b for a, b in zip(iterative, one_shot, strict=True)]
    out["reproduced"] = out["held"]["iterative"] > out["held"]["one_shot"]
  return out


def table(records: list[dict]) -> str:
  """The record's numbers, as text."""
  (r,) = records
  s = r["summary"]
  lines = [f"{r['dataset_description']}; train/test {r['sizes']['train']}/{r['sizes']['test']};"
           f" {r['model']}; {r['optimizer']}; batch {r['config']['batch_size']}; "
           f"{len(r['seeds'])} seed(s)",
           f"dense {r['config']['train_epochs']} epochs: test accuracy "
           f"{100 * s['dense_accuracy']:.2f}%; one-shot: + {r['config']['finetune_epochs']} "
           f"fine-tuning epochs; iterative: {r['schedule']['total_steps']} steps, "
           f"Zhu & Gupta schedule steps {r['schedule']['begin_step']}-"
           f"{r['schedule']['end_step']} every {r['schedule']['frequency']}",
           f"  {'sparsity':>9}" + "".join(f"{a:>12}" for a in s["mean"]) + f"{'iter-1shot':>12}"
           + f"{'nonzero':>9}"]
  for i, sp in enumerate(s["sparsities"]):
    nonzero = next(x["kernel_nonzero"] for x in r["runs"] if x["arm"] == "iterative"
               and x["sparsity"] == sp)
    lines.append(f"  {100 * sp:>8.0f}%" + "".join(
        f"{100 * s['mean'][a][i]:>10.2f}% " for a in s["mean"])
        + f"{100 * s['iterative_minus_one_shot'][i]:>+11.2f} {nonzero:>8}")
  lines.append("  holds the dense accuracy (within "
               f"{100 * s['tolerance']:.0f} point) up to: "
               + ", ".join(f"{a} {100 * v:g}%" for a, v in s["held"].items())
               + f"; reproduced: {s['reproduced']}")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config_from_args(parser, args, config.CONFIGS)
  start = time.perf_counter()
  records = run(cfg, args.results, seed=args.seed)
  elapsed = time.perf_counter() - start
  print(table(records))
  print(f"\n{len(records)} record appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s, "
        f"of which ~{records[0]['timing']['compile_s']:.1f} s in the first, compiling, call)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
