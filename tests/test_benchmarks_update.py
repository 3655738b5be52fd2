"""Smoke tests of the update benchmarks on tiny sizes (numbers reported, never asserted).

Also: the one-pass Adam that XLA:CPU's multi-output fusion allows (in a child
process, since the flag must be set before JAX starts its backend).
"""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from optlab import _xla_flags
from optlab.benchmarks import bandwidth, compile_time, leaves, runner
from optlab.optim import _fusion

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_are_registered():
  for name in ("update_bandwidth", "many_leaves", "compile_time"):
    assert name in runner.BENCHMARKS


def test_update_bandwidth_reports_fractions():
  values = bandwidth.update_bandwidth(1 << 16, repeats=1, multi_output_fusion=False,
                                      torch_baseline=False)
  assert values["bandwidth_gb_per_s"] > 0
  for name in ("adam", "adamw", "sgd_momentum", "optax_adam"):
    assert values[f"ratio_{name}_of_bandwidth"] > 0
    assert values[f"{name}_loops"] >= 1
  assert list(values)[-1].startswith("ratio")


def test_many_leaves_reports_the_packed_speedup():
  values = leaves.many_leaves(num_leaves=12, num_params=1200, repeats=1,
                              torch_baseline=False)
  assert values["params"] == 1200
  assert values["packed_max_abs_difference"] < 1e-5
  assert values["ratio_packed_speedup_vs_optax_tree"] > 0


def test_leaf_shapes_add_up():
  shapes = leaves.leaf_shapes(1000, 1_000_000)
  assert len(shapes) == 1000
  assert sum(math.prod(s) for s in shapes) == 1_000_000


def test_compile_time_measure_in_process():
  values = compile_time.measure((4,), 200, mlp_layers=1)
  assert values["adam_4_tree_s"] > 0 and values["clip_adamw_4_packed_s"] > 0
  assert values["mlp_leaves"] == 4


@pytest.mark.slow
def test_compile_time_second_process_loads_from_the_cache():
  values = compile_time.compile_time(leaf_counts=(4,), num_params=200, mlp_layers=1)
  assert values["cache_entries"] > 0
  assert values["second_process_new_cache_entries"] == 0


def test_flags_with_multi_output_fusion_merges_existing_options():
  option = _fusion.OPTION
  assert _fusion.flags_with_multi_output_fusion("") == f"--xla_backend_extra_options={option}"
  merged = _fusion.flags_with_multi_output_fusion("--xla_backend_extra_options=a=1 --x=2")
  assert merged == f"--xla_backend_extra_options=a=1,{option} --x=2"
  assert _fusion.flags_with_multi_output_fusion(merged) == merged


_CHILD = textwrap.dedent("""
    import json
    import numpy as np, jax, jax.numpy as jnp, optax
    from optlab import optim
    from optlab.benchmarks.bandwidth import fusion_count
    from optlab.optim import _fusion

    rng = np.random.default_rng(0)
    p, g = (jnp.asarray(rng.normal(size=4096), jnp.float32) for _ in range(2))
    tx = optim.adam(1e-2)
    state = tx.init(p)
    step = jax.jit(lambda p, s, g: tx.update(g, s, p))
    for _ in range(3):
      u, state = step(p, state, g)
      p = p + u
    print(json.dumps({"single_pass": _fusion.single_pass_updates(),
                      "adam_loops": fusion_count(tx),
                      "adamw_loops": fusion_count(optim.adamw(1e-3)),
                      "momentum_loops": fusion_count(optim.sgd(1e-2, momentum=0.9)),
                      "nesterov_loops": fusion_count(optim.nesterov(1e-2)),
                      "params": np.asarray(p).tolist()}))
""")


@functools.cache  # one child process per setting for the whole module, not one per test
def _child(fusion: bool) -> dict:
  """Runs _CHILD in a fresh process with optlab's default fusion on or off."""
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT),
         "OPTLAB_XLA_CPU_FUSION": "1" if fusion else "0"}
  env["XLA_FLAGS"] = _xla_flags.flags_without_multi_output_fusion(env.get("XLA_FLAGS", ""))
  completed = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True,
                             text=True, check=False, cwd=ROOT)
  assert completed.returncode == 0, completed.stderr[-2000:]
  return json.loads(completed.stdout.strip().splitlines()[-1])


def test_optlab_fusion_env_turns_multi_output_fusion_on_and_updates_are_one_loop():
  values = _child(fusion=True)
  assert values["single_pass"]
  assert values["adam_loops"] == 1 and values["adamw_loops"] == 1
  assert values["momentum_loops"] == 1 and values["nesterov_loops"] == 1


def test_without_fusion_adam_keeps_xla_s_three_loops_with_the_same_result():
  fused, default = _child(fusion=True), _child(fusion=False)
  assert not default["single_pass"]
  assert default["adam_loops"] == 3 and default["adamw_loops"] == 3
  assert default["momentum_loops"] == 2 and default["nesterov_loops"] == 2
  # the same three steps: equal up to rounding (XLA contracts b1·m + (1−b1)·g into a
  # fused multiply-add differently in the one loop)
  import numpy as np

  np.testing.assert_allclose(fused["params"], default["params"], rtol=1e-6, atol=1e-7)


def test_the_fusion_is_opt_in_and_leaves_other_flags_alone(monkeypatch):
  assert _fusion.single_pass_updates() == _xla_flags.wanted()  # off unless asked for
  monkeypatch.delenv("OPTLAB_XLA_CPU_FUSION", raising=False)
  assert not _xla_flags.wanted()
  monkeypatch.setenv("OPTLAB_XLA_CPU_FUSION", "1")
  assert _xla_flags.wanted()
  monkeypatch.setenv("XLA_FLAGS", "--x=1")
  assert _xla_flags.enable_default() is False  # backends already started: flags untouched
  assert os.environ["XLA_FLAGS"] == "--x=1"
