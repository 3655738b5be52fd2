"""Tests of the edge_of_stability study: the runner end to end on a tiny configuration,
the compiled GD + sharpness program against plain GD and a dense Hessian, the summaries
on hand-made curves, and the saved quick run against its own claims."""

from __future__ import annotations

import functools
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _resume import die_at_call
from flax import nnx

from optlab import models, results
from optlab.diagnostics.hessian import dense_hessian
from optlab.studies import load_module  # the way `optlab reproduce` loads a study

REPO = pathlib.Path(__file__).resolve().parents[1]
SAVED = REPO / "paper_figures" / "results" / "edge_of_stability.jsonl"

RUN = load_module("edge_of_stability_run_under_test",
                  REPO / "experiments" / "edge_of_stability" / "run.py")
FIGURE = load_module("edge_of_stability_figure_under_test",
                     REPO / "paper_figures" / "edge_of_stability.py")

# 200 images, one hidden layer of 8, 60 steps, a measurement every 10: one small program.
TINY = RUN.config.QUICK.replace(name="tiny", train_size=200, hidden_sizes=(8,), steps=60,
                                sharpness_every=10, lanczos_iterations=12,
                                step_sizes=(0.3, 0.6))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """`main` on TINY (as `optlab reproduce` calls it): the records file and the figure."""
  out = tmp_path_factory.mktemp("edge_of_stability")
  path, figure = out / "results.jsonl", out / "figure.png"
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(RUN.config.CONFIGS, "quick", TINY)
    assert RUN.main(["--quick", "--results", str(path), "--figure", str(figure)]) == 0
  return path, figure


def test_runner_writes_serializable_records_and_a_figure(tiny_run, tmp_path):
  path, figure = tiny_run
  (record,) = results.read_records(path)
  json.dumps(record, allow_nan=False)
  assert record["study"] == "edge_of_stability" and record["config"]["name"] == "tiny"
  assert record["provenance"]["versions"]["jax"] == jax.__version__
  assert record["sharpness_steps"] == list(range(0, 61, 10))
  assert [(r["seed"], r["eta"]) for r in record["runs"]] == [(0, 0.3), (0, 0.6)]
  for run in record["runs"]:
    assert len(run["loss"]) == 61 and len(run["sharpness"]) == 7
    assert run["threshold"] == pytest.approx(2 / run["eta"])
  assert record["timing"]["compile_s"] > 0 and record["timing"]["gd_steps"] == 120
  assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
  copy, out = tmp_path / "copy.jsonl", tmp_path / "redrawn.png"
  copy.write_text(path.read_text())
  assert FIGURE.main([str(copy), "--out", str(out)]) == 0
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_killed_run_resumes_from_its_saved_runs(tiny_run, tmp_path, monkeypatch, capsys):
  """A run that dies in its second (seed, η) run keeps the first (saved at once); run
  again, it reads that one back, computes only the other, and ends with the record of the
  uninterrupted run (`tiny_run`: the same config and seed) bit for bit."""
  calls = die_at_call(monkeypatch, RUN, "gd_run", 2, lambda *args: args[2])  # η
  # One program and one data set for both processes stood in for here (compiled once).
  monkeypatch.setattr(RUN, "make_gd", functools.cache(RUN.make_gd))
  monkeypatch.setattr(RUN, "load_workload", functools.cache(RUN.load_workload))
  path = tmp_path / "results.jsonl"
  with pytest.raises(RuntimeError, match="killed"):
    RUN.run(TINY, path)
  assert not path.exists()
  RUN.run(TINY, path)
  assert calls == [0.3, 0.6, 0.6]  # η = 0.3 was read back, not run again
  out = capsys.readouterr().out
  assert "resuming run" in out and out.rstrip().endswith("seed=0/eta=0.3)")

  def science(r):
    return {k: v for k, v in r.items() if k not in ("run_id", "provenance", "timing")}

  (got,), (want,) = results.read_records(path), results.read_records(tiny_run[0])
  assert science(got) == science(want)


def _problem(seed=0, n=24, sizes=(6, 5, 3)):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((n, sizes[0])), jnp.float32)
  targets = jnp.asarray(np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)], jnp.float32)
  return RUN.init_mlp(seed, sizes), x, targets


