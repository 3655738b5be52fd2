"""JAX's persistent compilation cache, on by default for optlab's runs (optlab._cache)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import pytest

from optlab import _cache

ROOT = Path(__file__).resolve().parents[1]


def test_cache_directory_comes_from_the_environment(monkeypatch, tmp_path):
  monkeypatch.delenv(_cache.ENV_VAR, raising=False)
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert _cache.configured_cache_dir() == tmp_path / "optlab" / "jax"
  for off in ("", "off", "OFF", "0", "none"):
    monkeypatch.setenv(_cache.ENV_VAR, off)
    assert _cache.configured_cache_dir() is None
  monkeypatch.setenv(_cache.ENV_VAR, str(tmp_path / "here"))
  assert _cache.configured_cache_dir() == tmp_path / "here"


def test_unwritable_directory_leaves_the_cache_off_without_failing(tmp_path):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  before = jax.config.jax_compilation_cache_dir
  with pytest.warns(RuntimeWarning, match="compilation cache stays off"):
    assert _cache.enable(blocker / "cache") is None
  assert jax.config.jax_compilation_cache_dir == before


def test_default_is_off_under_pytest():
  assert _cache.under_pytest()
  # optlab turns nothing on; a directory the tests gave JAX (conftest.py) is kept as it is.
  configured = jax.config.jax_compilation_cache_dir
  assert _cache.enable_default() == (Path(configured) if configured else None)


_CHILD = textwrap.dedent("""
    import json, sys, time
    import jax, jax.numpy as jnp
    import optlab  # turns the cache on (OPTLAB_CACHE_DIR)

    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)

    def f(x):
      for i in range(30):
        x = jnp.sin(x) * (i + 1.5) + jnp.cos(x[::-1])
      return x

    start = time.perf_counter()
    jax.jit(f).lower(jnp.ones(64)).compile()
    print(json.dumps({"dir": jax.config.jax_compilation_cache_dir,
                      "seconds": time.perf_counter() - start}))
""")


def test_optlab_import_turns_the_cache_on_and_a_second_process_reuses_it(tmp_path):
  env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
  env |= {"OPTLAB_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT),
          "JAX_PLATFORMS": "cpu"}

  def run():
    completed = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                               text=True, check=False, cwd=ROOT)
    assert completed.returncode == 0, completed.stderr[-2000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])

  first = run()
  assert first["dir"] == str(tmp_path / "cache")

  def entries():
    return sorted(p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith("-cache"))

  written = entries()
  assert written
  run()
  assert entries() == written  # nothing recompiled
