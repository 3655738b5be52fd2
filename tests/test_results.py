"""Tests of optlab.results (atomic JSONL, provenance) and of drawing a figure from results only."""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import os
import pathlib
import subprocess
import threading

import jax.numpy as jnp
import numpy as np
import pytest

from optlab import results

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_append_keeps_old_records_and_adds_new_ones(tmp_path):
  path = tmp_path / "sub" / "runs.jsonl"  # parent directories are created
  results.append_records(path, [{"run": 0}, {"run": 1}])
  results.append_records(path, [{"run": 2}])
  assert results.read_records(path) == [{"run": 0}, {"run": 1}, {"run": 2}]
  assert path.read_text().count("\n") == 3
  assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_concurrent_appends_lose_nothing(tmp_path):
  path = tmp_path / "runs.jsonl"

  def writer(i):
    for j in range(10):
      results.append_records(path, [{"writer": i, "n": j}])

  threads = [threading.Thread(target=writer, args=(i,)) for i in range(6)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  records = results.read_records(path)
  assert sorted((r["writer"], r["n"]) for r in records) == [(i, j) for i in range(6)
                                                             for j in range(10)]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.jsonl"]  # no lock or temp files


def test_a_crash_before_the_rename_leaves_the_old_file(tmp_path, monkeypatch):
  path = tmp_path / "runs.jsonl"
  results.append_records(path, [{"run": 0}])
  before = path.read_bytes()

  def crash(src, dst):
    raise OSError("disk died")

  monkeypatch.setattr(os, "replace", crash)
  with pytest.raises(OSError, match="disk died"):
    results.append_records(path, [{"run": 1}])
  assert path.read_bytes() == before
  assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # temp file removed


def test_an_unstorable_record_leaves_the_file_untouched(tmp_path):
  path = tmp_path / "runs.jsonl"
  results.append_records(path, [{"run": 0}])
  with pytest.raises(TypeError, match="object"):
    results.append_records(path, [{"run": 1}, {"run": 2, "bad": object()}])
  with pytest.raises(TypeError, match="mapping"):
    results.append_records(path, [["not", "a", "dict"]])
  assert results.read_records(path) == [{"run": 0}]


def test_corrupted_lines_are_skipped_with_a_warning_naming_them(tmp_path):
  path = tmp_path / "runs.jsonl"
  path.write_text('{"run": 0}\n{"run": 1, "loss": 0.\n\n[1, 2]\n{"run": 4}\n')
  with pytest.warns(UserWarning) as caught:
    records = results.read_records(path)
  assert records == [{"run": 0}, {"run": 4}]
  messages = [str(w.message) for w in caught]
  assert len(messages) == 2
  assert messages[0].startswith(f"{path}:2: skipping corrupted record")
  assert messages[1].startswith(f"{path}:4: skipping corrupted record")


def test_appending_after_a_torn_last_line_keeps_the_new_records_whole(tmp_path):
  path = tmp_path / "runs.jsonl"
  path.write_text('{"run": 0}\n{"run": 1, "lo')  # written by a tool that is not atomic
  results.append_records(path, [{"run": 2}])
  with pytest.warns(UserWarning, match=r"runs\.jsonl:2:"):
    assert results.read_records(path) == [{"run": 0}, {"run": 2}]


def test_numpy_and_jax_values_are_converted(tmp_path):
  record = {
    "f32": np.float32(0.5),
    "i64": np.int64(7),
    "flag": np.bool_(True),
    "array": np.arange(3, dtype=np.int32),
    "jax_scalar": jnp.asarray(2.0),
    "jax_array": jnp.ones((2, 2)),
    "nested": {"tuple": (1, np.float64(1.5)), 3: "int key"},
    "nan": float("nan"),
    "inf": np.float64(np.inf),
    "curve": np.array([1.0, np.nan, 0.25]),
    "path": pathlib.Path("a/b.png"),
  }
  path = tmp_path / "runs.jsonl"
  results.append_records(path, [record])
  json.loads(path.read_text())  # strict JSON: no NaN or Infinity tokens
  (back,) = results.read_records(path)
  assert back == {
    "f32": 0.5,
    "i64": 7,
    "flag": True,
    "array": [0, 1, 2],
    "jax_scalar": 2.0,
    "jax_array": [[1.0, 1.0], [1.0, 1.0]],
    "nested": {"tuple": [1, 1.5], "3": "int key"},
    "nan": None,
    "inf": None,
    "curve": [1.0, None, 0.25],
    "path": "a/b.png",
  }
  assert type(back["i64"]) is int and type(back["flag"]) is bool


def test_provenance_has_versions_machine_and_time():
  info = results.provenance()
  for key in ("versions", "python", "platform", "machine", "cpu_count", "hostname", "timestamp",
              "jax_backend", "device_kind", "device_count", "git_commit", "git_dirty", "argv"):
    assert key in info, key
  for package in ("optlab", "jax", "jaxlib", "optax", "flax", "numpy"):
    assert package in info["versions"]
  assert info["versions"]["jax"] and info["versions"]["numpy"] == np.__version__
  assert info["jax_backend"] in ("cpu", "gpu", "tpu", "cuda", "rocm")
  stamp = datetime.datetime.fromisoformat(info["timestamp"])
  assert stamp.utcoffset() == datetime.timedelta(0)
  json.dumps(results.to_jsonable(info))


def test_provenance_tolerates_missing_git_and_packages(monkeypatch):
  def no_git(*args, **kwargs):
    raise FileNotFoundError("git")

  monkeypatch.setattr(subprocess, "run", no_git)
  monkeypatch.setattr(results, "TRACKED_PACKAGES", ("jax", "surely-not-installed-pkg"))
  info = results.provenance()
  assert info["git_commit"] is None and info["git_dirty"] is None
  assert info["versions"]["surely-not-installed-pkg"] is None


# ---------------------------------------------------------------------------------------------
# The figure script draws from a results file alone.


def _synthetic_records(run_id: str) -> list[dict]:
  """A tiny, hand-made results file in the shape run.py writes (no training involved)."""
  k = np.arange(0, 201, 5)
  records = []
  for kappa, rho in ((10.0, 0.8), (100.0, 0.95)):
    for method, double in (("gd", False), ("nesterov", True), ("adam", False)):
      e = np.where(k == 0, 1.0, (k if double else 1) * rho**k)
      fit = {"model": "C k rho^k" if double else "C rho^k", "window": [50, 200],
             "log_rate": math.log(rho), "intercept": 0.0, "rate": rho}
      base = {"study": "quadratic_rates", "run_id": run_id, "method": method, "kappa": kappa,
              "dim": 4, "spectrum": "linear", "config": {"curve_stop": 1e-36},
              "hyperparameters": {"learning_rate": 0.1}}
      records.append({**base, "variant": "deterministic", "seed": 0,
                      "theory_rate": None if method == "adam" else rho, "measured_rate": rho,
                      "fit": fit, "curve": {"iterations": k.tolist(), "errors": e.tolist()}})
      for seed in (0, 1):
        noisy = np.maximum(e, 1e-3 * (1 + 0.1 * seed))
        records.append({**base, "variant": "noisy", "seed": seed, "theory_rate": None,
                        "measured_rate": None, "fit": None, "noise_scale": 0.01,
                        "noise_floor_measured": 1e-3,
                        "noise_floor_predicted": None if method == "adam" else 1e-3,
                        "curve": {"iterations": k.tolist(), "errors": noisy.tolist()}})
  return records


def _figure_module():
  path = REPO / "paper_figures" / "quadratic_rates.py"
  spec = importlib.util.spec_from_file_location("quadratic_rates_figure_test", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_figure_is_drawn_from_a_tiny_results_file(tmp_path):
  pytest.importorskip("matplotlib")
  path = tmp_path / "results.jsonl"
  results.append_records(path, _synthetic_records("old") + _synthetic_records("new"))
  figure = _figure_module()
  assert {r["run_id"] for r in figure.load(path)} == {"new"}  # the latest run by default
  assert {r["run_id"] for r in figure.load(path, "old")} == {"old"}
  written = figure.draw(path, tmp_path / "figs" / "rates.png")
  assert [p.name for p in written] == ["rates.png", "rates_noisy.png"]
  for png in written:
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="no quadratic_rates records with run_id"):
    figure.load(path, "missing")
