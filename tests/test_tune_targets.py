"""optlab.tune.targets: time-to-target, performance profiles and rank tables, by hand."""

import math
import warnings

import numpy as np
import optax
import pytest

from optlab.tune.targets import (
    Profile,
    TimeToTarget,
    format_table,
    performance_profile,
    plot_performance_profiles,
    rank_table,
    steps_to_target,
    time_to_target,
)

# ----------------------------------------------------------------------------------
# steps_to_target


def test_first_and_stay_rules_differ_on_a_swing_through_the_target():
  curve = [5.0, 0.5, 2.0, 0.9, 0.8]  # dips below 1 at 1, back above at 2, below from 3
  assert steps_to_target(curve, 1.0) == 1
  assert steps_to_target(curve, 1.0, rule="stay") == 3
  assert steps_to_target(curve, 1.0, rule="stay", steps=[0, 10, 20, 30, 40]) == 30
  assert steps_to_target(curve, 0.1) is None
  assert steps_to_target(curve, 0.1, rule="stay") is None
  assert steps_to_target([0.1, 0.2], 1.0, rule="stay") == 0
  assert steps_to_target([0.1, 2.0], 1.0, rule="stay") is None  # ends above


def test_equality_reaches_the_target_and_nan_never_does():
  assert steps_to_target([2.0, 1.0], 1.0) == 1
  assert steps_to_target([2.0, 1.0], 1.0, mode="max") == 0
  assert steps_to_target([np.nan, 0.5], 1.0) == 1
  assert steps_to_target([0.5, np.nan], 1.0, rule="stay") is None
  assert steps_to_target([np.nan, np.nan], 1.0) is None
  assert steps_to_target([np.inf, -np.inf], 0.0) == 1


def test_mode_max_for_accuracies():
  acc = [0.2, 0.91, 0.85, 0.93, 0.95]
  assert steps_to_target(acc, 0.9, mode="max") == 1
  assert steps_to_target(acc, 0.9, mode="max", rule="stay") == 3
  assert steps_to_target(acc, 0.99, mode="max") is None


def test_steps_to_target_returns_python_ints():
  hit = steps_to_target(np.array([3.0, 0.0]), 1.0, steps=np.array([5, 7], np.int64))
  assert hit == 7 and type(hit) is int


@pytest.mark.parametrize("kwargs, message", [
    ({"rule": "last"}, "rule must be one of"),
    ({"mode": "auto"}, "mode must be one of"),
    ({"steps": [0, 1, 2]}, "steps has shape"),
])
def test_steps_to_target_errors(kwargs, message):
  with pytest.raises(ValueError, match=message):
    steps_to_target([1.0, 0.5], 0.7, **kwargs)


def test_steps_to_target_rejects_empty_and_bad_inputs():
  with pytest.raises(ValueError, match="values is empty"):
    steps_to_target([], 1.0)
  with pytest.raises(ValueError, match="1-D"):
    steps_to_target([[1.0]], 1.0)
  with pytest.raises(ValueError, match="target is NaN"):
    steps_to_target([1.0], math.nan)
  with pytest.raises(TypeError, match="target must be a number"):
    steps_to_target([1.0], "0.5")


# ----------------------------------------------------------------------------------
# time_to_target


HISTORY = [
    {"epoch": 0, "step": 10, "epoch_seconds": 0.5, "val_loss": 1.2, "val_accuracy": 0.5},
    {"epoch": 1, "step": 20, "epoch_seconds": 0.25, "val_loss": 0.6, "val_accuracy": 0.8},
    {"epoch": 2, "step": 30, "epoch_seconds": 0.25, "val_loss": 0.9, "val_accuracy": 0.75},
    {"epoch": 3, "step": 40, "epoch_seconds": 0.5, "val_loss": 0.5, "val_accuracy": 0.9},
]


def test_time_to_target_on_a_hand_written_history():
  assert time_to_target(HISTORY, "val_loss", 0.7) == TimeToTarget(20, 0.75, 1, True, None)
  assert time_to_target(HISTORY, "val_loss", 0.7, rule="stay") == (40, 1.5, 3, True, None)
  # auto: accuracy goes up, loss goes down.
  assert time_to_target(HISTORY, "val_accuracy", 0.78).steps == 20
  assert time_to_target(HISTORY, "val_accuracy", 0.78, rule="stay").steps == 40
  missed = time_to_target(HISTORY, "val_loss", 0.1)
  assert missed == TimeToTarget(None, None, None, False, None)


