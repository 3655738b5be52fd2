"""The ``optlab`` command: list the optimizer registry and reproduce experiments.

    optlab list [--source optlab|optax|optax.contrib]
    optlab info NAME
    optlab schedules
    optlab reproduce [STUDY ...] [--quick | --full] [--seeds N] [--jobs N] [--restart]
    optlab bench [NAME ...]
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent import futures
from pathlib import Path


def experiments_dir() -> Path:
  """Where the studies live: $OPTLAB_EXPERIMENTS, ./experiments, or the source checkout's."""
  override = os.environ.get("OPTLAB_EXPERIMENTS")
  if override:
    return Path(override)
  local = Path.cwd() / "experiments"
  if local.is_dir():
    return local
  return Path(__file__).resolve().parents[1] / "experiments"


def study_names() -> list[str]:
  root = experiments_dir()
  if not root.is_dir():
    return []
  return sorted(p.name for p in root.iterdir() if (p / "run.py").is_file())


def check_studies(names: Sequence[str], available: Sequence[str] | None = None) -> list[str]:
  """Returns `names` (all of `available` when empty), raising for a study that does not exist.

  Args:
    names: study names, as given to ``optlab reproduce``.
    available: the known studies (default: :func:`study_names`).

  Raises:
    ValueError: a name that is not a study; the message suggests the closest names
      and lists the available ones.

  Example:
    >>> check_studies(["pruning"], available=["pruning", "distillation"])
    ['pruning']
  """
  available = list(study_names() if available is None else available)
  for name in names:
    if name not in available:
      close = difflib.get_close_matches(name, available, n=3)
      hint = f" Did you mean: {', '.join(close)}?" if close else ""
      raise ValueError(f"unknown study {name!r}.{hint} Available: {', '.join(available)}")
  return list(names) or available


def _load_study(name: str):
  from optlab.studies import load_module

  return load_module(f"optlab_study_{name}", experiments_dir() / name / "run.py")


def _format_space(space) -> str:
  parts = []
  for arg, dim in space.items():
    kind = type(dim).__name__
    if hasattr(dim, "values"):
      parts.append(f"{arg}∈{list(dim.values)}")
    else:
      parts.append(f"{arg}~{kind}({dim.low:g}, {dim.high:g})")
  return ", ".join(parts)


def _cmd_list(args: argparse.Namespace) -> int:
  from optlab import optim

  names = optim.names(args.source)
  width = max(len(n) for n in names) + 2
  print(f"{'name':<{width}}{'source':<15}{'tuned':<28}summary")
  for name in names:
    entry = optim.info(name)
    tuned = ",".join(entry.tuned) or "-"
    summary = entry.summary if len(entry.summary) < 70 else entry.summary[:67] + "..."
    print(f"{name:<{width}}{entry.source:<15}{tuned:<28}{summary}")
  print(f"\n{len(names)} optimizers. `optlab info NAME` shows defaults, search space and paper.")
  return 0


def _cmd_info(args: argparse.Namespace) -> int:
  from optlab import optim

  try:
    entry = optim.info(args.name)
  except ValueError as error:
    print(f"optlab: {error}", file=sys.stderr)
    return 2
  print(f"{entry.name}  ({entry.source})")
  print(f"  {entry.summary}")
  print(f"  paper: {entry.paper}")
  print("  defaults:")
  for arg, value in entry.defaults.items():
    print(f"    {arg} = {value!r}")
  print(f"  search space: {_format_space(entry.search_space) or '-'}")
  print(f"  tuned by default: {', '.join(entry.tuned) or '-'}")
  if entry.extra_args:
    print(f"  update needs: {', '.join(entry.extra_args)}")
  return 0


def _cmd_schedules(args: argparse.Namespace) -> int:
  del args
  from optlab.optim import schedules

  for name in schedules.schedule_names():
    print(name)
  return 0


def _tree_digest(package: Path) -> str:
  digest = hashlib.sha256()
  for path in sorted(package.rglob("*.py")):
    digest.update(str(path.relative_to(package)).encode())
    digest.update(path.read_bytes())
  return digest.hexdigest()


def library_mismatch() -> str | None:
  """Why the studies found would run another optlab than their checkout's, or None.

  The studies of a checkout (``./experiments``) run with the optlab this process
  imported (and so do their child processes). When that is another copy whose
  sources differ (an editable install of another clone, an older installed
  version), the results would mix two versions. ``OPTLAB_EXPERIMENTS`` skips the check.
  """
  if os.environ.get("OPTLAB_EXPERIMENTS"):
    return None
  checkout = experiments_dir().resolve().parent
  theirs = checkout / "optlab"
  ours = Path(__file__).resolve().parent
  if not (theirs / "__init__.py").is_file() or theirs.resolve() == ours:
    return None
  if _tree_digest(theirs) == _tree_digest(ours):
    return None
  return (f"the studies in {experiments_dir()} belong to the checkout {checkout}, but this "
          f"optlab is imported from {ours.parent}, whose sources differ; the runs would mix two "
          f"versions. Install the checkout (python -m pip install -e {checkout}) or run from "
          f"{ours.parent}")


