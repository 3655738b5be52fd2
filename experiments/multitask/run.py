"""multitask: a shared trunk for two related tasks, task weighting and gradient surgery.

Two tasks on the same sklearn digits images: the digit (10 classes) and a coarse grouping
of it (parity by default). Single-task learning (one network per task) is compared with
multi-task learning (a shared trunk, one head per task; ``optlab.strategies.multitask``)
under four ways of combining the task losses: the plain sum (``fixed``), homoscedastic
uncertainty weighting (Kendall et al. 2018), GradNorm (Chen et al. 2018) and PCGrad
gradient surgery on the summed loss (Yu et al. 2020). Claims: multi-task learning with a
shared trunk matches or beats single-task learning on related tasks (Caruana 1997), and
the weighting and surgery methods differ little on two related tasks (Xin et al. 2022).

Usage:
  python experiments/multitask/run.py [--quick | --full] [--seeds N]
      [--results PATH] [--figure PNG | --no-figure]
"""

from __future__ import annotations

import importlib.util
import math
import pathlib
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, results  # noqa: E402
from optlab.strategies import multitask as mt  # noqa: E402
from optlab.studies import config_from_args, draw_figure, load_module, study_parser  # noqa: E402

STUDY = "multitask"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
TASKS = ("digit", "coarse")
COARSE = {
    "parity": ("even / odd digit", lambda d: d % 2),
    "high": ("digit ≥ 5", lambda d: (d >= 5).astype(np.int32)),
}

config = load_module("optlab_multitask_config", HERE / "config.py")


class Workload(NamedTuple):
  """The arrays of the study: inputs and ``{task: labels}``."""

  description: str
  train: tuple[np.ndarray, dict[str, np.ndarray]]
  test: tuple[np.ndarray, dict[str, np.ndarray]]
  num_classes: dict[str, int]

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train[0]), "test": len(self.test[0])}


def load_workload(cfg) -> Workload:
  """Digits, a stratified subsample for training, both tasks' labels, standardized."""
  if cfg.coarse not in COARSE:
    raise ValueError(f"coarse must be one of {list(COARSE)}, got {cfg.coarse!r}")
  name, coarse = COARSE[cfg.coarse]
  splits = data.train_val_test_split(data.digits(flatten=True), 0.0, cfg.test_fraction,
                                     cfg.data_seed)
  x, y = np.asarray(splits.train.x, np.float32), np.asarray(splits.train.y, np.int32)
  if cfg.train_size < len(y):
    keep = data.train_val_test_split((x, y), 0.0, 1.0 - cfg.train_size / len(y),
                                     cfg.data_seed).train
    x, y = np.asarray(keep.x, np.float32), np.asarray(keep.y, np.int32)
  scaler = data.Standardizer.fit(x)

  def labelled(x, digits):
    digits = np.asarray(digits, np.int32)
    return (np.asarray(scaler.apply(np.asarray(x, np.float32)), np.float32),
            {"digit": digits, "coarse": np.asarray(coarse(digits), np.int32)})

  description = (f"sklearn digits, {len(y)} training images; tasks: digit (10 classes) and "
                 f"{cfg.coarse} ({name}); standardized")
  return Workload(description, labelled(x, y), labelled(splits.test.x, splits.test.y),
                  {"digit": 10, "coarse": 2})


class Method(NamedTuple):
  """One way to train: which tasks count, their weighting, and whether PCGrad runs."""

  name: str
  label: str
  tasks: tuple[str, ...]  # the tasks this method is trained and judged on
  weighting: str  # "fixed", "uncertainty" or "gradnorm"
  pcgrad: bool = False


# Single-task learning is the two-head network with the other task's weight 0: its head
# gets zero gradients (Adam then leaves it exactly where it started) and the trunk learns
# from one task only, i.e. one network per task.
METHODS = (
    Method("single_digit", "single-task", ("digit",), "fixed"),
    Method("single_coarse", "single-task", ("coarse",), "fixed"),
    Method("fixed", "MTL, sum", TASKS, "fixed"),
    Method("uncertainty", "MTL, uncertainty", TASKS, "uncertainty"),
    Method("gradnorm", "MTL, GradNorm", TASKS, "gradnorm"),
    Method("pcgrad", "MTL, sum + PCGrad", TASKS, "fixed", pcgrad=True),
)
WEIGHTINGS = ("fixed", "uncertainty", "gradnorm")


