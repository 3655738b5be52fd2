"""distillation: a small student trained alone vs distilled from a wide teacher (Hinton 2015).

A wide MLP teacher is trained once with ``optlab.train.fit`` on a small training subset
of sklearn digits; its logits on the training images are computed once
(``optlab.structure.distillation.teacher_logits``) and packed next to the labels
(``pack_targets``). A small MLP student is then trained on the same images with
``distillation_loss(T, α)`` at every temperature T of a grid, and alone (α = 0: the
plain cross-entropy), over several seeds. Claim: the distilled student beats the same
student trained alone, and intermediate temperatures work best.

Every student setting × seed trains in one compiled program: the runs are
``jax.vmap``ped over (α, T, initial weights, batch order), each a ``lax.scan`` over
epochs of optlab's own scanned epoch (``optlab.train.steps``) with the distillation loss
as its loss function, so a run gives the numbers ``fit(student, tx, (x, targets),
loss=distillation_loss_fn(T, α))`` gives; in full mode (and the tests) the first seeds
are checked against the real ``fit``.

Usage:
  python experiments/distillation/run.py [--quick | --full] [--seeds N]
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
from flax import nnx

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
if importlib.util.find_spec("optlab") is None:  # a source checkout that is not installed
  sys.path.insert(0, str(REPO))
from optlab import data, models, optim, results  # noqa: E402
from optlab.structure.distillation import (  # noqa: E402
  distillation_loss,
  distillation_loss_fn,
  pack_targets,
  teacher_logits,
  unpack_targets,
)
from optlab.studies import draw_figure, load_module, study_parser  # noqa: E402
from optlab.train import fit  # noqa: E402
from optlab.train import steps as steps_lib  # noqa: E402
from optlab.train.state import TrainState, learning_rate_scale, split_model  # noqa: E402

STUDY = "distillation"
DEFAULT_RESULTS = REPO / "paper_figures" / "results" / f"{STUDY}.jsonl"
DEFAULT_FIGURE = REPO / "paper_figures" / f"{STUDY}.png"

config = load_module("optlab_distillation_config", HERE / "config.py")


class Workload(NamedTuple):
  """The arrays of the study and what they are."""

  description: str
  num_classes: int
  train: tuple[np.ndarray, np.ndarray]  # the student's (and the same-data teacher's) images
  pool: tuple[np.ndarray, np.ndarray]  # the whole training part (the more-data teacher's)
  test: tuple[np.ndarray, np.ndarray]

  @property
  def dim(self) -> int:
    return int(self.train[0].shape[1])

  def sizes(self) -> dict[str, int]:
    return {"train": len(self.train[1]), "pool": len(self.pool[1]), "test": len(self.test[1])}


def load_workload(cfg) -> Workload:
  """Digits: a stratified test set and training part, a small stratified training subset
  of it; everything standardized with the subset's statistics."""
  splits = data.train_val_test_split(data.digits(flatten=True), 0.0, cfg.test_fraction,
                                     cfg.data_seed)
  x_pool, y_pool = np.asarray(splits.train.x, np.float32), np.asarray(splits.train.y, np.int32)
  x, y = x_pool, y_pool
  if cfg.train_size < len(y):
    keep = data.train_val_test_split((x, y), 0.0, 1.0 - cfg.train_size / len(y),
                                     cfg.data_seed).train
    x, y = np.asarray(keep.x, np.float32), np.asarray(keep.y, np.int32)
  scaler = data.Standardizer.fit(x)
  prep = lambda a: np.asarray(scaler.apply(np.asarray(a, np.float32)), np.float32)  # noqa: E731
  description = (f"sklearn digits, {len(y)} training images (stratified subset of the "
                 f"{len(y_pool)}-image training part), standardized")
  return Workload(description, int(y.max()) + 1, (prep(x), y), (prep(x_pool), y_pool),
                  (prep(splits.test.x), np.asarray(splits.test.y, np.int32)))


def teacher_fn(cfg, workload: Workload):
  return lambda rngs: models.MLP(workload.dim, cfg.teacher_hidden, workload.num_classes,
                                 dropout=cfg.teacher_dropout, rngs=rngs)


def student_fn(cfg, workload: Workload):
  return lambda rngs: models.MLP(workload.dim, cfg.student_hidden, workload.num_classes,
                                 rngs=rngs)


def student_tx(cfg):
  return optim.get("adam", learning_rate=cfg.student_learning_rate)


