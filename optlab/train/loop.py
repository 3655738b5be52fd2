"""The fit loop: whole epochs compiled as one ``lax.scan``, evaluation, callbacks, checkpoints.

``fit`` trains a Flax NNX model with any optax transformation. When the
training arrays fit on the device, each epoch is one compiled program (a
``lax.scan`` over the shuffled batches); otherwise a Python loop drives the
jitted step. Either way the batch order comes from ``fold_in(key(seed), epoch)``,
so a run resumed from a checkpoint ends with exactly the parameters of an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from optlab import results
from optlab.data.base import as_xy
from optlab.models import registry as models_registry
from optlab.optim import registry as optim_registry
from optlab.optim.packed import Packing
from optlab.results import check_writable
from optlab.train import distributed
from optlab.train import steps as steps_lib
from optlab.train.callbacks import Callback, EarlyStopping
from optlab.train.checkpoint import Checkpointer
from optlab.train.packing import FitPacking, resolve_mode
from optlab.train.state import LearningRateScaleState, TrainState, split_model

# Arrays up to this size are kept on the device and trained with a scanned epoch.
SCAN_BYTES_LIMIT = 2 << 30


@dataclasses.dataclass
class FitResult:
  """What ``fit`` returns.

  Attributes:
    model: the trained model (in eval mode), holding the final (or best) parameters
      (unpacked, also for a packed run).
    state: the final :class:`TrainState`. For ``fit(..., packed=...)`` its ``params``
      are the packed buffers (``packing.unpack(state.params)`` gives the tree) and
      its ``opt_state`` the optimizer's state on them.
    history: one dict per evaluation: epoch, step, train_loss, val_*/test_* metrics, times.
    status: ``"completed"``, ``"early_stopped"`` or ``"diverged"``.
    message: why the run ended.
    skipped_steps: steps skipped because of non-finite loss or gradients.
    best_epoch: epoch whose parameters were restored (early stopping), if any.
    compile_seconds: time spent compiling (kept out of the epoch times).
    train_seconds: time spent training and evaluating, compilation excluded.
    packing: the :class:`~optlab.optim.packed.Packing` of a packed run (else None).
  """

  model: nnx.Module
  state: TrainState
  history: list[dict[str, Any]]
  status: str
  message: str
  skipped_steps: int
  best_epoch: int | None
  compile_seconds: float
  train_seconds: float
  packing: Packing | None = None

  def curve(self, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of a logged quantity, e.g. ``result.curve("val_accuracy")``."""
    points = [(h["epoch"], h[key]) for h in self.history if key in h]
    if not points:
      raise KeyError(f"{key!r} was never logged; logged: {sorted(self.history[-1])}")
    epochs, values = zip(*points, strict=True)
    return np.asarray(epochs), np.asarray(values, dtype=np.float64)


def _metric_functions(names: Sequence[str]) -> dict[str, Callable]:
  from optlab import metrics

  return {name: metrics.get(name) for name in names}


def _progress(total: int, enabled: bool | None, start: int):
  if enabled is None:
    enabled = sys.stderr.isatty()
  if not enabled:
    return None
  try:
    from tqdm.auto import tqdm
  except ImportError:
    return None
  return tqdm(total=total, initial=start, unit="epoch", leave=False)


def _set_scale(opt_state: Any, scale: float) -> Any:
  return (*opt_state[:-1], LearningRateScaleState(scale=jnp.asarray(scale, jnp.float32)))


def _copy(tree: Any) -> Any:
  return jax.tree.map(jnp.copy, tree)


