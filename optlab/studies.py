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