def weightings(cfg) -> tuple[mt.Weighting, ...]:
  """The three weightings, in the order of `WEIGHTINGS`."""
  return (mt.fixed(),
          mt.uncertainty_weighting(cfg.uncertainty_convention),
          mt.gradnorm(cfg.gradnorm_alpha, cfg.gradnorm_learning_rate,
                      shared_path=("trunk", "layers", 0, "kernel")))


def switch_weighting(parts: Sequence[mt.Weighting], index: jax.Array) -> mt.Weighting:
  """One weighting that is ``parts[index]`` (`index` may be traced, e.g. vmapped over runs):
  every part keeps its learnable parameters and state; only the chosen one sets the
  objective (``lax.switch``), so the others get zero gradients."""

  def init(tasks):
    inits = [w.init(tasks) for w in parts]
    return tuple(i[0] for i in inits), tuple(i[1] for i in inits)

  def objective(losses, learnable, state):
    branches = [lambda ls, le, st, k=k: parts[k].objective(ls, le[k], st[k])
                for k in range(len(parts))]
    return jax.lax.switch(index, branches, losses, learnable, state)

  def update(state, losses, task_grads):
    return tuple(w.update(s, losses, task_grads) for w, s in zip(parts, state, strict=True))

  return mt.Weighting("switch", init, objective, update, needs_task_gradients=True)


def build_model(cfg, workload: Workload, seed: int) -> mt.MultiTaskModel:
  """The shared trunk (64 hidden ReLU units) and one linear head per task."""
  rngs = nnx.Rngs(seed)
  rng = np.random.default_rng(seed)

  # LeCun uniform (variance 1/fan_in, as flax's default truncated normal), drawn with NumPy:
  # compiling a JAX sampler for every layer shape costs seconds on 2 cores.
  def kernel_init(key, shape, dtype=jnp.float32):
    del key
    limit = math.sqrt(3.0 / shape[0])
    return jnp.asarray(rng.uniform(-limit, limit, shape), dtype)

  def bias_init(key, shape, dtype=jnp.float32):
    del key
    return jnp.asarray(np.zeros(shape), dtype)

  def linear(a, b):
    return nnx.Linear(a, b, kernel_init=kernel_init, bias_init=bias_init, rngs=rngs)

  trunk = nnx.Sequential(linear(workload.train[0].shape[1], cfg.hidden), jax.nn.relu)
  return mt.MultiTaskModel(trunk, {t: linear(cfg.hidden, workload.num_classes[t]) for t in TASKS})