def fit(
    model: nnx.Module,
    tx: optax.GradientTransformation,
    train: Any,
    *,
    validation: Any = None,
    test: Any = None,
    loss: str | steps_lib.LossFn = "cross_entropy",
    metrics: Sequence[str] = ("accuracy",),
    epochs: int = 10,
    batch_size: int = 64,
    eval_batch_size: int = 1024,
    eval_every: int = 1,
    seed: int = 0,
    callbacks: Sequence[Callback] = (),
    l2: float = 0.0,
    clip_norm: float | None = None,
    skip_nonfinite: bool = True,
    divergence_factor: float = 1e3,
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
    scan: bool | None = None,
    mesh: jax.sharding.Mesh | None = None,
    history_path: str | Path | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_keep: int = 2,
    checkpoint_monitor: str | None = None,
    resume: bool = False,
    stop_after_epoch: int | None = None,
    progress: bool | None = None,
    run_name: str | None = None,
    evaluate_at: Callable[[Any, Any], Any] | None = None,
    run_config: Mapping[str, Any] | None = None,
    update_stats: bool = False,
    monitors: Mapping[str, Callable[[Any, Any], Any]] | None = None,
    accumulate_steps: int = 1,
    compute_dtype: Any = None,
    packed: bool | str = False,
) -> FitResult:
  """Trains `model` with `tx` on `train`, evaluating on `validation` and `test`.

  Args:
    model: a Flax NNX module mapping a batch of inputs to outputs (logits).
    tx: any optax transformation (``optlab.optim.get(...)`` or a chain); a schedule
      inside it advances once per step.
    train: ``(x, y)`` arrays or an ``optlab.data.Dataset``.
    validation: the same, evaluated every `eval_every` epochs (logged as ``val_*``).
    test: the same (logged as ``test_*``).
    loss: ``"cross_entropy"``, ``"mse"``, ``"binary_cross_entropy"`` or a function
      ``(outputs, targets) -> scalar``.
    metrics: metric names of ``optlab.metrics`` computed at each evaluation.
    epochs: the total number of epochs (a resumed run continues up to it).
    batch_size: examples per step; the last incomplete batch of an epoch is
      dropped (a new shuffle each epoch).
    eval_batch_size: examples per chunk when evaluating.
    eval_every: evaluate (and run callbacks, checkpoint) every this many epochs.
    seed: seeds the batch order and augmentation (the model's own initialisation
      and dropout come from the ``nnx.Rngs`` it was built with).
    callbacks: e.g. :class:`EarlyStopping`, :class:`ReduceLROnPlateau`.
    l2: coefficient of ½‖θ‖² added to the loss.
    clip_norm: clip gradients to this global norm before `tx`.
    skip_nonfinite: skip (and count) steps whose loss or gradients are not finite.
    divergence_factor: stop as diverged when the epoch's training loss exceeds
      this multiple of the first epoch's, or is not finite.
    augment: ``augment(key, x_batch) -> x_batch``, run inside the compiled step.
    scan: compile each epoch as one ``lax.scan`` (default: when the training
      arrays are under 2 GiB); False drives the jitted step from Python.
    mesh: train data-parallel over this ``jax.sharding.Mesh`` (e.g.
      ``optlab.train.distributed.data_mesh()``): every batch is split along the
      mesh's ``"data"`` axis (or its only axis) with ``NamedSharding``, the
      parameters, model state and optimizer state are replicated (or, on a mesh
      that also has a ``"model"`` axis, their large arrays split along it), and
      ``jax.jit`` partitions the same step, all-reducing the gradients. Same result
      as one device up to floating-point reduction order. `batch_size` must be a
      multiple of the data axis' size. The mesh may span several processes (see
      ``optlab.train.distributed.initialize_from_env``): each passes the same
      arrays. The returned model holds mesh-placed arrays; evaluation runs
      replicated.
    history_path: append the history here: a ``run_start`` record, one
      ``evaluation`` record per evaluation, and a ``resume`` record when resumed;
      read a run back with ``optlab.train.history.read_history``. Its directory
      must be writable (checked before anything compiles).
    checkpoint_dir: save the last `checkpoint_keep` checkpoints (and the best by
      `checkpoint_monitor`) here, at every evaluation. Before anything compiles,
      fit checks that the directory is writable and has room for them (see
      ``Checkpointer.check_space``), and raises ``OSError`` otherwise.
    checkpoint_keep: how many recent checkpoints to keep.
    checkpoint_monitor: logged quantity that picks the best checkpoint.
    resume: continue from the latest checkpoint in `checkpoint_dir`, if any, as
      the same run (its run id, stored in the checkpoint, is kept).
    stop_after_epoch: end the run after this epoch as if interrupted (for tests
      and for splitting a long run across jobs).
    progress: show a progress bar (default: when stderr is a terminal).
    run_name: a name for this run in the history file (default: a time stamp and a
      random suffix); a resumed run keeps the name its checkpoint holds.
    run_config: anything else needed to rerun this run (JSON-friendly), stored in the
      history file's ``run_start`` record next to the optimizer and model that
      ``optlab.optim.describe`` / ``optlab.models.describe`` know of.
    evaluate_at: ``evaluate_at(params, opt_state) -> params``: the parameters to
      evaluate instead of the iterate, given the state of `tx` (e.g.
      ``optlab.optim.averaged_params`` for SWA/EMA, or schedule-free's
      ``x``). Evaluations, callbacks, the best snapshot and the returned model
      use them; training continues from the iterate. Batch-norm statistics are
      not recomputed for them.
    update_stats: also log, per parameter array, the size of the optimizer's steps
      (see ``optlab.train.steps.update_statistics``):
      ``"update_ratio/<path>"`` = ``‖Δθ‖/‖θ‖`` and ``"effective_lr/<path>"`` =
      ``‖Δθ‖/‖g‖`` (``<path>`` as ``optlab.train.paths`` names parameters, e.g.
      ``"update_ratio/layers/0/kernel"``; ``g`` the gradient of the minimized loss,
      before clipping; ``Δθ`` the step taken, learning-rate scale included). Each
      record holds the average over the steps of the epoch evaluated, accumulated
      inside the compiled epoch (no extra host transfers per step); skipped steps
      and undefined ratios (a zero norm) are left out of the average. Off by default:
      the default step does not compute them at all.
    monitors: ``{name: fn(params, model_state) -> scalar}`` evaluated at each
      evaluation on the *iterate* (the trained parameters, also when `evaluate_at`
      is given) and logged as ``name`` before the callbacks run (so early stopping
      can watch them). E.g. the sharpness of the training loss with
      ``optlab.diagnostics.hessian.SharpnessTracker``. Names must not clash with
      the loop's own keys.
    accumulate_steps: gradient accumulation: each optimizer step averages the
      gradients of this many micro-batches of `batch_size`, summed inside one
      compiled step (``lax.scan``), so the effective batch is
      ``accumulate_steps × batch_size`` while only one micro-batch's activations
      are alive at a time. A schedule, ``skip_nonfinite`` and callbacks' learning-rate
      scale all act per optimizer step; ``history["step"]`` counts optimizer steps.
    compute_dtype: mixed precision, e.g. ``jnp.bfloat16``: the forward and backward
      passes run in this dtype, while the parameters, gradients and optimizer
      state stay float32 (the master copy); evaluation uses the float32 parameters.
      No loss scaling is needed for bfloat16 (float32's exponent range); float16
      is refused. See ``optlab.train.steps.make_train_step``.
    packed: keep the trainable parameters, and so the optimizer's state, as a few
      contiguous 1-D buffers (one per dtype, ``optlab.optim.packed.Packing``) in the
      train state, unpacked only inside the compiled step: a step then passes a
      handful of arrays however many parameter arrays the model has (see
      ``optlab.train.packing``). ``"elementwise"``: the optimizer runs on the
      buffers (exact for elementwise optimizers: SGD, Adam, RMSProp ...; a
      registry optimizer known not to be elementwise raises a ValueError);
      ``"per_leaf"``: each update unpacks, runs `tx` on the tree and packs its
      state (exact for every optimizer: Muon, Shampoo, masks ...); ``True``:
      ``"elementwise"`` for an elementwise optimizer from ``optlab.optim.get``,
      ``"per_leaf"`` otherwise (hand-made chains included). Everything else works
      as unpacked (checkpoints resume in the mode they were written in); the
      returned model holds the unpacked parameters, ``FitResult.state`` the buffers.
      Not with a mesh that has a ``"model"`` axis (buffers are replicated).

  Returns:
    A :class:`FitResult`.
  """
  if epochs < 1:
    raise ValueError(f"fit: epochs must be ≥ 1, got {epochs}")
  if batch_size < 1:
    raise ValueError(f"fit: batch_size must be ≥ 1, got {batch_size}")
  steps_lib.check_accumulate_steps(accumulate_steps, caller="fit")
  compute_dtype = steps_lib.check_compute_dtype(compute_dtype, caller="fit")
  step_examples = batch_size * accumulate_steps  # examples per optimizer step
  if eval_every < 1:
    raise ValueError(f"fit: eval_every must be ≥ 1, got {eval_every}")
  packed_mode = resolve_mode(packed, tx)
  if mesh is not None:
    distributed.check_mesh(mesh, "fit")
    distributed.check_batch_size(batch_size, mesh, "fit")
  if resume and checkpoint_dir is None:
    raise ValueError("fit: resume=True needs checkpoint_dir")
  monitors = _check_monitors(monitors)
  train_xy = as_xy(train, "train", caller="fit")
  eval_sets = {
      prefix: xy for prefix, xy in (
          ("val", as_xy(validation, "validation", caller="fit")),
          ("test", as_xy(test, "test", caller="fit")),
      ) if xy is not None
  }
  n = train_xy[0].shape[0]
  if step_examples > n:
    raise ValueError(
        f"fit: batch_size {batch_size}" + (f" × accumulate_steps {accumulate_steps}"
                                           if accumulate_steps > 1 else "")
        + f" is larger than the {n} training examples")
  loss_fn = steps_lib.get_loss(loss)
  metric_fns = _metric_functions(metrics)
  checkpointer = (
      Checkpointer(checkpoint_dir, keep=checkpoint_keep, monitor=checkpoint_monitor,
                   mode=_monitor_mode(checkpoint_monitor))
      if checkpoint_dir is not None else None
  )
  if history_path is not None:  # fail now, not after the first epoch
    check_writable(Path(history_path).absolute().parent, what="the history file")

  train_graphdef, eval_graphdef, params, model_state = split_model(model)
  if loss == "cross_entropy":
    _check_class_labels(eval_graphdef, params, model_state, batch_size, {"train": train_xy, **{
        {"val": "validation"}.get(k, k): xy for k, xy in eval_sets.items()}})
  packer = FitPacking(packed_mode, params, tx)  # the identity when not packed
  if mesh is not None:
    packer.check_mesh(mesh)
  full_tx = packer.optimizer(tx, clip_norm)
  params = packer.pack(params)  # what the train state holds (buffers when packed)
  state = TrainState(
      step=jnp.zeros([], jnp.int32), params=params, model_state=model_state,
      opt_state=full_tx.init(params), skipped=jnp.zeros([], jnp.int32),
  )
  if checkpointer is not None:  # room for the checkpoints, checked before anything compiles
    checkpointer.check_space({"state": state, "best": (params, model_state)})
  train_step = steps_lib.make_train_step(
      train_graphdef, full_tx, loss_fn, l2=l2, skip_nonfinite=skip_nonfinite,
      update_stats=update_stats, accumulate_steps=accumulate_steps, compute_dtype=compute_dtype,
      packing=packer.packing,
  )
  evaluate = jax.jit(packer.unpacking(
      steps_lib.make_evaluate(eval_graphdef, loss_fn, metric_fns, eval_batch_size)))
  tx_index = 1 if clip_norm else 0  # where tx's own state sits in full_tx's chain state

  def evaluated_params(state: TrainState) -> Any:
    """The parameters to evaluate, held as the train state holds them (packed or not)."""
    if evaluate_at is None:
      return state.params
    return packer.pack(evaluate_at(packer.tree(state.params),
                                   packer.tx_state(state.opt_state[tx_index])))
  data_bytes = train_xy[0].nbytes + train_xy[1].nbytes
  use_scan = scan if scan is not None else data_bytes < SCAN_BYTES_LIMIT
  base_key = jax.random.key(seed)

  history: list[dict[str, Any]] = []
  start_epoch = 0
  best = None
  best_epoch = None
  reference_loss = None
  run_id = run_name or f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
  if resume and checkpointer.latest_epoch() is not None:
    restored, record = packer.restore(checkpointer, {"state": state,
                                                     "best": (params, model_state)})
    stored_id = record.get("run")  # None in checkpoints written before run ids were kept
    if stored_id is not None:
      if run_name is not None and run_name != stored_id:
        raise ValueError(f"fit: run_name {run_name!r} differs from the run {stored_id!r} whose "
                         f"checkpoint is in {checkpointer.directory}; pass run_name="
                         f"{stored_id!r} (or none) to resume it, or another checkpoint_dir")
      run_id = stored_id
    state, best = restored["state"], restored["best"]
    start_epoch = record["epoch"] + 1
    history = record["history"]
    best_epoch = record["best_epoch"]
    reference_loss = record["reference_loss"]
    for callback, callback_state in zip(callbacks, record["callbacks"], strict=True):
      callback.load_state_dict(callback_state)

  # Data parallel: state placed on the mesh, batches split, outputs pinned.
  parallel = distributed.DataParallel(mesh, state) if mesh is not None else None
  placed = {} if parallel is None else {"out_shardings": parallel.out_shardings}
  if parallel is not None:
    state = parallel.place_state(state)
  to_device = jax.device_put if parallel is None else parallel.replicate
  to_batch = jnp.asarray if parallel is None else parallel.split_batch
  x_train, y_train = (to_device(a) for a in train_xy) if use_scan else train_xy
  compile_seconds = 0.0
  if use_scan:
    scan_epoch = steps_lib.make_scan_epoch(
        train_step, step_examples, augment, update_stats=update_stats,
        batch_sharding=None if parallel is None else parallel.batch_sharding,
        packing=packer.packing)
    epoch_fn = jax.jit(scan_epoch, donate_argnums=(0,), **placed)
    start = time.perf_counter()
    epoch_fn = epoch_fn.lower(state, x_train, y_train, base_key).compile()
    compile_seconds += time.perf_counter() - start
  else:
    # The state passes as the flat list of its arrays (steps_lib.FlatStateStep).
    step_fn = steps_lib.FlatStateStep(train_step, state, out_shardings=placed.get("out_shardings"))
    accumulate = jax.jit(steps_lib.accumulate_statistics)

  def run_epoch(state, epoch_key):
    """(state, losses, mean update statistics or None), all on the device."""
    if use_scan:
      state, outputs = epoch_fn(state, x_train, y_train, epoch_key)
      return (state, *outputs) if update_stats else (state, outputs, None)
    order_key, augment_key = jax.random.split(epoch_key)
    indices = np.asarray(steps_lib.epoch_batch_indices(order_key, n, step_examples))
    losses = []
    totals = (steps_lib.zero_statistics(steps_lib.update_statistic_names(
        packer.structure(state.params))) if update_stats else None)
    leaves = step_fn.flatten(state)
    for batch in indices:
      xb, yb = to_batch(x_train[batch]), to_batch(y_train[batch])
      if augment is not None:
        xb = augment(jax.random.fold_in(augment_key, step_fn.step_count(leaves)), xb)
      leaves, batch_loss = step_fn(leaves, xb, yb)
      if update_stats:
        batch_loss, stats = batch_loss
        totals = accumulate(totals, stats)
      losses.append(batch_loss)
    stats = steps_lib.mean_statistics(totals) if update_stats else None
    return step_fn.unflatten(leaves), jnp.stack(losses), stats

  if history_path is not None and start_epoch > 0:
    # Records of epochs ≥ start_epoch written before the kill are superseded (read_history).
    results.append_records(history_path, [{
        "kind": "resume", "run": run_id, "from_epoch": start_epoch,
        "provenance": results.provenance(),
    }])
  if history_path is not None and start_epoch == 0:
    results.append_records(history_path, [{
        "kind": "run_start", "run": run_id, "epochs": epochs, "batch_size": batch_size,
        "seed": seed, "loss": getattr(loss, "__name__", loss), "metrics": list(metrics),
        "l2": l2, "clip_norm": clip_norm, "scan": bool(use_scan),
        "mesh": None if mesh is None else {str(k): int(v) for k, v in mesh.shape.items()},
        "accumulate_steps": accumulate_steps,
        "compute_dtype": None if compute_dtype is None else str(compute_dtype),
        "update_stats": bool(update_stats), "monitors": sorted(monitors),
        "packed": packed_mode or False,
        "optimizer": optim_registry.describe(tx), "model": models_registry.describe(model),
        "config": dict(run_config or {}),
        "provenance": results.provenance(),
    }])

  status, message = "completed", f"trained for {epochs} epochs"
  restored_best = False  # early stopping put the best (evaluated) parameters in `state`
  train_seconds = 0.0
  bar = _progress(epochs, progress, start_epoch)
  for epoch in range(start_epoch, epochs):
    epoch_start = time.perf_counter()
    skipped_before = int(state.skipped)
    state, losses, epoch_stats = run_epoch(state, jax.random.fold_in(base_key, epoch))
    losses = np.asarray(losses)
    skipped_now = int(state.skipped) - skipped_before
    finite_losses = losses[np.isfinite(losses)]
    train_loss = float(finite_losses.mean()) if finite_losses.size else math.nan
    if reference_loss is None and math.isfinite(train_loss):
      reference_loss = max(train_loss, 1e-12)
    diverged = (
        not math.isfinite(train_loss)
        or skipped_now == losses.size
        or (reference_loss is not None and train_loss > divergence_factor * reference_loss)
    )
    if diverged:
      status = "diverged"
      kept = ""
      if checkpointer is not None and checkpointer.latest_epoch() is not None:
        kept = (f"; the last good checkpoint (epoch {checkpointer.latest_epoch()}) is kept in "
                f"{checkpointer.directory}")
      message = (f"training diverged in epoch {epoch}: mean training loss {train_loss:.4g} "
                 f"(first epoch {reference_loss if reference_loss is not None else math.nan:.4g}),"
                 f" {skipped_now} of {losses.size} steps skipped as non-finite{kept}")
      break
    if (epoch + 1) % eval_every and epoch + 1 != epochs:
      train_seconds += time.perf_counter() - epoch_start
      continue
    logs: dict[str, Any] = {"epoch": epoch, "step": int(state.step), "train_loss": train_loss,
                            "skipped_steps": int(state.skipped)}
    eval_params = evaluated_params(state)
    for prefix, (x, y) in eval_sets.items():
      values = evaluate(eval_params, state.model_state, x, y)
      logs.update({f"{prefix}_{k}": float(v) for k, v in values.items()})
    if epoch_stats is not None:
      logs.update({k: float(v) for k, v in jax.device_get(epoch_stats).items()})
    for name, monitor in monitors.items():
      logs[name] = _monitor_value(name, monitor(packer.tree(state.params), state.model_state))
    requests: dict[str, Any] = {}
    for callback in callbacks:
      requests.update(callback.on_evaluation(epoch, logs))
    if requests.get("best"):
      best, best_epoch = _copy((eval_params, state.model_state)), epoch
    if "scale" in requests:
      state = state._replace(opt_state=_set_scale(state.opt_state, requests["scale"]))
      if parallel is not None:
        state = parallel.place_state(state)
      logs["lr_scale"] = float(requests["scale"])
    logs["epoch_seconds"] = time.perf_counter() - epoch_start
    history.append(logs)
    if history_path is not None:
      results.append_records(history_path, [{"kind": "evaluation", "run": run_id, **logs}])
    if checkpointer is not None:
      checkpointer.save(epoch, {"state": state, "best": best if best is not None else
                                (state.params, state.model_state)}, {
          "epoch": epoch, "run": run_id, "history": history, "best_epoch": best_epoch,
          "reference_loss": reference_loss, "packed": packed_mode,
          "callbacks": [c.state_dict() for c in callbacks],
      }, logs)
    train_seconds += time.perf_counter() - epoch_start
    if bar is not None:
      bar.update(epoch + 1 - bar.n)
      shown = {k: f"{v:.4g}" for k, v in logs.items() if k.endswith(("loss", "accuracy"))}
      bar.set_postfix(shown)
    if "stop" in requests:
      status, message = "early_stopped", requests["stop"]
      if requests.get("restore_best") and best is not None:
        state = state._replace(params=best[0], model_state=best[1])
        restored_best = True
      break
    if stop_after_epoch is not None and epoch >= stop_after_epoch:
      status, message = "interrupted", f"stopped after epoch {epoch} as asked"
      break
  if bar is not None:
    bar.close()
  if checkpointer is not None:
    checkpointer.close()
  if status != "early_stopped":
    best_epoch = None if status != "completed" else best_epoch
  if status == "diverged":
    print(f"optlab.fit: {message}", file=sys.stderr)
  final_params = packer.tree(state.params if restored_best else evaluated_params(state))
  nnx.update(model, final_params, state.model_state)
  model.eval()
  return FitResult(
      model=model, state=state, history=history, status=status, message=message,
      skipped_steps=int(state.skipped), best_epoch=best_epoch,
      compile_seconds=compile_seconds, train_seconds=train_seconds, packing=packer.packing,
  )


