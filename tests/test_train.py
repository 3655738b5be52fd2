"""The fit loop: scanned and Python epochs, callbacks, checkpoints and exact resume, NaNs."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from _blobs import blobs
from flax import nnx

from optlab import results, train


class TinyNet(nnx.Module):
  def __init__(self, din=4, hidden=16, classes=3, dropout=0.0, *, seed=0):
    rngs = nnx.Rngs(seed)
    self.hidden = nnx.Linear(din, hidden, rngs=rngs)
    self.dropout = nnx.Dropout(dropout, rngs=rngs)
    self.out = nnx.Linear(hidden, classes, rngs=rngs)

  def __call__(self, x):
    return self.out(self.dropout(nnx.relu(self.hidden(x))))


TRAIN, VAL, TEST = blobs(240, 0), blobs(120, 1), blobs(120, 2)


def params_of(model):
  return nnx.state(model, nnx.Param)


def assert_trees_equal(a, b):
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_fit_learns_and_logs_history():
  result = train.fit(TinyNet(), optax.adam(0.05), TRAIN, validation=VAL, test=TEST,
                     metrics=("accuracy", "f1_macro"), epochs=8, batch_size=32, progress=False)
  assert result.status == "completed"
  assert len(result.history) == 8
  last = result.history[-1]
  assert last["val_accuracy"] > 0.9 and last["test_accuracy"] > 0.9
  assert {"train_loss", "val_loss", "test_loss", "val_f1_macro", "step"} <= set(last)
  assert last["step"] == 8 * (240 // 32)
  _, losses = result.curve("train_loss")
  assert losses[-1] < losses[0]
  assert result.compile_seconds > 0


def test_scan_and_python_loop_give_the_same_run():
  scanned = train.fit(TinyNet(), optax.sgd(0.1, momentum=0.9), TRAIN, epochs=3, batch_size=32,
                      scan=True, progress=False)
  looped = train.fit(TinyNet(), optax.sgd(0.1, momentum=0.9), TRAIN, epochs=3, batch_size=32,
                     scan=False, progress=False)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               params_of(scanned.model), params_of(looped.model))


def test_one_compilation_per_shape():
  traces = []

  def counting_loss(logits, labels):
    traces.append(1)
    return train.cross_entropy(logits, labels)

  train.fit(TinyNet(), optax.sgd(0.1), TRAIN, validation=VAL, epochs=4, batch_size=32,
            loss=counting_loss, scan=False, progress=False)
  # One trace for the training step (value_and_grad traces the loss once) and one
  # for evaluation on the validation set, however many epochs and batches.
  assert len(traces) == 2


def test_same_seed_same_numbers_and_different_seed_different_order():
  a = train.fit(TinyNet(), optax.sgd(0.1), TRAIN, epochs=2, batch_size=32, seed=3, progress=False)
  b = train.fit(TinyNet(), optax.sgd(0.1), TRAIN, epochs=2, batch_size=32, seed=3, progress=False)
  c = train.fit(TinyNet(), optax.sgd(0.1), TRAIN, epochs=2, batch_size=32, seed=4, progress=False)
  assert_trees_equal(params_of(a.model), params_of(b.model))
  difference = jax.tree.map(lambda x, y: float(jnp.max(jnp.abs(x - y))),
                            params_of(a.model), params_of(c.model))
  assert max(jax.tree.leaves(difference)) > 0


def test_early_stopping_stops_and_restores_the_best_parameters():
  # Random labels: the validation loss bottoms out early and then rises as the net memorizes.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(96, 4)).astype(np.float32)
  y = rng.integers(0, 3, size=96).astype(np.int32)
  x_val = rng.normal(size=(96, 4)).astype(np.float32)
  y_val = rng.integers(0, 3, size=96).astype(np.int32)
  stopper = train.EarlyStopping("val_loss", patience=3)
  result = train.fit(TinyNet(hidden=64), optax.adam(0.05), (x, y), validation=(x_val, y_val),
                     epochs=200, batch_size=16, callbacks=[stopper], progress=False)
  assert result.status == "early_stopped"
  assert "did not improve" in result.message
  assert len(result.history) < 200
  best = min(result.history, key=lambda h: h["val_loss"])
  assert result.best_epoch == best["epoch"]
  assert len(result.history) == best["epoch"] + 1 + 3  # stopped after `patience` evaluations
  # The returned model holds the best parameters, not the last ones.
  evaluate = jax.jit(train.make_evaluate(nnx.graphdef(result.model), train.cross_entropy, {}, 64))
  _, params, rest = nnx.split(result.model, nnx.Param, ...)
  val_loss = float(evaluate(params, rest, x_val, y_val)["loss"])
  assert val_loss == pytest.approx(best["val_loss"], rel=1e-6)


def test_early_stopping_mode_auto_maximizes_accuracy():
  stopper = train.EarlyStopping("val_accuracy", patience=1)
  stopper.on_evaluation(0, {"val_accuracy": 0.5})
  assert stopper.on_evaluation(1, {"val_accuracy": 0.6}) == {"best": True}
  assert "stop" in stopper.on_evaluation(2, {"val_accuracy": 0.55})


def test_reduce_on_plateau_lowers_the_learning_rate():
  reducer = train.ReduceLROnPlateau("val_loss", factor=0.5, patience=1)
  result = train.fit(TinyNet(), optax.sgd(0.0), TRAIN, validation=VAL, epochs=4, batch_size=32,
                     callbacks=[reducer], progress=False)
  scales = [h.get("lr_scale") for h in result.history]
  assert scales == [None, 0.5, 0.25, 0.125]
  assert float(result.state.opt_state[-1].scale) == 0.125


def test_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path):
  kwargs = dict(validation=VAL, epochs=5, batch_size=32, seed=1, progress=False,
                callbacks=[train.EarlyStopping("val_loss", patience=50)])
  full = train.fit(TinyNet(dropout=0.2), optax.adam(0.01), TRAIN,
                   checkpoint_dir=tmp_path / "full", **kwargs)
  first = train.fit(TinyNet(dropout=0.2), optax.adam(0.01), TRAIN,
                    checkpoint_dir=tmp_path / "split", stop_after_epoch=1, **kwargs)
  assert first.status == "interrupted"
  kwargs["callbacks"] = [train.EarlyStopping("val_loss", patience=50)]
  resumed = train.fit(TinyNet(dropout=0.2, seed=99), optax.adam(0.01), TRAIN,
                      checkpoint_dir=tmp_path / "split", resume=True, **kwargs)
  assert resumed.status == "completed"
  assert_trees_equal(params_of(full.model), params_of(resumed.model))
  assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in full.history]
  assert int(resumed.state.step) == int(full.state.step)


def test_checkpoints_keep_last_n_and_best(tmp_path):
  result = train.fit(TinyNet(), optax.adam(0.05), TRAIN, validation=VAL, epochs=5, batch_size=32,
                     checkpoint_dir=tmp_path, checkpoint_keep=2, checkpoint_monitor="val_loss",
                     progress=False)
  assert sorted(os.listdir(tmp_path / "last")) == ["3", "4"]
  best_epoch = min(result.history, key=lambda h: h["val_loss"])["epoch"]
  assert os.listdir(tmp_path / "best") == [str(best_epoch)]


def test_nan_in_the_data_is_skipped_and_reported():
  x, y = TRAIN[0].copy(), TRAIN[1]
  x[7] = np.nan  # every batch holding example 7 gives non-finite gradients
  result = train.fit(TinyNet(), optax.adam(0.05), (x, y), validation=VAL, epochs=3,
                     batch_size=30, progress=False)
  assert result.status == "completed"
  assert result.skipped_steps == 3  # 30 divides 240: example 7 is in exactly one batch per epoch
  assert result.history[-1]["skipped_steps"] == 3
  for leaf in jax.tree.leaves(params_of(result.model)):
    assert bool(jnp.all(jnp.isfinite(leaf)))
  assert result.history[-1]["val_accuracy"] > 0.85


def test_divergence_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path, capsys):
  schedule = optax.piecewise_constant_schedule(0.01, {16: 1e4})  # explodes in epoch 2
  result = train.fit(TinyNet(), optax.sgd(schedule), TRAIN, validation=VAL, epochs=6,
                     batch_size=30, checkpoint_dir=tmp_path, progress=False)
  assert result.status == "diverged"
  assert "diverged in epoch 2" in result.message
  assert "last good checkpoint (epoch 1)" in result.message
  assert "diverged" in capsys.readouterr().err
  assert sorted(os.listdir(tmp_path / "last")) == ["0", "1"]


def test_history_file_and_learning_curve_plot(tmp_path):
  pytest.importorskip("matplotlib")
  path = tmp_path / "history.jsonl"
  train.fit(TinyNet(), optax.adam(0.05), TRAIN, validation=VAL, test=TEST, epochs=3,
            batch_size=32, history_path=path, run_name="demo", progress=False)
  records = results.read_records(path)
  assert records[0]["kind"] == "run_start" and "provenance" in records[0]
  assert [r["epoch"] for r in records[1:]] == [0, 1, 2]
  out = train.plot_learning_curves(path, tmp_path / "curves.png")
  assert out.stat().st_size > 1000


def test_l2_and_clipping_and_augmentation_change_the_run():
  base = train.fit(TinyNet(), optax.sgd(0.1), TRAIN, epochs=2, batch_size=32, progress=False)
  decayed = train.fit(TinyNet(), optax.sgd(0.1), TRAIN, epochs=2, batch_size=32, l2=0.5,
                      progress=False)
  norm = lambda m: float(optax.tree.norm(params_of(m)))  # noqa: E731
  assert norm(decayed.model) < norm(base.model)
  clipped = train.fit(TinyNet(), optax.sgd(0.1), TRAIN, epochs=2, batch_size=32, clip_norm=1e-3,
                      progress=False)
  assert norm(clipped.model) != norm(base.model)
  noisy = train.fit(TinyNet(), optax.sgd(0.1), TRAIN, epochs=2, batch_size=32, progress=False,
                    augment=lambda key, x: x + 0.1 * jax.random.normal(key, x.shape))
  assert norm(noisy.model) != norm(base.model)


def test_unwritable_checkpoint_directory_fails_before_training(tmp_path):
  blocker = tmp_path / "file"
  blocker.write_text("not a directory")
  with pytest.raises(OSError, match="cannot write checkpoints"):
    train.fit(TinyNet(), optax.sgd(0.1), TRAIN, checkpoint_dir=blocker / "ckpt", progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs must be"),
    ({"batch_size": 0}, "batch_size must be"),
    ({"batch_size": 10_000}, "larger than the 240 training examples"),
    ({"eval_every": 0}, "eval_every"),
    ({"resume": True}, "needs checkpoint_dir"),
    ({"loss": "crossentropy"}, "Did you mean: cross_entropy"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    train.fit(TinyNet(), optax.sgd(0.1), TRAIN, progress=False, **kwargs)


def test_mismatched_data_is_refused():
  with pytest.raises(ValueError, match="240 inputs but 10 targets"):
    train.fit(TinyNet(), optax.sgd(0.1), (TRAIN[0], TRAIN[1][:10]), progress=False)


def test_evaluate_at_evaluates_other_parameters_and_trains_the_iterate():
  """`evaluate_at` (e.g. SWA/EMA averages) changes what is measured, never the training."""
  seen_states = []

  def zeros(params, opt_state):
    seen_states.append(opt_state)
    return jax.tree.map(jnp.zeros_like, params)

  plain = train.fit(TinyNet(), optax.adam(0.05), TRAIN, validation=VAL, epochs=2, batch_size=32,
                    clip_norm=1.0, progress=False)
  at_zero = train.fit(TinyNet(), optax.adam(0.05), TRAIN, validation=VAL, epochs=2, batch_size=32,
                      clip_norm=1.0, progress=False, evaluate_at=zeros)
  # tx's own state is handed over, not the chain with clipping around it.
  assert all(isinstance(s[0], optax.ScaleByAdamState) for s in seen_states)
  assert [h["train_loss"] for h in at_zero.history] == [h["train_loss"] for h in plain.history]
  np.testing.assert_allclose(at_zero.history[-1]["val_loss"], np.log(3.0), rtol=1e-6)
  assert all(float(jnp.abs(p).max()) == 0 for p in jax.tree.leaves(params_of(at_zero.model)))
  assert_trees_equal(at_zero.state.params, plain.state.params)
