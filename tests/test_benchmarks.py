"""The benchmark command runs (its numbers are reported, never asserted: machines are noisy)."""

from optlab import cli
from optlab.benchmarks import training


def test_scan_vs_loop_benchmark_reports_a_ratio():
  values = training.scan_vs_loop(repeats=1)
  assert values["ratio_scan_speedup"] > 0


def test_bench_command_rejects_unknown_names(capsys):
  assert cli.main(["bench", "no_such_benchmark"]) == 2
  assert "unknown benchmark" in capsys.readouterr().err