def train_teacher(cfg, workload: Workload, which: str) -> tuple[dict[str, Any], np.ndarray]:
  """A teacher trained once with ``fit``: (its record, its logits on the student's images).

  `which`: ``"same_data"`` (the student's training images) or ``"more_data"`` (the whole
  training part). Its test accuracy comes from the same ``teacher_logits`` call as the
  logits (one compiled prediction, no evaluation program inside ``fit``).
  """
  if which not in ("same_data", "more_data"):
    raise ValueError(f"train_teacher: which must be 'same_data' or 'more_data', got {which!r}")
  start = time.perf_counter()
  train, epochs = ((workload.train, cfg.teacher_epochs) if which == "same_data"
                   else (workload.pool, cfg.more_data_epochs))
  teacher = teacher_fn(cfg, workload)(nnx.Rngs(cfg.teacher_seed))
  result = fit(teacher, optim.get("adam", learning_rate=cfg.teacher_learning_rate), train,
               epochs=epochs, batch_size=cfg.batch_size, eval_every=epochs,
               seed=cfg.teacher_seed, progress=False)
  n = len(workload.train[1])
  both = teacher_logits(teacher, np.concatenate([workload.train[0], workload.test[0]]))
  logits, test_logits = both[:n], both[n:]
  record = {
    "teacher": which, "train_size": len(train[1]), "epochs": epochs,
    "test_accuracy": float(np.mean(np.argmax(test_logits, -1) == workload.test[1])),
    "student_train_accuracy": float(np.mean(np.argmax(logits, -1) == workload.train[1])),
    "train_loss": result.history[-1]["train_loss"],
    "mean_max_probability": float(np.mean(np.max(jax.nn.softmax(logits, -1), -1))),
    "params": models.count_params(teacher), "compile_s": result.compile_seconds,
    "train_s": result.train_seconds, "wall_s": time.perf_counter() - start,
  }
  return record, logits


def settings(cfg) -> list[dict[str, Any]]:
  """The student settings: alone (α = 0, no teacher) first, then each teacher at α and
  every temperature."""
  return [{"teacher": None, "alpha": 0.0, "temperature": 1.0}] + [
    {"teacher": t, "alpha": float(cfg.alpha), "temperature": float(temp)}
    for t in cfg.teachers for temp in cfg.temperatures]


