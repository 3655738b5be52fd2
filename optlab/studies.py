"""Helpers shared by the studies in ``experiments/`` and by ``optlab reproduce``.

A study is a folder of plain files (``config.py``, ``run.py``), not a package, so
its runner and the command line load those files by path.
"""

from __future__ import annotations

import argparse
import importlib.util
import pathlib
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any


def load_module(name: str, path: str | pathlib.Path) -> ModuleType:
  """Imports the file `path` as the module `name`, once.

  The module is registered in ``sys.modules`` before it runs, because
  dataclasses (and pickling) look their defining module up while being created.
  """
  if name in sys.modules:
    return sys.modules[name]
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f"load_module: no file {path}")
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  sys.modules[name] = module
  try:
    spec.loader.exec_module(module)
  except BaseException:
    del sys.modules[name]
    raise
  return module


def study_parser(
    description: str,
    default_results: pathlib.Path,
    default_figure: pathlib.Path,
    repo: pathlib.Path,
) -> argparse.ArgumentParser:
  """The command line every study's runner shares (``optlab reproduce`` passes the first three).

  ``--quick`` (the default) or ``--full``, ``--seeds N``, ``--seed S`` (the
  first seed), ``--results PATH`` (the JSONL to append to), ``--figure PATH`` and
  ``--no-figure``. A runner adds its own options to the returned parser.
  """
  parser = argparse.ArgumentParser(description=description)
  mode = parser.add_mutually_exclusive_group()
  mode.add_argument("--quick", dest="mode", action="store_const", const="quick",
                    help="the quick configuration (default)")
  mode.add_argument("--full", dest="mode", action="store_const", const="full",
                    help="the full configuration")
  parser.add_argument("--seeds", type=int, default=None,
                      help="number of seeds (default: the config's)")
  parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
  parser.add_argument("--results", type=pathlib.Path, default=default_results,
                      help=f"JSONL file to append to (default {_relative(default_results, repo)})")
  parser.add_argument("--no-figure", action="store_true", help="do not draw the figure")
  parser.add_argument("--figure", type=pathlib.Path, default=default_figure,
                      help=f"the PNG to draw (default {_relative(default_figure, repo)})")
  return parser


def _relative(path: pathlib.Path, root: pathlib.Path) -> str:
  try:
    return str(path.relative_to(root))
  except ValueError:
    return str(path)


def redraw_main(
    draw: Callable[..., Any],
    description: str,
    default_results: pathlib.Path,
    default_figure: pathlib.Path,
    argv: Sequence[str] | None = None,
) -> int:
  """The command line of a ``paper_figures/`` script: redraw from saved results only.

  ``[RESULTS] [--out PATH] [--run-id ID]`` (default: the last run in the file);
  prints the path (or paths) `draw` wrote.
  """
  parser = argparse.ArgumentParser(description=description)
  parser.add_argument("results", nargs="?", type=pathlib.Path, default=default_results)
  parser.add_argument("--out", type=pathlib.Path, default=default_figure)
  parser.add_argument("--run-id", default=None, help="default: the last run in the file")
  args = parser.parse_args(argv)
  written = draw(args.results, args.out, run_id=args.run_id)
  for path in written if isinstance(written, (list, tuple)) else [written]:
    print(path)
  return 0


def load_run(
    results_path: str | pathlib.Path,
    study: str,
    run_id: str | None = None,
    *,
    default_from: Callable[[dict], bool] | None = None,
) -> list[dict]:
  """The records of one run of `study` in a results file: `run_id`, or the last run.

  Args:
    results_path: a JSONL file of ``optlab.results`` records.
    study: keep only records whose ``"study"`` is this.
    run_id: the run to return; by default the last run in the file.
    default_from: when `run_id` is None, the last run is taken among the records
      for which this is true (e.g. leaving ablations out).

  Returns:
    The run's records, in file order.
  """
  from optlab import results

  records = [r for r in results.read_records(results_path) if r.get("study") == study]
  candidates = records if default_from is None else [r for r in records if default_from(r)]
  if not (candidates if run_id is None else records):
    raise ValueError(f"{results_path}: no {study} records")
  run_id = run_id or candidates[-1]["run_id"]
  chosen = [r for r in records if r["run_id"] == run_id]
  if not chosen:
    raise ValueError(f"{results_path}: no {study} records with run_id {run_id!r}")
  return chosen


def save_figure(fig: Any, out_path: str | pathlib.Path, dpi: int) -> pathlib.Path:
  """Lays out, writes (creating the folder) and closes a matplotlib figure."""
  import matplotlib.pyplot as plt

  fig.tight_layout()
  out_path = pathlib.Path(out_path)
  out_path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(out_path, dpi=dpi)
  plt.close(fig)
  return out_path


def draw_figure(study: str, repo: pathlib.Path, results: str | pathlib.Path,
                figure: str | pathlib.Path, run_id: str) -> pathlib.Path:
  """Draws `study`'s figure for run `run_id` with ``paper_figures/<study>.py`` and says where.

  What every runner does after a run: the figure script reads the results file
  only (the same script redraws it later without training).
  """
  drawing = load_module(f"optlab_paper_figure_{study}", repo / "paper_figures" / f"{study}.py")
  path = drawing.draw(results, figure, run_id=run_id)
  print(f"figure: {path}")
  return path


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     configs: dict[str, Any]) -> Any:
  """The configuration a runner's command line asks for: ``--quick``/``--full``, ``--seeds N``.

  `configs` maps a mode to a config (a NamedTuple, or anything with a ``replace``
  method) that has a ``num_seeds`` field; ``--seeds`` below 1 is a usage error.
  """
  cfg = configs[args.mode or "quick"]
  if args.seeds is not None:
    if args.seeds < 1:
      parser.error(f"--seeds must be at least 1, got {args.seeds}")
    replace = getattr(cfg, "replace", None) or cfg._replace
    cfg = replace(num_seeds=args.seeds)
  return cfg