# Keys the loop logs itself; monitors may not take them.
_LOOP_KEYS = frozenset({"epoch", "step", "train_loss", "skipped_steps", "lr_scale",
                        "epoch_seconds"})
_LOOP_PREFIXES = ("val_", "test_", f"{steps_lib.UPDATE_RATIO}/", f"{steps_lib.EFFECTIVE_LR}/")


def _check_monitors(monitors: Any) -> dict[str, Callable[[Any, Any], Any]]:
  if monitors is None:
    return {}
  if not isinstance(monitors, Mapping):
    raise TypeError(f"fit: monitors must be a dict {{name: fn(params, model_state) -> scalar}}, "
                    f"got {type(monitors).__name__}")
  for name, fn in monitors.items():
    if not isinstance(name, str) or not name:
      raise TypeError(f"fit: monitor names must be non-empty strings, got {name!r}")
    if name in _LOOP_KEYS or name.startswith(_LOOP_PREFIXES):
      raise ValueError(f"fit: monitor name {name!r} clashes with the loop's own logs "
                       f"({', '.join(sorted(_LOOP_KEYS))}, and names starting with "
                       f"{', '.join(_LOOP_PREFIXES)})")
    if not callable(fn):
      raise TypeError(f"fit: monitor {name!r} must be callable fn(params, model_state), got "
                      f"{type(fn).__name__}")
  return dict(monitors)