def train_students(cfg, workload: Workload, targets: dict[str, np.ndarray],
                   seeds: Sequence[int]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
  """Every setting × seed as one vmapped, compiled program (whole runs: a scan over epochs).

  Run (setting, seed) follows ``fit``'s conventions: the student is built from
  ``nnx.Rngs(seed)``, epoch e's batch order comes from ``fold_in(key(seed), e)``, the
  optimizer is fit's chain (``tx`` then ``learning_rate_scale()``), and the loss is
  ``distillation_loss`` on the packed targets (:func:`pack_targets`) of the setting's
  teacher; α, T and the teacher are per-run arrays.

  Args:
    targets: packed (label, teacher logits) training targets per teacher name.

  Returns:
    ({"train_loss", "test_loss", "test_accuracy": (setting, seed, evaluation) arrays},
    timing): after every `cfg.eval_every` epochs, the last epoch's training loss and the
    test cross-entropy and accuracy.
  """
  grid = settings(cfg)
  names = list(cfg.teachers)
  students = [split_model(student_fn(cfg, workload)(nnx.Rngs(s))) for s in seeds]
  graphdef, eval_graphdef = students[0][0], students[0][1]
  runs = [(g, s) for g in range(len(grid)) for s in range(len(seeds))]
  pick = np.array([s for _, s in runs])
  params = jax.tree.map(lambda *a: jnp.stack(a)[pick], *[st[2] for st in students])
  rest = jax.tree.map(lambda *a: jnp.stack(a)[pick], *[st[3] for st in students])
  alpha = jnp.asarray([grid[g]["alpha"] for g, _ in runs], jnp.float32)
  temperature = jnp.asarray([grid[g]["temperature"] for g, _ in runs], jnp.float32)
  teacher = jnp.asarray([names.index(grid[g]["teacher"]) if grid[g]["teacher"] else 0
                         for g, _ in runs], jnp.int32)
  keys = jax.vmap(jax.random.key)(jnp.asarray([seeds[s] for _, s in runs]))
  full_tx = _fit_chain(student_tx(cfg))
  accuracy = {"accuracy": lambda o, y: jnp.mean(jnp.argmax(o, -1) == y)}
  evaluate = steps_lib.make_evaluate(eval_graphdef, steps_lib.cross_entropy, accuracy, 1024)
  stacked = np.stack([targets[name] for name in names])
  data_arrays = tuple(jnp.asarray(a) for a in (workload.train[0], stacked, *workload.test))
  every = cfg.eval_every
  if cfg.student_epochs % every:
    raise ValueError(f"student_epochs ({cfg.student_epochs}) must be a multiple of eval_every "
                     f"({every})")

  def run(params, rest, alpha, temperature, teacher, key, x, all_targets, x_test, y_test):
    def loss(outputs, packed):
      labels, teacher_logits = unpack_targets(packed)
      return distillation_loss(outputs, teacher_logits, labels, temperature=temperature,
                               alpha=alpha)

    epoch_fn = steps_lib.make_scan_epoch(steps_lib.make_train_step(graphdef, full_tx, loss),
                                         cfg.batch_size)
    y = all_targets[teacher]
    zero = jnp.zeros([], jnp.int32)
    state = TrainState(zero, params, rest, full_tx.init(params), zero)

    def epoch(state, e):
      state, losses = epoch_fn(state, x, y, jax.random.fold_in(key, e))
      return state, jnp.mean(losses)

    def block(state, b):  # `every` epochs, then one evaluation on the test set
      state, losses = jax.lax.scan(epoch, state, b * every + jnp.arange(every))
      metrics = evaluate(state.params, state.model_state, x_test, y_test)
      return state, (losses[-1], metrics["loss"], metrics["accuracy"])

    return jax.lax.scan(block, state, jnp.arange(cfg.student_epochs // every))[1]

  args = (params, rest, alpha, temperature, teacher, keys, *data_arrays)
  start = time.perf_counter()
  compiled = jax.jit(jax.vmap(run, in_axes=(0,) * 6 + (None,) * 4)).lower(*args).compile()
  compile_s = time.perf_counter() - start
  out = jax.block_until_ready(compiled(*args))
  train_s = time.perf_counter() - start - compile_s
  shape = (len(grid), len(seeds), cfg.student_epochs // every)
  curves = {k: np.asarray(v, np.float64).reshape(shape)
            for k, v in zip(("train_loss", "test_loss", "test_accuracy"), out, strict=True)}
  return curves, {"compile_s": compile_s, "train_s": train_s, "runs": len(runs)}


def _fit_chain(tx):
  """fit's optimizer: `tx` then its learning-rate scale (1 unless a callback changes it)."""
  import optax

  return optax.chain(tx, learning_rate_scale())


def fit_check(cfg, workload: Workload, targets: np.ndarray, seed: int,
              temperature: float) -> dict[str, Any]:
  """One distilled student through the real ``fit(..., loss=distillation_loss_fn(T, α))``."""
  start = time.perf_counter()
  result = fit(student_fn(cfg, workload)(nnx.Rngs(seed)), student_tx(cfg),
               (workload.train[0], targets), test=workload.test, epochs=cfg.student_epochs,
               batch_size=cfg.batch_size, eval_every=cfg.student_epochs, seed=seed,
               loss=distillation_loss_fn(temperature, cfg.alpha), progress=False)
  last = result.history[-1]
  return {"seed": seed, "temperature": temperature, "alpha": cfg.alpha,
          "train_loss": last["train_loss"], "test_loss": last["test_loss"],
          "test_accuracy": last["test_accuracy"], "compile_s": result.compile_seconds,
          "train_s": result.train_seconds, "wall_s": time.perf_counter() - start}


def summarize(temperatures: Sequence[float], alone: np.ndarray, distilled: np.ndarray,
              teacher_accuracy: float) -> dict[str, Any]:
  """One teacher's distilled students against the student alone, from final test accuracies.

  Args:
    temperatures: the grid of T.
    alone: (seed,) final test accuracy of the student alone.
    distilled: (T, seed) final test accuracy of the distilled students (same seeds).
    teacher_accuracy: the teacher's test accuracy.

  Returns:
    Means and standard deviations per T, the best T, its gain over the student alone
    with the paired seed standard error, wins over seeds, the fraction of the
    student-teacher gap closed, whether the gain exceeds 2 standard errors, and whether
    the best T is an intermediate one (not an end of the grid).
  """
  alone, distilled = np.asarray(alone, np.float64), np.asarray(distilled, np.float64)
  seeds = alone.shape[0]
  mean, std = distilled.mean(axis=1), distilled.std(axis=1)
  best = int(np.argmax(mean))
  diff = distilled[best] - alone
  gain_se = float(np.std(diff, ddof=1) / math.sqrt(seeds)) if seeds > 1 else float("nan")
  gap = teacher_accuracy - alone.mean()
  return {
    "temperatures": [float(t) for t in temperatures],
    "alone_accuracy": float(alone.mean()), "alone_std": float(alone.std()),
    "accuracy_mean": mean.tolist(), "accuracy_std": std.tolist(),
    "gain_per_temperature": (mean - alone.mean()).tolist(),
    "best_temperature": float(temperatures[best]), "best_accuracy": float(mean[best]),
    "gain": float(diff.mean()), "gain_standard_error": gain_se,
    "seeds_distilled_better": int(np.sum(diff > 0)), "seeds_tied": int(np.sum(diff == 0)),
    "num_seeds": int(seeds),
    "teacher_accuracy": float(teacher_accuracy),
    "gap_closed": float(diff.mean() / gap) if gap > 0 else float("nan"),
    "significant": bool(seeds > 1 and diff.mean() > 2 * gain_se),
    "intermediate_best": bool(0 < best < len(temperatures) - 1),
  }


def run(cfg, results_path: pathlib.Path | None, *, seed: int = 0) -> dict[str, Any]:
  """Trains the teachers and the students; appends one record and returns it."""
  start = time.perf_counter()
  workload = load_workload(cfg)
  seeds = [seed + i for i in range(cfg.num_seeds)]
  teachers, logits, targets = {}, {}, {}
  for which in cfg.teachers:
    teachers[which], logits[which] = train_teacher(cfg, workload, which)
    targets[which] = pack_targets(workload.train[1], logits[which])
  curves, timing = train_students(cfg, workload, targets, seeds)
  grid = settings(cfg)
  final = curves["test_accuracy"][:, :, -1]  # (setting, seed)
  k = len(cfg.temperatures)
  summaries = {which: summarize(cfg.temperatures, final[0], final[1 + i * k:1 + (i + 1) * k],
                                teachers[which]["test_accuracy"])
               for i, which in enumerate(cfg.teachers)}
  checks = []
  for which in cfg.teachers[:1]:
    temperature = summaries[which]["best_temperature"]
    index = 1 + list(cfg.temperatures).index(temperature)
    for i, s in enumerate(seeds[:cfg.fit_seeds]):
      check = fit_check(cfg, workload, targets[which], s, temperature)
      check["teacher"] = which
      check["sweep_test_accuracy"] = float(final[index, i])
      check["sweep_train_loss"] = float(curves["train_loss"][index, i, -1])
      check["agrees_with_sweep"] = bool(
          abs(check["test_accuracy"] - final[index, i]) < 1.5 / len(workload.test[1])
          and abs(check["train_loss"] - check["sweep_train_loss"]) < 1e-3)
      checks.append(check)
  # The training image whose teacher is least sure (largest runner-up probability): its
  # soft targets at every temperature, for the figure.
  first = logits[cfg.teachers[0]]
  example = int(np.argmax(np.sort(jax.nn.softmax(first, -1), -1)[:, -2]))
  record = {
    "study": STUDY, "run_id": uuid.uuid4().hex[:12], "config": cfg._asdict(),
    "provenance": results.provenance(), "dataset_description": workload.description,
    "sizes": workload.sizes(), "seeds": seeds, "settings": grid,
    "teacher_model": "MLP " + "-".join(map(str, (workload.dim, *cfg.teacher_hidden,
                                                 workload.num_classes)))
    + f", ReLU, dropout {cfg.teacher_dropout:g}",
    "student_model": "MLP " + "-".join(map(str, (workload.dim, *cfg.student_hidden,
                                                 workload.num_classes))) + ", ReLU",
    "student_params": models.count_params(student_fn(cfg, workload)(nnx.Rngs(0))),
    "optimizer": f"adam (teachers α = {cfg.teacher_learning_rate:g}, students α = "
                 f"{cfg.student_learning_rate:g}), batch {cfg.batch_size}",
    "teachers": teachers,
    "example": {"index": example, "label": int(workload.train[1][example]),
                "teacher": cfg.teachers[0], "teacher_logits": first[example].tolist()},
    "eval_epochs": [cfg.eval_every * (b + 1) for b in range(cfg.student_epochs // cfg.eval_every)],
    "curves": {k_: v.tolist() for k_, v in curves.items()},  # (setting, seed, evaluation)
    "final_test_accuracy": final.tolist(),  # (setting, seed)
    "summary": summaries, "fit_checks": checks,
    "timing": {**timing, "teachers_s": sum(t["wall_s"] for t in teachers.values()),
               "fit_checks_s": sum(c["wall_s"] for c in checks),
               "wall_s": time.perf_counter() - start},
  }
  record = results.to_jsonable(record)
  if results_path is not None:
    results.append_records(results_path, [record])
  return record


TEACHER_NAMES = {"same_data": "teacher trained on the same images",
                 "more_data": "teacher trained on the whole training part"}


def _percent(value: float | None) -> str:
  """A fraction as a percentage; None (non-finite in the record) as 'n/a'."""
  return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.0f}%"


def table(record: dict) -> str:
  """The run's numbers, as text."""
  sizes = record["sizes"]
  lines = [f"{record['dataset_description']}; test {sizes['test']}; {record['optimizer']}; "
           f"{len(record['seeds'])} seed(s)",
           f"student {record['student_model']} ({record['student_params']} weights), "
           f"{record['config']['student_epochs']} epochs, α = {record['config']['alpha']:g} "
           "(weight of the soft term); final test accuracy, mean ± std over seeds"]
  for which, s in record["summary"].items():
    t = record["teachers"][which]
    lines.append(f"{TEACHER_NAMES.get(which, which)}: {record['teacher_model']} "
                 f"({t['params']} weights, {t['train_size']} images, {t['epochs']} epochs): "
                 f"test {100 * t['test_accuracy']:.2f}%, mean top probability on the student's "
                 f"images {t['mean_max_probability']:.4f}")
    lines.append(f"  {'student alone':<16}{100 * s['alone_accuracy']:>7.2f}% ± "
                 f"{100 * s['alone_std']:.2f}")
    for i, temp in enumerate(s["temperatures"]):
      best = "  <- best" if temp == s["best_temperature"] else ""
      lines.append(f"  {'T = ' + format(temp, 'g'):<16}{100 * s['accuracy_mean'][i]:>7.2f}% ± "
                   f"{100 * s['accuracy_std'][i]:.2f}  ({100 * s['gain_per_temperature'][i]:+.2f})"
                   f"{best}")
    lines.append(f"  best T = {s['best_temperature']:g}: {100 * s['gain']:+.2f} points (paired "
                 f"seed s.e. {100 * s['gain_standard_error']:.2f}; > 2 s.e.: {s['significant']}); "
                 f"better on {s['seeds_distilled_better']}/{s['num_seeds']} seeds "
                 f"({s['seeds_tied']} tied); closes {_percent(s['gap_closed'])} of the gap to the "
                 f"teacher; intermediate T best: {s['intermediate_best']}")
  for c in record["fit_checks"]:
    lines.append(f"fit(..., loss=distillation_loss_fn({c['temperature']:g}, {c['alpha']:g})), "
                 f"{c['teacher']}, seed {c['seed']}: test accuracy {100 * c['test_accuracy']:.2f}%"
                 f" (vmapped run {100 * c['sweep_test_accuracy']:.2f}%), train loss "
                 f"{c['train_loss']:.5f} ({c['sweep_train_loss']:.5f}); agrees: "
                 f"{c['agrees_with_sweep']}")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  """Command line: run the study, print the table, draw the figure."""
  parser = study_parser(__doc__.split("\n")[0], DEFAULT_RESULTS, DEFAULT_FIGURE, REPO)
  args = parser.parse_args(argv)
  cfg = config.CONFIGS[args.mode or "quick"]
  if args.seeds is not None:
    if args.seeds < 1:
      parser.error(f"--seeds must be at least 1, got {args.seeds}")
    cfg = cfg.replace(num_seeds=args.seeds, fit_seeds=min(cfg.fit_seeds, args.seeds))
  start = time.perf_counter()
  record = run(cfg, args.results, seed=args.seed)
  elapsed = time.perf_counter() - start
  print(table(record))
  timing = record["timing"]
  print(f"\n1 record appended to {args.results} ({cfg.name} mode, {elapsed:.1f} s; teachers "
        f"{timing['teachers_s']:.1f} s, students {timing['compile_s']:.1f} s compiling + "
        f"{timing['train_s']:.1f} s training {timing['runs']} runs, fit checks "
        f"{timing['fit_checks_s']:.1f} s)")
  if not args.no_figure:
    draw_figure(STUDY, REPO, args.results, args.figure, record["run_id"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
