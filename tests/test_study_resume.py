"""Kill and resume for studies (issue 9): optlab.study_progress, a study killed with SIGKILL
and started again, and the up-front check that a run's outputs can be written."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import pathlib
import signal
import subprocess
import sys
import time
from typing import NamedTuple

import numpy as np
import pytest

from optlab import cli, results
from optlab.studies import check_output_paths, load_module, study_parser
from optlab.study_progress import Progress, ProgressMismatchError, decode, encode, side_path

REPO = pathlib.Path(__file__).resolve().parents[1]


class Config(NamedTuple):
  epochs: int = 3
  rates: tuple[float, ...] = (0.1, 0.3)


def _square(x):
  return {"x": x, "square": np.float32(x) ** 2, "curve": np.arange(3.0) * x}


def _boom(*args):
  raise AssertionError("a recovered unit was computed again")


# ----------------------------------------------------------------------------------
# Units read back exactly as they were computed.


def test_units_read_back_exactly_as_computed():
  value = {
    "floats": [1.5, float("nan"), float("inf"), -float("inf"), 0.1 + 0.2],
    "array32": np.array([[1.0, np.nan], [np.inf, 1 / 3]], np.float32),
    "ints": np.arange(6, dtype=np.int64).reshape(2, 3), "bools": np.array([True, False]),
    "strings": np.array(["ab", "c"]), "zero_d": np.array(2.5), "empty": np.zeros((0, 3)),
    "scalar32": np.float32(0.1), "scalar_bool": np.bool_(True), "scalar_int": np.int32(-7),
    "tuple": (1, "x", None), "keys": {(1, 2): "pair", 3: [None]},
    "tagged": {"__optlab__": "not a tag"}, "inf_scalar": np.float64(-np.inf),
  }
  back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
  assert back.keys() == value.keys()
  for key, want in value.items():
    got = back[key]
    assert type(got) is type(want), key
    if isinstance(want, (np.ndarray, np.generic)):
      assert got.dtype == want.dtype and np.shape(got) == np.shape(want), key
      np.testing.assert_array_equal(got, want, err_msg=key)
    elif key == "floats":
      np.testing.assert_array_equal(np.array(got), np.array(want))
    else:
      assert got == want, key


def test_values_without_an_exact_form_are_stored_as_in_the_results_file():
  class Point(NamedTuple):
    x: float
    y: float

  value = {"point": Point(1.0, 2.0), "set": {3, 1}, "path": pathlib.Path("a/b")}
  assert decode(encode(value)) == results.to_jsonable(value)
  with pytest.raises(TypeError, match="object"):
    encode({"f": object()})


# ----------------------------------------------------------------------------------
# Progress: saved at once, resumed, refused, restarted, finished.


def test_units_are_saved_at_once_and_a_reopened_run_resumes_them(tmp_path, capsys):
  path = tmp_path / "runs.jsonl"
  first = Progress.open(path, "demo", Config(), seed=0)
  assert first.unit("a", _square, 2.0)["square"] == np.float32(4.0)
  first.unit("b", _square, 3.0)
  side = side_path(path, "demo")
  assert first.path == side and side.name == "runs.jsonl.demo.inprogress.jsonl"
  lines = results.read_records(side)
  assert [r["kind"] for r in lines] == ["header", "unit", "unit"] and not path.exists()
  assert lines[0]["config"] == {"epochs": 3, "rates": [0.1, 0.3]}

  again = Progress.open(path, "demo", Config(), seed=0)  # a new process, after a kill
  assert "resuming run" in capsys.readouterr().out
  assert again.run_id == first.run_id and again.recovered == ("a", "b") and len(again) == 2
  got = again.unit("a", _boom)
  assert got["square"].dtype == np.float32 and got["square"] == np.float32(4.0)
  np.testing.assert_array_equal(got["curve"], [0.0, 2.0, 4.0])
  again.unit("c", _square, 4.0)
  records = [{"study": "demo", "run_id": again.run_id, "unit": k, **again[k]} for k in "abc"]
  again.finish(records)
  assert [r["unit"] for r in results.read_records(path)] == ["a", "b", "c"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.jsonl"]  # no side or lock file
  fresh = Progress.open(path, "demo", Config(), seed=0)  # finished: a new run starts
  assert fresh.run_id != first.run_id and len(fresh) == 0


def test_another_config_or_seed_is_refused_until_restart(tmp_path, capsys):
  path = tmp_path / "runs.jsonl"
  first = Progress.open(path, "demo", Config(), seed=0)
  first.unit("a", _square, 2.0)
  with pytest.raises(ProgressMismatchError, match=r"epochs: 3 then, 4 now.*--restart"):
    Progress.open(path, "demo", Config(epochs=4), seed=0)
  with pytest.raises(ProgressMismatchError, match=r"seed: 0 then, 1 now"):
    Progress.open(path, "demo", Config(), seed=1)
  other = Progress.open(path, "other_study", Config(epochs=4), seed=1)  # its own side file
  assert len(other) == 0
  restarted = Progress.open(path, "demo", Config(epochs=4), seed=0, restart=True)
  assert "discarding" in capsys.readouterr().out
  assert restarted.run_id != first.run_id and "a" not in restarted
  assert restarted.unit("a", _square, 5.0)["x"] == 5.0


def test_a_torn_line_is_skipped_with_a_warning_and_its_unit_computed_again(tmp_path):
  path = tmp_path / "runs.jsonl"
  first = Progress.open(path, "demo", Config(), seed=0)
  for x, key in enumerate("abc"):
    first.unit(key, _square, float(x))
  side = side_path(path, "demo")
  lines = side.read_text().splitlines(keepends=True)
  lines[2] = lines[2][: len(lines[2]) // 2] + "\n"  # unit "b" torn (bit rot, a bad copy)
  side.write_text("".join(lines))
  with pytest.warns(UserWarning, match="skipping corrupted record"):
    again = Progress.open(path, "demo", Config(), seed=0)
  assert again.recovered == ("a", "c") and again.run_id == first.run_id
  calls = []
  again.unit("b", lambda: calls.append(1) or _square(1.0))
  assert calls == [1] and again["b"]["x"] == 1.0
  with pytest.warns(UserWarning):  # the torn line stays, skipped; "b" is there once more
    assert Progress.open(path, "demo", Config(), seed=0).recovered == ("a", "c", "b")


def test_a_run_already_in_the_results_file_is_not_resumed_twice(tmp_path, capsys):
  """Killed between finish()'s append and its removal of the side file."""
  path = tmp_path / "runs.jsonl"
  first = Progress.open(path, "demo", Config(), seed=0)
  first.unit("a", _square, 2.0)
  results.append_records(path, [{"study": "demo", "run_id": first.run_id}])
  again = Progress.open(path, "demo", Config(), seed=0)
  assert "already in" in capsys.readouterr().out
  assert again.run_id != first.run_id and len(again) == 0
  assert not side_path(path, "demo").exists()


