"""Tests of the lr_batch_sensitivity study: the runner end to end on a tiny grid, the
combined SGD/Adam optimizer against the registry's, and the analysis on hand-made grids."""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from optlab import optim, results
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]



RUN = load_module("lr_batch_sensitivity_run_under_test",
            REPO / "experiments" / "lr_batch_sensitivity" / "run.py")
FIGURE = load_module("lr_batch_sensitivity_figure_under_test",
               REPO / "paper_figures" / "lr_batch_sensitivity.py")

# Two epochs of a tiny MLP, 2 learning rates per optimizer, one batch size: one compiled
# program (the runtime is compilation).
TINY = RUN.config.QUICK.replace(
  name="tiny",
  hidden_sizes=(8,),
  epochs=2,
  batch_sizes=(128,),
  sgd_learning_rates=(0.1, 100.0),  # 100 diverges
  momentum_learning_rates=(0.01, 0.1),
  adam_learning_rates=(1e-3, 1e-2),
)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("lr_batch_sensitivity")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--seeds", "2", "--results", str(path), "--figure",
                     str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run):
  path, figure = tiny_run
  records = results.read_records(path)
  assert [r["optimizer"] for r in records] == list(TINY.optimizers)
  assert len({r["run_id"] for r in records}) == 1
  for r in records:
    json.dumps(r, allow_nan=False)
    assert r["study"] == "lr_batch_sensitivity" and r["seeds"] == [0, 1]
    assert r["provenance"]["versions"]["jax"] == jax.__version__
    assert r["config"]["name"] == "tiny" and r["config"]["num_seeds"] == 2
    acc = np.array(r["grid"]["val_accuracy"], dtype=np.float64)  # None (diverged) -> NaN
    assert acc.shape == (2, 1, 2)  # lr × batch × seed
    finite = acc[np.isfinite(acc)]
    assert finite.size and np.all((finite >= 0) & (finite <= 1))
    assert np.asarray(r["diverged"]).shape == (2, 1, 2)
    t = r["timing"]
    assert t["programs"] == 1 and t["runs"] == 3 * 2 * 1 * 2
    assert t["compile_s"] > 0 and t["train_s"] > 0
    a = r["analysis"]
    assert len(a["best_lr_per_batch"]) == 1 and a["tolerance"] == TINY.tolerance
    assert a["best_lr_slope"] is None  # one batch size: no slope
  sgd = records[0]
  assert np.all(sgd["diverged"][1])  # α = 100 diverges at every batch size and seed
  assert figure.stat().st_size > 10_000
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure_redraws_from_the_records_alone(tiny_run, tmp_path):
  path, _ = tiny_run
  copy = tmp_path / "copy.jsonl"
  copy.write_text(path.read_text())
  out = tmp_path / "redrawn.png"
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_main_rejects_bad_seed_counts():
  with pytest.raises(SystemExit):
    RUN.main(["--seeds", "0"])


def _run_updates(tx, steps: int = 4, seed: int = 0):
  keys = jax.random.split(jax.random.key(seed), steps + 1)
  params = {"w": jax.random.normal(keys[0], (3, 4)), "b": jnp.ones(4)}
  state = tx.init(params)
  for key in keys[1:]:
    grads = jax.tree.map(lambda p, key=key: jax.random.normal(key, p.shape), params)
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params


@pytest.mark.parametrize(("optimizer", "reference"), [
  ("sgd", lambda lr: optim.sgd(lr)),
  ("momentum", lambda lr: optim.heavy_ball(lr, 0.9)),  # the paper form, same as torch's
  ("adam", lambda lr: optim.adam(lr)),
])
def test_combined_optimizer_is_the_registry_optimizer(optimizer, reference):
  extra = TINY.hyperparameters(optimizer)
  got = _run_updates(RUN.sgd_or_adam(3e-2, **extra))
  want = _run_updates(reference(3e-2))
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), got, want)
  injected = optax.inject_hyperparams(RUN.sgd_or_adam)(learning_rate=3e-2, **extra)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               _run_updates(injected), want)


def test_refine_minimum_finds_the_vertex_and_flags_edges():
  x = np.log10([1e-3, 1e-2, 1e-1, 1.0])
  y = (x + 1.6) ** 2  # minimum at 10^-1.6, between grid points
  value, i, edge = RUN.refine_minimum(x, y)
  assert value == pytest.approx(-1.6) and i == 1 and not edge
  value, i, edge = RUN.refine_minimum(x, np.array([3.0, 2.0, 1.0, np.nan]))
  assert value == pytest.approx(-1.0) and i == 2 and edge  # next to divergence
  assert RUN.refine_minimum(x, np.array([0.0, 1.0, 2.0, 3.0]))[2]  # on the edge
  with pytest.raises(ValueError, match="all diverged"):
    RUN.refine_minimum(x, np.full(4, np.nan))


def test_analysis_reads_linear_scaling_and_widths():
  lrs = [1e-3, 1e-2, 1e-1, 1.0, 10.0]
  batches = [10, 100, 1000]
  log_lr = np.log10(lrs)[:, None]
  # Best α ∝ B: a parabola in log α around log10(B) − 3.3, between grid points.
  centers = np.log10(batches)[None, :] - 3.3
  loss = (log_lr - centers) ** 2
  acc = 1.0 - 0.02 * loss
  a = RUN.analyze(lrs, batches, loss, acc, tolerance=0.01)
  assert a["best_lr_slope"] == pytest.approx(1.0)
  assert a["best_lr_correlation"] == pytest.approx(1.0)
  np.testing.assert_allclose(a["best_lr_per_batch"], 10 ** centers[0])
  # Within 1 point of the column's best (0.02·0.3² vs 0.02·0.7²): the two grid points
  # nearest each center, 2 points × 1 decade each.
  assert a["good_width_decades"] == [2.0, 2.0, 2.0]
  assert a["shared_good_width_decades"] == 0.0  # no α is good at every batch size
  flat = RUN.analyze(lrs, batches, np.repeat((log_lr + 2) ** 2, 3, axis=1),
                     np.repeat(1.0 - 0.001 * (log_lr + 2) ** 2, 3, axis=1))
  assert flat["best_lr_slope"] == pytest.approx(0.0, abs=1e-9)
  assert flat["best_lr_correlation"] is None  # nothing moves
  assert flat["best_lr_at_edge"] == [False] * 3


def test_analysis_treats_diverged_cells_as_bad():
  lrs, batches = [0.1, 1.0, 10.0], [16, 64]
  loss = np.array([[0.5, 0.6], [0.2, 0.3], [np.nan, 0.1]])
  acc = np.array([[0.90, 0.89], [0.95, 0.94], [np.nan, 0.97]])
  a = RUN.analyze(lrs, batches, loss, acc)
  assert a["best_lr_grid_per_batch"] == [1.0, 10.0]
  assert a["best_lr_at_edge"] == [True, True]
  assert a["good_lrs_per_batch"] == [[1.0], [10.0]]
  assert a["best_index"] == [2, 1] and a["best_val_accuracy"] == pytest.approx(0.97)


def test_unknown_optimizers_are_rejected():
  with pytest.raises(ValueError, match="unknown optimizer"):
    TINY.hyperparameters("lion")
  with pytest.raises(ValueError, match="no grid"):
    TINY.learning_rates("lion")


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "lr_batch_sensitivity" in cli.study_names()