def train_all(cfg, workload: Workload, methods: Sequence[Method], seeds: Sequence[int]):
  """Every method × seed as one compiled program: ``vmap`` over runs, ``scan`` over epochs,
  the test set evaluated after every epoch.

  A run's method is data (the weighting's index, the fixed weights, the PCGrad flag), so
  one compilation serves all of them. A seed's runs start from the same initial weights
  (``nnx.Rngs(seed)``); their keys are those of ``fit_multitask(..., seed=s)``: batch order
  ``fold_in(key(s), e)``, PCGrad ``key(s + 1)``.

  Returns:
    ({quantity: array (method, seed, epoch[, task[, task]])}, timing).
  """
  tx = optax.adam(cfg.learning_rate)
  parts = weightings(cfg)
  runs = [(m, s) for m in methods for s in seeds]
  initial = {}  # one model per seed (building NNX models costs more than copying states)
  for s in seeds:
    *graphdefs, initial[s] = mt.init_multitask_state(build_model(cfg, workload, s), tx,
                                                     switch_weighting(parts, 0))
  states = []
  for m, s in runs:
    fixed_weights = jnp.asarray([float(t in m.tasks) for t in TASKS], jnp.float32)
    state = initial[s]
    wstate = ({"weights": fixed_weights}, *state.model_state["weighting"][1:])
    states.append(state._replace(model_state={**state.model_state, "weighting": wstate}))
  state = jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)
  index = jnp.asarray([WEIGHTINGS.index(m.weighting) for m, _ in runs], jnp.int32)
  use_pcgrad = jnp.asarray([m.pcgrad for m, _ in runs])
  seed_array = jnp.asarray([s for _, s in runs], jnp.int32)
  graphdef, eval_graphdef = graphdefs
  x, y = workload.train
  x_test, y_test = workload.test
  evaluate = mt.make_multitask_evaluate(eval_graphdef, TASKS, batch_size=len(x_test))

  def summed(task_grads, key):
    del key
    return jax.tree.map(lambda g: jnp.sum(g, axis=0), task_grads)

  def run(state, seed, index, use_pcgrad):
    base_key = jax.random.key(seed)
    surgery = lambda g, k: jax.lax.cond(use_pcgrad, mt.pcgrad, summed, g, k)  # noqa: E731
    step = mt.make_multitask_step(graphdef, tx, TASKS, "cross_entropy",
                                  switch_weighting(parts, index), surgery=surgery,
                                  key=jax.random.key(seed + 1), skip_nonfinite=False)
    epoch_fn = mt.make_multitask_epoch(step, cfg.batch_size)

    def body(state, epoch):
      state, logs = epoch_fn(state, x, y, jax.random.fold_in(base_key, epoch))
      values = evaluate(state.params["model"], state.model_state["model"], x_test, y_test)
      cosine = logs["task_cosine"][:, 0, 1]
      return state, {"train_loss": jnp.mean(logs["task_losses"], axis=0),
                     "weights": logs["weights"][-1],
                     "cosine": jnp.mean(cosine),
                     "conflict_fraction": jnp.mean(cosine < 0),
                     "test_loss": jnp.stack([values[f"{t}_loss"] for t in TASKS]),
                     "test_accuracy": jnp.stack([values[f"{t}_accuracy"] for t in TASKS])}

    return jax.lax.scan(body, state, jnp.arange(cfg.epochs))

  args = (state, seed_array, index, use_pcgrad)
  start = time.perf_counter()
  lowered = jax.jit(jax.vmap(run)).lower(*args)
  trace_s = time.perf_counter() - start
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  final, curves = compiled(*args)
  shape = (len(methods), len(seeds))
  curves = {k: np.asarray(v).reshape(*shape, *v.shape[1:]) for k, v in curves.items()}
  train_s = time.perf_counter() - start
  skipped = np.asarray(final.skipped).reshape(shape).tolist()
  return curves, {"compile_s": compile_s, "trace_s": trace_s, "train_s": train_s,
                  "runs": len(runs),
                  "skipped_steps": skipped}


