"""``optlab bench``: runs the benchmarks and prints each ratio last."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from optlab.benchmarks import bandwidth, compile_time, fit_packed, leaves, memory, sweeps, training

BENCHMARKS = {
    "train_small_mlp_epoch": training.small_mlp_epoch,
    "train_large_mlp_steps": training.large_mlp_steps,
    "train_scan_vs_loop": training.scan_vs_loop,
    "sweep_vectorized_vs_sequential": sweeps.sweep_vectorized_vs_sequential,
    "memory": memory.memory,
    "update_bandwidth": bandwidth.update_bandwidth,
    "many_leaves": leaves.many_leaves,
    "compile_time": compile_time.compile_time,
    "fit_packed": fit_packed.fit_packed,
}


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(prog="optlab bench", description=__doc__)
  parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all): "
                      f"{', '.join(BENCHMARKS)}")
  parser.add_argument("--json", action="store_true", help="print one JSON object per benchmark")
  args = parser.parse_args(argv)
  unknown = [n for n in args.names if n not in BENCHMARKS]
  if unknown:
    print(f"optlab bench: unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}",
          file=sys.stderr)
    return 2
  import jax

  device = jax.devices()[0]
  print(f"# device: {device.platform} ({device.device_kind}), jax {jax.__version__}")
  for name in args.names or list(BENCHMARKS):
    values = BENCHMARKS[name]()
    if args.json:
      print(json.dumps({"benchmark": name, **values}))
      continue
    print(f"{name}:")
    ratios = {k: v for k, v in values.items() if k.startswith("ratio")}
    for key, value in values.items():
      if key not in ratios:
        print(f"  {key:<28} {value:.6g}")
    for key, value in ratios.items():
      print(f"  {key:<28} {value:.3f}x")
  return 0