def _monitor_value(name: str, value: Any) -> float:
  array = np.asarray(jax.device_get(value))
  if array.size != 1 or array.dtype.kind not in "biuf":
    raise TypeError(f"fit: monitor {name!r} must return a real scalar, got "
                    f"{type(value).__name__} of shape {array.shape} and dtype {array.dtype}")
  return float(array.reshape(()))


def _check_class_labels(graphdef: Any, params: Any, model_state: Any, batch_size: int,
                        sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
  """Integer class ids in [0, number of outputs), checked before anything compiles.

  Float labels would fail inside optax with no argument named; ids outside the
  model's outputs would give a NaN loss and a run reported as diverged.
  """
  x = sets["train"][0]
  outputs = jax.eval_shape(lambda xb: nnx.merge(graphdef, params, model_state)(xb), x[:batch_size])
  width = outputs.shape[-1]
  for name, (_, y) in sets.items():
    if not np.issubdtype(y.dtype, np.integer):
      raise TypeError(
          f"fit: the {name} labels have dtype {y.dtype}; loss='cross_entropy' needs integer "
          "class ids (cast with .astype(np.int32)), or pass a loss for real-valued targets "
          "such as loss='mse'")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= width:
      raise ValueError(
          f"fit: the {name} labels span [{low}, {high}] but the model has {width} outputs: "
          f"class ids must lie in [0, {width})")


def _monitor_mode(monitor: str | None) -> str:
  if monitor is None:
    return "min"
  from optlab.train.callbacks import _resolve_mode

  return _resolve_mode(monitor, "auto")


__all__ = ["EarlyStopping", "FitResult", "fit"]