def _cmd_reproduce(args: argparse.Namespace) -> int:
  available = study_names()
  if not available:
    print(f"optlab: no studies found under {experiments_dir()}; run from the optlab checkout "
          "or set OPTLAB_EXPERIMENTS", file=sys.stderr)
    return 2
  mismatch = library_mismatch()
  if mismatch:
    print(f"optlab: {mismatch}", file=sys.stderr)
    return 2
  try:
    requested = check_studies(args.studies, available)
  except ValueError as error:
    print(f"optlab: {error}", file=sys.stderr)
    return 2
  forwarded = ["--full" if args.full else "--quick"]
  if args.seeds is not None:
    forwarded += ["--seeds", str(args.seeds)]
  if args.restart:
    forwarded.append("--restart")
  mode = "full" if args.full else "quick"
  jobs = args.jobs if args.jobs is not None else min(os.cpu_count() or 1, len(requested))
  if jobs < 1:
    print(f"optlab: --jobs must be ≥ 1, got {jobs}", file=sys.stderr)
    return 2
  if jobs == 1:
    for name in requested:
      print(f"== {name} ({mode}) ==", flush=True)
      status = _load_study(name).main(forwarded)
      if status:
        return int(status)
    return 0
  return _reproduce_in_parallel(requested, forwarded, mode, jobs)


def _run_study_process(name: str, forwarded: list[str]) -> tuple[int, str, float]:
  """Runs one study's runner in its own Python process; (exit status, output, seconds)."""
  start = time.perf_counter()
  completed = subprocess.run(
      [sys.executable, str(experiments_dir() / name / "run.py"), *forwarded],
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False,
  )
  return completed.returncode, completed.stdout, time.perf_counter() - start


def _reproduce_in_parallel(requested: list[str], forwarded: list[str], mode: str,
                           jobs: int) -> int:
  """Runs the studies `jobs` at a time, each in its own process (they share nothing).

  Most of a quick study is compilation, which XLA does on one core, so two
  studies at a time keep a 2-core machine busy. Each study's output is printed
  whole when it ends; a failing study does not stop the others, and the exit
  status says whether all succeeded.
  """
  print(f"optlab reproduce: {len(requested)} studies ({mode}), {jobs} at a time", flush=True)
  start = time.perf_counter()
  failed = []
  with futures.ThreadPoolExecutor(max_workers=jobs) as pool:
    running = {pool.submit(_run_study_process, name, forwarded): name for name in requested}
    for future in futures.as_completed(running):
      name = running[future]
      status, output, seconds = future.result()
      verdict = "ok" if status == 0 else f"FAILED (exit status {status})"
      print(f"== {name} ({mode}): {verdict}, {seconds:.1f} s ==", flush=True)
      print(output.rstrip("\n"), flush=True)
      if status:
        failed.append(name)
  total = time.perf_counter() - start
  if failed:
    print(f"optlab reproduce: {len(failed)} of {len(requested)} studies failed: "
          f"{', '.join(failed)} ({total:.0f} s)", file=sys.stderr)
    return 1
  print(f"optlab reproduce: all {len(requested)} studies done in {total:.0f} s", flush=True)
  return 0


def _cmd_bench(args: argparse.Namespace) -> int:
  from optlab.benchmarks import runner

  return runner.main(args.bench_args)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="optlab",
      description="optlab: a JAX research toolkit for optimizing models.",
  )
  commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

  listing = commands.add_parser("list", help="list the optimizer registry")
  listing.add_argument("--source", choices=["optlab", "optax", "optax.contrib"],
                       help="only the optimizers of one source")
  listing.set_defaults(run=_cmd_list)

  info = commands.add_parser("info", help="defaults, search space and paper of one optimizer")
  info.add_argument("name")
  info.set_defaults(run=_cmd_info)

  sched = commands.add_parser("schedules", help="list the learning-rate schedules by name")
  sched.set_defaults(run=_cmd_schedules)

  reproduce = commands.add_parser(
      "reproduce", help="run experiments and draw their figures into paper_figures/"
  )
  reproduce.add_argument("studies", nargs="*", metavar="STUDY",
                         help="studies to run (default: all); see experiments/")
  mode = reproduce.add_mutually_exclusive_group()
  mode.add_argument("--quick", action="store_true", help="the quick version (default)")
  mode.add_argument("--full", action="store_true", help="the paper-scale version")
  reproduce.add_argument("--seeds", type=int, default=None, help="number of seeds")
  reproduce.add_argument("--restart", action="store_true",
                         help="discard the saved progress of killed runs and start them over "
                              "(by default, a study killed part-way resumes where it stopped)")
  reproduce.add_argument("--jobs", "-j", type=int, default=None,
                         help="studies run at once, each in its own process (default: one per "
                              "CPU core; 1 runs them one after another in this process)")
  reproduce.set_defaults(run=_cmd_reproduce)

  bench = commands.add_parser(
      "bench", help="speed benchmarks: ratios against baselines measured in the same run"
  )
  bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="benchmark names and options")
  bench.set_defaults(run=_cmd_bench)
  return parser


def main(argv: Sequence[str] | None = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    return args.run(args)
  except BrokenPipeError:  # `optlab list | head`
    sys.stderr.close()
    return 0


if __name__ == "__main__":
  sys.exit(main())