def summarize(accuracy: dict[str, dict[str, list[float]]], n_test: int) -> dict[str, Any]:
  """Each multi-task method against the single-task networks, and the spread across them.

  Args:
    accuracy: ``{method: {task: [final test accuracy per seed]}}``; the single-task
      methods are ``single_<task>``.
    n_test: test-set size, for the binomial standard error.

  Returns:
    Per task: the single-task mean; per multi-task method its mean, the difference to
    single-task, the noise it is judged against (the larger of the seed-to-seed standard
    error of the difference of means and the binomial standard error of one accuracy),
    and whether it "matches or beats" (difference ≥ −2 noise); the spread (max − min) of
    the multi-task means and whether it is within 2 noise.
  """
  multi = [m for m in accuracy if not m.startswith("single_")]
  out: dict[str, Any] = {"tasks": {}}
  all_match = True
  all_close = True
  for task in TASKS:
    single = np.asarray(accuracy[f"single_{task}"][task], np.float64)
    entry: dict[str, Any] = {"single": float(single.mean()), "methods": {}}
    binomial = math.sqrt(max(single.mean() * (1 - single.mean()), 1e-12) / n_test)
    for m in multi:
      acc = np.asarray(accuracy[m][task], np.float64)
      diff = float(acc.mean() - single.mean())
      seed_se = (math.sqrt(acc.var(ddof=1) / len(acc) + single.var(ddof=1) / len(single))
                 if len(acc) > 1 and len(single) > 1 else 0.0)
      noise = max(seed_se, binomial)
      matches = diff >= -2 * noise
      all_match &= matches
      entry["methods"][m] = {"mean": float(acc.mean()), "std": float(acc.std()),
                             "difference": diff, "noise": noise, "matches_or_beats": matches}
    means = [entry["methods"][m]["mean"] for m in multi]
    spread = float(max(means) - min(means))
    spread_noise = max([binomial] + [entry["methods"][m]["noise"] for m in multi])
    entry.update(spread=spread, spread_noise=spread_noise, binomial_se=binomial,
                 spread_within_noise=spread <= 2 * spread_noise,
                 best=multi[int(np.argmax(means))])
    all_close &= entry["spread_within_noise"]
    out["tasks"][task] = entry
  out["multi_task_matches_or_beats_single"] = bool(all_match)
  out["methods_differ_little"] = bool(all_close)
  return out


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0) -> list[dict]:
  """Trains every method on every seed; appends one record and returns it (in a list)."""
  workload = load_workload(cfg)
  seeds = [seed + i for i in range(cfg.num_seeds)]
  curves, timing = train_all(cfg, workload, METHODS, seeds)
  methods, accuracy = {}, {}
  for i, method in enumerate(METHODS):
    methods[method.name] = {"label": method.label, "tasks": list(method.tasks),
                            "weighting": method.weighting, "pcgrad": method.pcgrad,
                            "curves": {k: v[i] for k, v in curves.items()}}
    accuracy[method.name] = {t: curves["test_accuracy"][i, :, -1, TASKS.index(t)].tolist()
                             for t in method.tasks}
  record = {
      "study": STUDY, "run_id": uuid.uuid4().hex[:12], "config": cfg._asdict(),
      "provenance": results.provenance(), "dataset_description": workload.description,
      "sizes": workload.sizes(), "tasks": list(TASKS),
      "model": f"trunk Linear(64, {cfg.hidden}) + ReLU; heads Linear({cfg.hidden}, 10) and "
               f"Linear({cfg.hidden}, 2); single-task: the same network with one head",
      "optimizer": f"adam(learning_rate={cfg.learning_rate:g})", "seeds": seeds,
      "epochs": cfg.epochs, "batch_size": cfg.batch_size, "methods": methods,
      "final_test_accuracy": accuracy,
      "summary": summarize(accuracy, workload.sizes()["test"]),
      "timing": timing,
  }
  records = [results.to_jsonable(record)]
  if results_path is not None:
    results.append_records(results_path, records)
  return records


def table(records: list[dict]) -> str:
  """The final test accuracies and the verdicts, as text."""
  (r,) = records
  s = r["summary"]
  lines = [f"{r['dataset_description']}; train/test {r['sizes']['train']}/{r['sizes']['test']};"
           f" {r['optimizer']}, batch {r['batch_size']}, {r['epochs']} epochs; "
           f"{len(r['seeds'])} seed(s)",
           f"  {'method':<16}{'digit acc':>16}{'coarse acc':>16}   final weights (digit, coarse)"]
  for name, m in r["methods"].items():
    cells = []
    for t in TASKS:
      if t in m["tasks"]:
        acc = 100 * np.asarray(r["final_test_accuracy"][name][t])
        cells.append(f"{acc.mean():>9.2f} ± {acc.std():4.2f}")
      else:
        cells.append(f"{'—':>16}")
    w = np.asarray(m["curves"]["weights"])[:, -1].mean(0)  # (seed, epoch, task)
    lines.append(f"  {name:<16}{cells[0]:>16}{cells[1]:>16}   "
                 + ", ".join(f"{v:.3f}" for v in w))
  for t, e in s["tasks"].items():
    diffs = ", ".join(f"{m} {100 * v['difference']:+.2f}" for m, v in e["methods"].items())
    lines.append(f"  {t}: multi-task − single-task (points): {diffs}; spread across multi-task "
                 f"methods {100 * e['spread']:.2f} points (noise {100 * e['spread_noise']:.2f})")
  lines.append(f"  multi-task matches or beats single-task (≥ −2 noise) on both tasks, every "
               f"method: {s['multi_task_matches_or_beats_single']}; methods differ little "
               f"(spread ≤ 2 noise): {s['methods_differ_little']}")
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
        f"of which ~{records[0]['timing']['compile_s']:.1f} s compiling)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, records[0]["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
