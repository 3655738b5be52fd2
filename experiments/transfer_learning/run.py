"""transfer_learning: linear probe, fine-tuning, per-layer rates and scratch on a small target.

An MLP is pretrained on digits 0-4 (the source task); its hidden layers are copied
(``optlab.strategies.transfer.transfer_weights``) under a new 5-way head for digits 5-9
(the target task), which is then trained on n images per class by four strategies:

* linear probe: ``train_only(adam, "head")``, the backbone frozen;
* full fine-tuning: Adam on every parameter;
* per-layer learning rates: ``per_layer_learning_rates(optax.adam, {"head": η_h,
  "layers": η_b})``, a small rate for the backbone and a large one for the head;
* scratch: the same network and optimizer as fine-tuning, from a random initialization.

Claim (Yosinski et al. 2014; Kornblith et al. 2019): with few target examples the
transferred network beats training from scratch; the linear probe is best at the smallest
sizes, and fine-tuning catches up with it, or overtakes it, as the target data grows.

All runs (strategy × size × seed) are one compiled program, ``jax.vmap``ped: Adam with
an injectable learning rate for the head and one for the backbone (the strategies are
(η_head, η_backbone, start) triples; a zero rate leaves the backbone bit for bit
unchanged, as ``train_only`` does), a fixed number of steps with batches drawn with
replacement from each run's n images, so every size has the same shapes.

Usage:
  python experiments/transfer_learning/run.py [--quick | --full] [--seeds N]
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
from optlab import data, models, results  # noqa: E402
from optlab.strategies.transfer import label_params, path_string, transfer_weights  # noqa: E402
from optlab.studies import load_module, study_parser  # noqa: E402
from optlab.train import steps as steps_lib  # noqa: E402
from optlab.train.state import TrainState, split_model  # noqa: E402

STUDY = "transfer_learning"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"
STRATEGIES = ("linear_probe", "fine_tune", "per_layer_lr", "scratch")

config = load_module("optlab_transfer_learning_config", HERE / "config.py")


class Workload(NamedTuple):
  """The arrays of the study: source train/validation, target pool (by class) and test."""

  description: str
  source_train: tuple[np.ndarray, np.ndarray]
  source_val: tuple[np.ndarray, np.ndarray]
  pool: tuple[np.ndarray, np.ndarray]  # target images available for training
  pool_by_class: list[np.ndarray]  # indices into pool, one array per target class
  test: tuple[np.ndarray, np.ndarray]

  @property
  def dim(self) -> int:
    return int(self.pool[0].shape[1])


def load_workload(cfg) -> Workload:
  """Digits split by class into a source and a target task, standardized with the source
  training statistics (the preprocessing travels with the pretrained network)."""
  digits = data.digits(flatten=True)
  x, y = np.asarray(digits.x, np.float32), np.asarray(digits.y, np.int32)
  overlap = set(cfg.source_classes) & set(cfg.target_classes)
  if overlap:
    raise ValueError(f"source_classes and target_classes overlap: {sorted(overlap)}")
  rng = np.random.default_rng(cfg.data_seed)

  def split(classes, fraction):
    keep, held = [], []
    for c in classes:
      idx = rng.permutation(np.flatnonzero(y == c))
      cut = round(fraction * len(idx))
      held.append(idx[:cut])
      keep.append(idx[cut:])
    return np.concatenate(keep), np.concatenate(held)

  src_train, src_val = split(cfg.source_classes, cfg.source_val_fraction)
  tgt_pool, tgt_test = split(cfg.target_classes, cfg.target_test_fraction)
  scaler = data.Standardizer.fit(x[src_train])
  relabel = np.full(10, -1, np.int32)
  relabel[list(cfg.source_classes)] = np.arange(len(cfg.source_classes))
  relabel[list(cfg.target_classes)] = np.arange(len(cfg.target_classes))

  def arrays(idx):
    return np.asarray(scaler.apply(x[idx]), np.float32), relabel[y[idx]]

  pool = arrays(tgt_pool)
  by_class = [np.flatnonzero(pool[1] == c) for c in range(len(cfg.target_classes))]
  smallest = min(len(i) for i in by_class)
  if max(cfg.sizes_per_class) > smallest:
    raise ValueError(f"sizes_per_class {cfg.sizes_per_class} exceeds the {smallest} training "
                     "images of the smallest target class")
  description = (f"sklearn digits: source task digits {list(cfg.source_classes)} "
                 f"({len(src_train)} train / {len(src_val)} held out), target task digits "
                 f"{list(cfg.target_classes)} (pool of {len(tgt_pool)}, test {len(tgt_test)}),"
                 " standardized with source statistics")
  return Workload(description, arrays(src_train), arrays(src_val), pool, by_class,
                  arrays(tgt_test))


def pretrain(cfg, workload: Workload, seeds: Sequence[int]):
  """The source model of every seed: Adam on the source images, seeds vmapped in one program
  (the program of the target runs, `make_program`, with the source data).

  Returns (list of models, held-out source accuracy per seed, timing).
  """
  start = time.perf_counter()
  source_models = [models.MLP(workload.dim, cfg.hidden_sizes, len(cfg.source_classes),
                              rngs=nnx.Rngs(seed)) for seed in seeds]
  graphdef, eval_graphdef, *_ = split_model(source_models[0])
  params, rest = _stack([tuple(split_model(m)[2:]) for m in source_models])
  n = len(workload.source_train[1])
  args = (params, rest, jnp.tile(jnp.arange(n, dtype=jnp.int32), (len(seeds), 1)),
          jnp.full(len(seeds), n, jnp.int32),
          jnp.stack([jax.random.fold_in(jax.random.key(seed), 2**31) for seed in seeds]),
          jnp.full((len(seeds), 2), cfg.pretrain_learning_rate, jnp.float32),
          tuple(jnp.asarray(a) for a in workload.source_train),
          tuple(jnp.asarray(a) for a in workload.source_val))
  program = make_program(graphdef, eval_graphdef, strategy_optimizer(), cfg.pretrain_steps,
                         cfg.batch_size)
  compiled = program.lower(*args).compile()
  compiled_at = time.perf_counter()
  accuracy, _, trained = compiled(*args)
  for s, model in enumerate(source_models):
    nnx.update(model, jax.tree.map(lambda a, s=s: a[s], trained))
  timing = {"compile_s": compiled_at - start, "train_s": time.perf_counter() - compiled_at,
            "runs": len(seeds)}
  return source_models, np.asarray(accuracy, np.float64).tolist(), timing


def target_subsets(cfg, workload: Workload, seeds: Sequence[int]) -> np.ndarray:
  """(size, seed, max n) indices into the pool: the first n = size × classes are the run's
  training images (a stratified draw; nested across sizes for a seed, so a larger set
  contains the smaller ones), the rest padding."""
  classes = len(workload.pool_by_class)
  largest = max(cfg.sizes_per_class) * classes
  out = np.zeros((len(cfg.sizes_per_class), len(seeds), largest), np.int32)
  for j, seed in enumerate(seeds):
    rng = np.random.default_rng([cfg.data_seed, seed])
    order = [rng.permutation(idx) for idx in workload.pool_by_class]
    for i, k in enumerate(cfg.sizes_per_class):
      chosen = np.concatenate([o[:k] for o in order])
      out[i, j, : len(chosen)] = rng.permutation(chosen)
  return out


def strategy_optimizer() -> optax.GradientTransformation:
  """Adam with its own injectable learning rate for the head and for the backbone.

  ``optax.multi_transform`` over ``label_params(params, {"head": "head"},
  default="backbone")``: each run sets (η_head, η_backbone) in its state, so the four
  strategies are points of one program: probe (η, 0), fine-tuning (η, η), per-layer
  (η_h, η_b) and scratch (η, η) from a random start. A zero rate gives exactly zero updates
  (the backbone stays bit for bit the same, as with ``train_only``); ``tests/
  test_transfer_learning_study.py`` checks that the probe's and per-layer runs' updates are
  those of ``train_only`` and ``per_layer_learning_rates``.
  """
  adam = optax.inject_hyperparams(optax.adam)
  return optax.multi_transform(
      {"head": adam(learning_rate=0.0), "backbone": adam(learning_rate=0.0)},
      lambda params: label_params(params, {"head": "head"}, default="backbone"))


def set_learning_rates(opt_state: Any, head: jax.Array, backbone: jax.Array) -> Any:
  """`opt_state` of `strategy_optimizer` with the two learning rates set."""
  for group, lr in (("head", head), ("backbone", backbone)):
    opt_state.inner_states[group].inner_state.hyperparams["learning_rate"] = lr
  return opt_state


def make_program(graphdef, eval_graphdef, tx: optax.GradientTransformation, steps: int,
                 batch_size: int, set_rates=set_learning_rates):
  """jit(vmap(run)): ``run(params, rest, indices, n, key, lrs, pool, test) -> (test accuracy,
  final loss, params)`` trains `steps` steps of `tx` on batches drawn with replacement from
  the first `n` `indices` of the pool, with optlab's pure train step. ``lrs`` = (η_head,
  η_backbone) are set in the state by `set_rates` (None: `tx` keeps its own)."""
  train_step = steps_lib.make_train_step(graphdef, tx, steps_lib.cross_entropy)

  def run(params, rest, indices, n, key, lrs, pool, test):
    x_pool, y_pool = pool
    opt_state = tx.init(params)
    if set_rates is not None:
      opt_state = set_rates(opt_state, lrs[0], lrs[1])
    state = TrainState(step=jnp.zeros([], jnp.int32), params=params, model_state=rest,
                       opt_state=opt_state, skipped=jnp.zeros([], jnp.int32))

    def body(state, step_key):
      rows = indices[jax.random.randint(step_key, (batch_size,), 0, n)]
      return train_step(state, x_pool[rows], y_pool[rows])

    state, losses = jax.lax.scan(body, state, jax.random.split(key, steps))
    logits = nnx.merge(eval_graphdef, state.params, state.model_state)(test[0])
    accuracy = jnp.mean((jnp.argmax(logits, -1) == test[1]).astype(jnp.float32))
    return accuracy, losses[-10:].mean(), state.params

  return jax.jit(jax.vmap(run, in_axes=(0, 0, 0, 0, 0, 0, None, None)))


def _stack(trees):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


def learning_rates(cfg) -> dict[str, tuple[float, float]]:
  """{strategy: (η_head, η_backbone)}."""
  return {"linear_probe": (cfg.probe_learning_rate, 0.0),
          "fine_tune": (cfg.finetune_learning_rate, cfg.finetune_learning_rate),
          "per_layer_lr": (cfg.head_learning_rate, cfg.backbone_learning_rate),
          "scratch": (cfg.scratch_learning_rate, cfg.scratch_learning_rate)}


def initial_states(cfg, workload: Workload, source_models, seeds: Sequence[int]):
  """(graphdef, eval graphdef, {"transferred"|"scratch": [(params, rest) per seed]}).

  Per seed: a target model with a new head from ``nnx.Rngs(10_000 + seed)``; the
  transferred one gets the pretrained backbone (``transfer_weights``), scratch keeps the
  random one.
  """
  classes = len(cfg.target_classes)
  inits = {"transferred": [], "scratch": []}
  for seed, source in zip(seeds, source_models, strict=True):
    fresh = models.MLP(workload.dim, cfg.hidden_sizes, classes, rngs=nnx.Rngs(10_000 + seed))
    graphdef, eval_graphdef, params, rest = split_model(fresh)
    inits["scratch"].append((params, rest))
    target = models.MLP(workload.dim, cfg.hidden_sizes, classes, rngs=nnx.Rngs(10_000 + seed))
    transfer_weights(source, target, exclude="head")
    inits["transferred"].append(tuple(split_model(target)[2:]))
  return graphdef, eval_graphdef, inits


def run_arguments(cfg, workload: Workload, inits, seeds: Sequence[int]):
  """The vmapped arguments of every run, in (strategy, size, seed) order."""
  classes = len(cfg.target_classes)
  sizes = list(cfg.sizes_per_class)
  subsets = target_subsets(cfg, workload, seeds)
  rates = learning_rates(cfg)
  starts, indices, n, keys, lrs = [], [], [], [], []
  for strategy in STRATEGIES:
    for i, size in enumerate(sizes):
      for j, seed in enumerate(seeds):
        starts.append(inits["scratch" if strategy == "scratch" else "transferred"][j])
        indices.append(subsets[i, j])
        n.append(size * classes)
        keys.append(jax.random.fold_in(jax.random.key(seed), size))  # same batches for all
        lrs.append(rates[strategy])
  params, rest = _stack(starts)
  return (params, rest, jnp.asarray(np.stack(indices)), jnp.asarray(n, jnp.int32),
          jnp.stack(keys), jnp.asarray(lrs, jnp.float32))


def transfer(cfg, workload: Workload, source_models, seeds: Sequence[int]) -> dict[str, Any]:
  """Trains the four strategies on every (size, seed) as one compiled program.

  Returns ``{"accuracy": {strategy: (size, seed) test accuracy}, "final_train_loss": the same
  shape, "backbone_unchanged": whether every probe run kept its backbone bit for bit,
  "timing"}``.
  """
  start = time.perf_counter()
  graphdef, eval_graphdef, inits = initial_states(cfg, workload, source_models, seeds)
  args = run_arguments(cfg, workload, inits, seeds)
  pool = tuple(jnp.asarray(a) for a in workload.pool)
  test = tuple(jnp.asarray(a) for a in workload.test)
  program = make_program(graphdef, eval_graphdef, strategy_optimizer(), cfg.target_steps,
                         cfg.batch_size)
  compiled = program.lower(*args, pool, test).compile()
  compiled_at = time.perf_counter()
  acc, loss, params = compiled(*args, pool, test)
  acc, loss = (np.asarray(a, np.float64) for a in (acc, loss))
  timing = {"compile_s": compiled_at - start, "train_s": time.perf_counter() - compiled_at,
            "runs": int(acc.shape[0])}
  shape = (len(STRATEGIES), len(cfg.sizes_per_class), len(seeds))
  acc, loss = acc.reshape(shape), loss.reshape(shape)
  probe = STRATEGIES.index("linear_probe")
  runs = slice(probe * shape[1] * shape[2], (probe + 1) * shape[1] * shape[2])
  unchanged = all(np.array_equal(np.asarray(a)[runs].view(np.uint32),
                                 np.asarray(b)[runs].view(np.uint32))
                  for a, b in zip(_backbone(params), _backbone(args[0]), strict=True))
  return {"accuracy": {k: acc[i] for i, k in enumerate(STRATEGIES)},
          "final_train_loss": {k: loss[i] for i, k in enumerate(STRATEGIES)},
          "backbone_unchanged": bool(unchanged), "timing": timing}


def _backbone(params) -> list[jax.Array]:
  """The backbone leaves (everything but the head) of a params tree."""
  return [leaf for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
          if not path_string(path).startswith("head/")]


def summarize(sizes: Sequence[int], accuracy: dict[str, np.ndarray],
              n_test: int) -> dict[str, Any]:
  """The claim's three parts, judged on means over seeds.

  Args:
    sizes: target examples per class, ascending.
    accuracy: ``{strategy: (size, seed)}`` test accuracies.
    n_test: test-set size (for the binomial standard error used as the noise level).

  Returns:
    Means, the best strategy per size, and: transfer beats scratch at the smallest size
    (every transfer strategy's mean above scratch's); the linear probe is the best at the
    smallest size (within noise: no strategy above it by more than one binomial s.e.);
    fine-tuning catches up (its gap to the probe at the largest size is at least as good
    as at the smallest) and overtakes (its mean ≥ the probe's at the largest size). "Fine-
    tuning" is the better of full fine-tuning and per-layer rates.
  """
  mean = {k: np.mean(v, axis=1) for k, v in accuracy.items()}
  std = {k: np.std(v, axis=1) for k, v in accuracy.items()}
  best = [max(mean, key=lambda k, i=i: mean[k][i]) for i in range(len(sizes))]
  transfer_names = ("linear_probe", "fine_tune", "per_layer_lr")
  fine = np.maximum(mean["fine_tune"], mean["per_layer_lr"])
  gap = fine - mean["linear_probe"]  # > 0: fine-tuning ahead of the probe
  p = float(mean["linear_probe"][0])
  binomial_se = math.sqrt(max(p * (1 - p), 1e-12) / n_test)
  overtakes = [int(s) for s, g in zip(sizes, gap, strict=True) if g >= 0]
  return {
    "mean": {k: v.tolist() for k, v in mean.items()},
    "std": {k: v.tolist() for k, v in std.items()},
    "best_strategy": best,
    "transfer_gain_over_scratch_smallest": {
        k: float(mean[k][0] - mean["scratch"][0]) for k in transfer_names},
    "transfer_gain_over_scratch_largest": {
        k: float(mean[k][-1] - mean["scratch"][-1]) for k in transfer_names},
    "fine_tune_minus_probe": gap.tolist(),
    "first_size_fine_tuning_not_behind": overtakes[0] if overtakes else None,
    "binomial_standard_error_smallest": binomial_se,
    "transfer_beats_scratch_smallest": bool(all(mean[k][0] > mean["scratch"][0]
                                                for k in transfer_names)),
    "probe_best_smallest": bool(all(mean[k][0] <= p + binomial_se for k in mean)),
    "fine_tuning_catches_up": bool(gap[-1] >= gap[0]),
    "fine_tuning_overtakes": bool(gap[-1] >= 0),
  }


def main(argv: Sequence[str] | None = None) -> int:
  parser = study_parser(__doc__.splitlines()[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config.CONFIGS[args.mode or "quick"]
  num_seeds = cfg.num_seeds if args.seeds is None else args.seeds
  if num_seeds < 1:
    parser.error(f"--seeds must be ≥ 1, got {num_seeds}")
  seeds = list(range(args.seed, args.seed + num_seeds))
  start = time.perf_counter()
  workload = load_workload(cfg)
  source_models, source_accuracy, pretrain_timing = pretrain(cfg, workload, seeds)
  out = transfer(cfg, workload, source_models, seeds)
  sizes = list(cfg.sizes_per_class)
  summary = summarize(sizes, out["accuracy"], len(workload.test[1]))
  record = {
    "study": STUDY,
    "run_id": f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}",
    "config": cfg._asdict(),
    "seeds": seeds,
    "dataset_description": workload.description,
    "model": f"MLP {workload.dim}-{'-'.join(map(str, cfg.hidden_sizes))}-(head)",
    "sizes_per_class": sizes,
    "num_target_classes": len(cfg.target_classes),
    "test_size": len(workload.test[1]),
    "source_val_accuracy": source_accuracy,
    "accuracy": {k: v.tolist() for k, v in out["accuracy"].items()},
    "final_train_loss": {k: v.tolist() for k, v in out["final_train_loss"].items()},
    "summary": summary,
    "learning_rates": learning_rates(cfg),
    "probe_backbone_unchanged": out["backbone_unchanged"],
    "timing": {"pretrain": pretrain_timing, "target": out["timing"],
               "wall_s": time.perf_counter() - start},
    "provenance": results.provenance(),
  }
  results.append_records(args.results, [record])
  print(f"{STUDY} ({cfg.name}, seeds {seeds}): source held-out accuracy "
        f"{100 * np.mean(source_accuracy):.1f}%")
  print("examples/class " + " ".join(f"{s:>6d}" for s in sizes))
  for k in STRATEGIES:
    print(f"{k:>14s} " + " ".join(f"{100 * m:6.1f}" for m in summary["mean"][k]))
  print(f"transfer beats scratch at {sizes[0]}/class: "
        f"{summary['transfer_beats_scratch_smallest']}; probe best at {sizes[0]}/class: "
        f"{summary['probe_best_smallest']}; fine-tuning catches up: "
        f"{summary['fine_tuning_catches_up']}, overtakes: {summary['fine_tuning_overtakes']}")
  print(f"wall {record['timing']['wall_s']:.1f}s; results appended to {args.results}")
  if not args.no_figure:
    figure = load_module("optlab_transfer_learning_figure", REPO / "paper_figures" / f"{STUDY}.py")
    print(figure.draw(args.results, args.figure, run_id=record["run_id"]))
  return 0


if __name__ == "__main__":
  sys.exit(main())