def test_the_program_is_plain_gradient_descent_and_tracks_the_dense_hessian():
  params, x, targets = _problem()
  cfg = TINY.replace(steps=20, sharpness_every=5, lanczos_iterations=20)
  eta = 0.3
  out = RUN.make_gd(cfg)(params, jnp.float32(eta), x, targets, jax.random.key(0))
  loss = jax.jit(lambda p: RUN.squared_loss(p, x, targets, jnp.tanh))
  hessian = jax.jit(lambda p: dense_hessian(loss, p))
  step = jax.jit(lambda p: jax.tree.map(lambda w, g: w - eta * g, p, jax.grad(loss)(p)))
  manual = params
  for t in range(cfg.steps):
    assert float(out["loss"][t]) == pytest.approx(float(loss(manual)), rel=1e-5)
    if t % cfg.sharpness_every == 0:
      dense = np.linalg.eigvalsh(np.asarray(hessian(manual), np.float64))
      tracked = float(out["sharpness"][t // cfg.sharpness_every])
      assert tracked == pytest.approx(dense[-1], rel=1e-3)
    manual = step(manual)
  assert float(out["loss"][-1]) == pytest.approx(float(loss(manual)), rel=1e-5)
  for got, want in zip(jax.tree.leaves(out["params"]), jax.tree.leaves(manual), strict=True):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_make_gd_rejects_steps_not_a_multiple_of_the_interval():
  with pytest.raises(ValueError, match="multiple of sharpness_every"):
    RUN.make_gd(TINY.replace(steps=55))


def test_the_network_is_optlab_mlp_with_pytorch_init():
  params, x, _ = _problem(sizes=(6, 5, 4, 3))
  model = models.MLP(6, (5, 4), 3, activation="tanh", rngs=nnx.Rngs(0))
  for layer, p in zip([*model.layers, model.head], params, strict=True):
    layer.kernel[...] = p["kernel"]
    layer.bias[...] = p["bias"]
  np.testing.assert_allclose(RUN.apply_mlp(params, x, jnp.tanh), model(x), rtol=1e-5, atol=1e-6)
  wide = np.asarray(RUN.init_mlp(1, (400, 300))[0]["kernel"])
  bound = 1 / np.sqrt(400)
  assert np.max(np.abs(wide)) <= bound
  assert np.std(wide) == pytest.approx(bound / np.sqrt(3), rel=0.02)  # uniform's std


def test_pool_images():
  images = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
  pooled = RUN.pool_images(images, 2)
  assert pooled.shape == (2, 4)
  assert pooled[0].tolist() == [2.5, 4.5, 10.5, 12.5]
  with pytest.raises(ValueError, match="pool"):
    RUN.pool_images(images, 3)


def test_summarize_run_on_a_hand_made_curve():
  steps = np.arange(0, 101, 10)
  # Sharpness rises to 2/η = 10 at step 40 and then stays within ±10% except once.
  sharp = np.array([4, 6, 8, 9.5, 10.2, 9.8, 10.5, 12.0, 10.1, 9.9, 10.0])
  loss = np.linspace(1.0, 0.5, 101)
  loss[[60, 61, 80]] += 0.2  # rises at 59 -> 60 and 79 -> 80 (60 -> 61 still falls)
  s = RUN.summarize_run(loss, sharp, steps, eta=0.2, band=0.1)
  assert s["first_step"] == 40 and s["reached"]
  assert s["fraction_within_band"] == pytest.approx(6 / 7)  # 12.0 is 20% above
  assert s["min_sharpness_before"] == 4
  increases = np.diff(loss) > 0
  assert s["loss_increases_after"] == int(increases[40:].sum()) == 2
  assert s["loss_increases_before"] == 0 and s["steps_after"] == 60
  assert s["loss_at_first"] == pytest.approx(loss[40]) and s["loss_falls_after"]
  assert s["late_mean_ratio"] == pytest.approx((9.9 + 10.0) / 2 / 10)  # steps ≥ 85: 90, 100
  assert s["loss_increases_second_half"] == 1  # from step 70 on: 79 -> 80
  never = RUN.summarize_run(loss, sharp, steps, eta=0.1, band=0.1)  # 2/η = 20: never reached
  assert not never["reached"] and never["first_step"] is None
  assert never["fraction_within_band"] is None


def test_summarize_needs_two_step_sizes_at_the_edge():
  good = {"reached": True, "eta": 0.1, "finite": True, "fraction_within_band": 0.9,
          "mean_ratio_after": 1.02, "loss_increases_after": 5, "steps_after": 50,
          "loss_increases_before": 0, "loss_falls_after": True}
  assert RUN.summarize([good, {**good, "eta": 0.2}], band=0.1)["held"]
  assert not RUN.summarize([good], band=0.1)["held"]  # one step size is not a trend
  assert not RUN.summarize([good, {**good, "eta": 0.2, "fraction_within_band": 0.5}], 0.1)["held"]
  assert not RUN.summarize([good, {**good, "eta": 0.2, "loss_increases_after": 0}], 0.1)["held"]


@pytest.mark.skipif(not SAVED.is_file(), reason="no saved quick run")
def test_the_saved_quick_run_supports_its_claims():
  record = results.read_records(SAVED)[-1]
  assert record["config"]["name"] == "quick"
  steps = np.asarray(record["sharpness_steps"])
  for run in record["runs"]:  # the summaries follow from the saved curves
    again = RUN.summarize_run(np.asarray(run["loss"]), np.asarray(run["sharpness"]), steps,
                              run["eta"], record["summary"]["band"])
    assert again["first_step"] == run["first_step"]
    assert again["loss_increases_after"] == run["loss_increases_after"]
  s = record["summary"]
  assert s["held"] and s["reached"] == len(record["runs"]) == 3
  assert s["min_fraction_within_band"] >= 0.9 and s["loss_increases_before"] == 0


def test_the_cli_finds_the_study():
  from optlab import cli

  assert "edge_of_stability" in cli.study_names()