def test_without_a_results_path_nothing_is_written(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  progress = Progress.open(None, "demo", Config(), seed=0)
  assert progress.path is None and progress.unit("a", _square, 2.0)["x"] == 2.0
  with pytest.raises(ValueError, match="already done"):
    progress.add("a", 1)
  with pytest.raises(TypeError, match="key must be a string"):
    progress.add(3, 1)
  progress.finish([{"x": 1}])
  with pytest.raises(ValueError, match="already finished"):
    progress.add("b", 1)
  assert list(tmp_path.iterdir()) == []


def test_a_second_process_on_the_same_run_is_refused(tmp_path):
  path = tmp_path / "runs.jsonl"
  side = side_path(path, "demo")
  with open(side.with_name(f".{side.name}.lock"), "a") as other:  # what another process holds
    fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with pytest.raises(RuntimeError, match="another process is running this study"):
      Progress.open(path, "demo", Config(), seed=0)
  Progress.open(path, "demo", Config(), seed=0).unit("a", _square, 1.0)  # released: fine


def test_bad_configs_are_rejected():
  with pytest.raises(TypeError, match="NamedTuple, a dataclass or a mapping"):
    Progress.open(None, "demo", [1, 2], seed=0)


# ----------------------------------------------------------------------------------
# Unwritable outputs: a clear error before anything runs.


def test_unwritable_folders_are_reported_before_the_run(tmp_path, monkeypatch):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a folder")
  with pytest.raises(OSError, match=r"cannot write results \(--results .*a_file/r.jsonl\) to "
                                    r".*a_file: .*nothing was run"):
    check_output_paths(blocker / "r.jsonl")
  parser = study_parser("demo", tmp_path / "ok" / "r.jsonl", tmp_path / "figs" / "f.png", tmp_path)
  with pytest.raises(OSError, match="the figure"):
    parser.parse_args(["--figure", str(blocker / "f.png")])
  args = parser.parse_args(["--figure", str(blocker / "f.png"), "--no-figure", "--restart"])
  assert args.restart and (tmp_path / "ok").is_dir() and not (tmp_path / "figs").exists()
  assert not parser.parse_args([]).restart and (tmp_path / "figs").is_dir()
  assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == []  # the probe is gone

  class Usage(NamedTuple):
    total: int
    used: int
    free: int

  monkeypatch.setattr(results.shutil, "disk_usage", lambda p: Usage(10**9, 10**9, 100))
  with pytest.raises(OSError, match="only 100 bytes free") as error:
    check_output_paths(tmp_path / "ok" / "r.jsonl")
  assert error.value.errno == errno.ENOSPC


def test_a_runner_with_an_unwritable_results_path_fails_before_training(tmp_path, monkeypatch):
  run = load_module("decoupled_weight_decay_run_under_test",
                    REPO / "experiments" / "decoupled_weight_decay" / "run.py")
  monkeypatch.setattr(run, "load_workload", _boom)  # no data loaded, nothing trained
  (tmp_path / "a_file").write_text("")
  with pytest.raises(OSError, match="cannot write results"):
    run.main(["--results", str(tmp_path / "a_file" / "r.jsonl")])


def test_reproduce_forwards_restart(tmp_path, monkeypatch, capsys):
  (tmp_path / "alpha").mkdir()
  (tmp_path / "alpha" / "run.py").write_text(
      "import sys\nprint('alpha ran with', ' '.join(sys.argv[1:]))\n")
  monkeypatch.setenv("OPTLAB_EXPERIMENTS", str(tmp_path))
  assert cli.main(["reproduce", "--jobs", "2", "--restart"]) == 0
  assert "alpha ran with --quick --restart" in capsys.readouterr().out


# ----------------------------------------------------------------------------------
# The headline test: a study killed with SIGKILL resumes; nothing is lost or run twice.

STUDY = "decoupled_weight_decay"
METHODS = ("adamw_paper", "sgdw", "adam_l2")
TINY = ["--set", f"methods={METHODS!r}", "--set", "train_size=256", "--set", "val_size=128",
        "--set", "test_size=128", "--set", "hidden_sizes=(8,)", "--set", "batch_size=64",
        "--set", "epochs=1", "--set", "adam_learning_rates=(1e-3, 1e-2)",
        "--set", "sgd_learning_rates=(1e-2, 1e-1)", "--set", "adam_l2_decays=(1e-3, 1e-1)",
        "--set", "paper_decays=(1e-4, 1e-2)", "--seeds", "2", "--no-figure"]
KILL_SEED = 20240609  # the kill point, k units done, is drawn from this seed


# The runner's own `main`, in a process of its own, fed scikit-learn's digits instead of
# Fashion-MNIST (as in tests/test_decoupled_weight_decay.py; parsing it takes seconds).
CHILD = f"""
import sys
from optlab.studies import load_module
run = load_module("resumed_study", {str(REPO / "experiments" / STUDY / "run.py")!r})
def missing(*args, **kwargs):
  raise FileNotFoundError("left out by the test")
run.data.fashion_mnist = missing
sys.exit(run.main(sys.argv[1:]))
"""


def _start(results_path: pathlib.Path, cache: pathlib.Path) -> subprocess.Popen:
  env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu",
         # a compilation cache shared by the three processes (the numbers do not change)
         "JAX_COMPILATION_CACHE_DIR": str(cache),
         "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
  return subprocess.Popen([sys.executable, "-c", CHILD, "--results", str(results_path), *TINY],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _units(side: pathlib.Path) -> list[dict]:
  if not side.exists():
    return []
  return [r for r in results.read_records(side) if r.get("kind") == "unit"]


def _science(record: dict) -> dict:
  """A record without what differs between processes: timings and provenance."""
  return {k: v for k, v in record.items() if k not in ("timing", "provenance", "run_id")}


def test_a_study_killed_with_sigkill_resumes_and_runs_every_unit_once(tmp_path):
  k = int(np.random.default_rng(KILL_SEED).integers(1, len(METHODS)))  # 1 or 2 of 3
  cache = tmp_path / "jax_cache"
  killed_path, reference_path = tmp_path / "killed.jsonl", tmp_path / "reference.jsonl"
  side = side_path(killed_path, STUDY)
  reference = _start(reference_path, cache)  # uninterrupted, alongside
  child = resumed = None
  try:
    child = _start(killed_path, cache)
    deadline = time.monotonic() + 90
    while len(_units(side)) < k:  # wait for k units to be saved (never a blind sleep)
      assert child.poll() is None, f"the run ended before it was killed:\n{child.stdout.read()}"
      assert time.monotonic() < deadline, "no progress in 90 s"
      time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    saved = _units(side)
    assert k <= len(saved) < len(METHODS) and not killed_path.exists()
    run_id = saved[0]["run_id"]

    resumed = _start(killed_path, cache)  # the same command again
    out, _ = resumed.communicate(timeout=90)
    assert resumed.returncode == 0, out
    ref_out, _ = reference.communicate(timeout=90)
    assert reference.returncode == 0, ref_out
  finally:
    for proc in (reference, child, resumed):
      if proc is not None and proc.poll() is None:
        proc.kill()
        proc.communicate()
  n = len(saved)
  assert f"resuming run {run_id}" in out and f"({n} unit{'s' * (n != 1)} already done" in out

  final = results.read_records(killed_path)
  assert [r["method"] for r in final] == list(METHODS)  # each unit exactly once
  assert {r["run_id"] for r in final} == {run_id} and not side.exists()
  want = results.read_records(reference_path)
  for got, expected in zip(final, want, strict=True):
    assert _science(got) == _science(expected), got["method"]  # bit for bit
  for unit in saved:  # not recomputed: the timings are the killed process's
    record = next(r for r in final if r["method"] == unit["key"])
    assert record["timing"] == unit["value"]["timing"]
  assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no lock left


# ----------------------------------------------------------------------------------
# The other resumable studies, in process: interrupted after their first unit, run again.


class _Killed(Exception):
  pass


def _interrupt_and_resume(module, unit_functions: tuple[str, ...], cfg, tmp_path, monkeypatch,
                          **kwargs) -> None:
  """Runs `cfg` whole; then again, dying in its second unit, and once more; compares."""
  calls, die_at = [], [None]

  def counted(real):
    def unit(*args, **kw):
      if len(calls) == die_at[0]:
        raise _Killed
      calls.append(real.__name__)
      return real(*args, **kw)
    return unit

  for name in unit_functions:  # the functions that compute the units
    monkeypatch.setattr(module, name, counted(getattr(module, name)))
  reference_path, path = tmp_path / "reference.jsonl", tmp_path / "resumed.jsonl"
  module.run(cfg, reference_path, **kwargs)
  total = len(calls)
  assert total >= 2
  calls.clear()
  die_at[0] = 1
  with pytest.raises(_Killed):
    module.run(cfg, path, **kwargs)
  side = side_path(path, module.STUDY)
  assert not path.exists() and len(_units(side)) == 1
  calls.clear()
  die_at[0] = None
  module.run(cfg, path, **kwargs)
  assert len(calls) == total - 1  # the first unit was read back, not computed again
  want, got = results.read_records(reference_path), results.read_records(path)
  assert len({r["run_id"] for r in got}) == 1 and not side.exists()
  assert [_science(r) for r in got] == [_science(r) for r in want]


@pytest.mark.slow
def test_optimizer_benchmark_resumes_by_workload(tmp_path, monkeypatch):
  run = load_module("optimizer_benchmark_run_under_test",
                    REPO / "experiments" / "optimizer_benchmark" / "run.py")
  cfg = run.config.QUICK.replace(
      name="tiny", workloads=("noisy_quadratic", "mnist1d_mlp"),
      default_optimizers=("sgd", "nesterov", "adam"), tuned_optimizers=("adam", "nesterov"),
      n_trials=3, num_seeds=2, eval_every=5, quadratic_dim=4, quadratic_steps=20,
      mnist1d_samples=200, mnist1d_hidden=(8,), mnist1d_batch=16, mnist1d_steps=10)
  _interrupt_and_resume(run, ("run_workload",), cfg, tmp_path, monkeypatch)


@pytest.mark.slow
def test_adam_networks_resumes_by_network_and_ablation(tmp_path, monkeypatch):
  run = load_module("adam_networks_run_under_test",
                    REPO / "experiments" / "adam_networks" / "run.py")
  cfg = run.config.QUICK._replace(
      name="tiny", networks=("mlp",), mlp_hidden=(8,), train_size=256, val_size=128,
      test_size=128, batch_size=64, mlp_epochs=1, num_seeds=2,
      optimizers=(("sgd", (0.1, 0.3)), ("adam", (1e-3,))), bc_hidden=(8,), bc_train_size=256,
      bc_batch_size=32, bc_steps=4, bc_record_every=2, bc_eval_size=128, bc_b1s=(0.0, 0.9),
      bc_b2s=(0.99, 0.9999), bc_learning_rates=(1e-3, 1e-2))
  _interrupt_and_resume(run, ("network_records", "bias_records"), cfg, tmp_path, monkeypatch,
                        seed=3)


@pytest.mark.slow
def test_schedule_free_resumes_by_workload(tmp_path, monkeypatch):
  from flax import nnx

  from optlab import data, models

  run = load_module("schedule_free_run_under_test",
                    REPO / "experiments" / "schedule_free" / "run.py")
  cfg = run.config.QUICK.replace(name="tiny", workloads=("fashion_mlp", "char_lm"),
                                 evals_per_run=4, mlp_learning_rates=(1e-2, 3e-2),
                                 mlp_hidden=(8,), mlp_batch_size=64, mlp_epochs=2, num_seeds=2)
  ds = data.digits()
  x = np.asarray(ds.x, np.float32).reshape(len(ds.x), -1) / 16.0
  y = np.asarray(ds.y, np.int32)

  def digits(name, offset):  # two small stand-ins for the two workloads
    def load(cfg):
      return run.Workload(
          name=name, description="digits (test stand-in)",
          make_model=lambda seed: models.MLP(64, cfg.mlp_hidden, 10, rngs=nnx.Rngs(seed)),
          train=(x[offset:offset + 512], y[offset:offset + 512]),
          validation=(x[1024:1152], y[1024:1152]), test=(x[1152:1280], y[1152:1280]),
          batch_size=cfg.mlp_batch_size, epochs=cfg.mlp_epochs,
          learning_rates=cfg.mlp_learning_rates)
    return load

  monkeypatch.setitem(run.LOADERS, "fashion_mlp", digits("fashion_mlp", 0))
  monkeypatch.setitem(run.LOADERS, "char_lm", digits("char_lm", 512))
  _interrupt_and_resume(run, ("run_workload",), cfg, tmp_path, monkeypatch)