def test_time_to_target_without_times_gives_no_seconds():
  history = [{"epoch": 0, "step": 5, "loss": 0.1}]
  assert time_to_target(history, "loss", 0.5) == TimeToTarget(5, None, 0, True, None)


def test_time_to_target_errors():
  with pytest.raises(ValueError, match="never logged"):
    time_to_target(HISTORY, "val_f1", 0.5)
  with pytest.raises(ValueError, match="cannot tell"):
    time_to_target(HISTORY, "val_margin", 0.5)
  with pytest.raises(ValueError, match="mode must be"):
    time_to_target(HISTORY, "val_loss", 0.5, mode="down")
  with pytest.raises(ValueError, match="rule must be"):
    time_to_target(HISTORY, "val_loss", 0.5, rule="last")
  with pytest.raises(ValueError, match="history is empty"):
    time_to_target([], "val_loss", 0.5)
  with pytest.raises(TypeError, match="FitResult or a list"):
    time_to_target(3.0, "val_loss", 0.5)
  with pytest.raises(ValueError, match="no 'step'"):
    time_to_target([{"epoch": 0, "val_loss": 0.1}], "val_loss", 0.5)


def test_time_to_target_reads_a_real_fit_result():
  from flax import nnx

  from optlab import models, train

  rng = np.random.default_rng(0)
  centers = np.eye(3, 4, dtype=np.float32) * 3
  y = rng.integers(0, 3, 192).astype(np.int32)
  x = (centers[y] + 0.5 * rng.normal(size=(192, 4))).astype(np.float32)
  model = models.MLP(4, (8,), 3, rngs=nnx.Rngs(0))
  result = train.fit(model, optax.adam(0.05), (x[:128], y[:128]), validation=(x[128:], y[128:]),
                     metrics=("accuracy",), epochs=6, batch_size=32, progress=False)
  hit = time_to_target(result, "val_accuracy", 0.9)
  assert hit.reached and hit.compile_seconds == result.compile_seconds > 0
  k = next(i for i, h in enumerate(result.history) if h["val_accuracy"] >= 0.9)
  assert hit.steps == result.history[k]["step"] == 4 * (k + 1)
  assert hit.epoch == k
  assert hit.seconds == pytest.approx(sum(h["epoch_seconds"] for h in result.history[:k + 1]))
  assert hit.seconds <= result.train_seconds + 1e-9  # compile time is not in it
  assert time_to_target(result, "val_loss", 1e-9).reached is False


# ----------------------------------------------------------------------------------
# performance_profile


# 3 submissions × 4 workloads; c never reaches w4, nobody reaches w5.
TIMES = {
    "a": {"w1": 10.0, "w2": 20.0, "w3": 30.0, "w4": 40.0, "w5": None},
    "b": {"w1": 20.0, "w2": 10.0, "w3": 90.0, "w4": 80.0, "w5": math.inf},
    "c": {"w1": 15.0, "w2": 50.0, "w3": 45.0, "w4": None, "w5": math.nan},
}
# Ratios by hand (best per workload: 10, 10, 30, 40):
RATIOS = {
    "a": {"w1": 1.0, "w2": 2.0, "w3": 1.0, "w4": 1.0},
    "b": {"w1": 2.0, "w2": 1.0, "w3": 3.0, "w4": 2.0},
    "c": {"w1": 1.5, "w2": 5.0, "w3": 1.5, "w4": math.inf},
}


def test_performance_profile_matches_the_hand_computed_one():
  with pytest.warns(UserWarning, match=r"no submission reached the target on \['w5'\]"):
    profile = performance_profile(TIMES, taus=[1.0, 1.5, 2.0, 3.0, 4.0])
  assert isinstance(profile, Profile)
  assert profile.workloads == ("w1", "w2", "w3", "w4") and profile.dropped == ("w5",)
  assert profile.ratios == RATIOS
  np.testing.assert_array_equal(profile.rho["a"], [0.75, 0.75, 1.0, 1.0, 1.0])
  np.testing.assert_array_equal(profile.rho["b"], [0.25, 0.25, 0.75, 1.0, 1.0])
  np.testing.assert_array_equal(profile.rho["c"], [0.0, 0.5, 0.5, 0.5, 0.5])
  # Scores: mean_w max(0, 4 - r) / 3.
  assert profile.scores["a"] == pytest.approx((3 + 2 + 3 + 3) / 4 / 3)
  assert profile.scores["b"] == pytest.approx((2 + 3 + 1 + 2) / 4 / 3)
  assert profile.scores["c"] == pytest.approx((2.5 + 0 + 2.5 + 0) / 4 / 3)


def test_score_is_the_area_under_the_step_function():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    profile = performance_profile(TIMES, taus=np.linspace(1, 4, 300_001))
  for s in TIMES:
    area = np.mean(profile.rho[s][:-1]) * 3 / 3  # right-continuous steps, fine grid
    assert profile.scores[s] == pytest.approx(area, abs=1e-4)


def test_default_taus_contain_every_ratio_in_range():
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    profile = performance_profile(TIMES)
  assert profile.taus[0] == 1.0 and profile.taus[-1] == 4.0
  assert {1.5, 2.0, 3.0} <= set(profile.taus.tolist())
  assert 5.0 not in profile.taus  # c's w2 ratio is past max_tau
  assert profile.to_dict()["scores"] == profile.scores


def test_max_tau_changes_the_score():
  times = {"a": {"w": 1.0}, "b": {"w": 2.0}}
  assert performance_profile(times, max_tau=2.0).scores == {"a": 1.0, "b": 0.0}
  assert performance_profile(times, max_tau=3.0).scores == {"a": 1.0, "b": 0.5}


@pytest.mark.parametrize("times, message", [
    ({}, "non-empty mapping"),
    ({"a": {}}, "has no workloads"),
    ({"a": {"w": 1.0}, "b": {"v": 1.0}}, "every submission must report every workload"),
    ({"a": {"w": None}, "b": {"w": math.inf}}, "no submission reached"),
    ({"a": {"w": 0.0}}, "must be > 0"),
    ({"a": {"w": -1.0}}, "must be > 0"),
])
def test_performance_profile_errors(times, message):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with pytest.raises(ValueError, match=message):
      performance_profile(times)


def test_performance_profile_rejects_bad_taus_and_max_tau():
  with pytest.raises(ValueError, match="max_tau must be > 1"):
    performance_profile({"a": {"w": 1.0}}, max_tau=1.0)
  with pytest.raises(ValueError, match="taus must be"):
    performance_profile({"a": {"w": 1.0}}, taus=[0.5, 2.0])
  with pytest.raises(TypeError, match="must be a number or None"):
    performance_profile({"a": {"w": "fast"}})


def test_plot_performance_profiles_writes_a_png(tmp_path):
  import matplotlib

  matplotlib.use("Agg")
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    profile = performance_profile(TIMES)
  path = tmp_path / "profile.png"
  plot_performance_profiles(profile, path=str(path), log2=True)
  assert path.stat().st_size > 1000


# ----------------------------------------------------------------------------------
# rank_table and format_table


def test_rank_table_by_hand():
  rows = rank_table(TIMES)
  by_name = {row["submission"]: row for row in rows}
  assert by_name["a"] == {"submission": "a", "w1": 1.0, "w2": 2.0, "w3": 1.0, "w4": 1.0,
                          "w5": 2.0, "mean_rank": 1.4}
  # w5: nobody reached it -> all tie at rank 2; w4: c never reached it -> last.
  assert by_name["b"]["w4"] == 2.0 and by_name["c"]["w4"] == 3.0
  assert [row["submission"] for row in rows] == ["a", "b", "c"]


def test_rank_table_higher_is_better_and_ties():
  rows = rank_table({"x": {"acc": 0.9}, "y": {"acc": 0.9}, "z": {"acc": 0.95}},
                    lower_is_better=False)
  assert [(r["submission"], r["acc"]) for r in rows] == [("z", 1.0), ("x", 2.5), ("y", 2.5)]


def test_rank_table_errors():
  with pytest.raises(ValueError, match="non-empty mapping"):
    rank_table({})
  with pytest.raises(ValueError, match="has workloads"):
    rank_table({"a": {"w": 1.0}, "b": {"w": 1.0, "v": 2.0}})


def test_format_table_aligns_columns():
  text = format_table([{"name": "adam", "rank": 1.25, "steps": None},
                       {"name": "sgd", "rank": 12.0, "steps": 300}])
  assert text.splitlines() == ["name  rank  steps",
                               "adam  1.25      -",
                               "sgd     12    300"]
  with pytest.raises(ValueError, match="rows is empty"):
    format_table([])
