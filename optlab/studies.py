"""Helpers shared by the studies in ``experiments/`` and by ``optlab reproduce``.

A study is a folder of plain files (``config.py``, ``run.py``), not a package, so
its runner and the command line load those files by path.

A runner's configuration can be changed from the command line without editing
``config.py``: ``--set KEY=VALUE`` (repeatable) and ``--config FILE`` (a JSON or TOML
table of keys, e.g. the ``"config"`` of a saved record, to rerun it). Keys are checked
against the config's fields: an unknown key is an error that suggests the closest.

Before anything runs, the parser of :func:`study_parser` checks that the results
file's folder and the figure's can be written (a clear ``OSError`` naming the path,
instead of an error after the whole run). A runner that saves each unit of work as it
finishes (:mod:`optlab.study_progress`) resumes a killed run when started again with
the same arguments; ``--restart`` discards the unfinished run instead.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import importlib.util
import json
import pathlib
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from optlab.results import check_writable


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


def check_output_paths(results: str | pathlib.Path | None,
                       figure: str | pathlib.Path | None = None) -> None:
  """Raises a clear ``OSError`` naming the folder if a run could not save its outputs.

  Checks the folder of the results file and, unless None, of the figure (see
  :func:`optlab.results.check_writable`). :func:`study_parser`'s parser calls
  it after parsing; a runner with a parser of its own calls it itself, before training.
  """
  if results is not None:
    check_writable(pathlib.Path(results).parent, what=f"results (--results {results})")
  if figure is not None:
    check_writable(pathlib.Path(figure).parent, what=f"the figure (--figure {figure})")


class StudyArgumentParser(argparse.ArgumentParser):
  """An ``ArgumentParser`` that checks, once the arguments are parsed, that the results and
  figure folders can be written (:func:`check_output_paths`)."""

  def parse_known_args(self, args=None, namespace=None):
    namespace, extras = super().parse_known_args(args, namespace)
    check_output_paths(getattr(namespace, "results", None),
                       None if getattr(namespace, "no_figure", False)
                       else getattr(namespace, "figure", None))
    return namespace, extras


def study_parser(
    description: str,
    default_results: pathlib.Path,
    default_figure: pathlib.Path,
    repo: pathlib.Path,
) -> argparse.ArgumentParser:
  """The command line every study's runner shares (``optlab reproduce`` passes the first three).

  ``--quick`` (the default) or ``--full``, ``--seeds N``, ``--seed S`` (the
  first seed), ``--results PATH`` (the JSONL to append to), ``--figure PATH``,
  ``--no-figure``, ``--config FILE`` / ``--set KEY=VALUE`` (applied by
  :func:`config_from_args`) and ``--restart`` (a runner that resumes killed runs
  discards the unfinished one; the others ignore it). A runner adds its own options
  to the returned parser, which checks after parsing that the results and figure
  folders can be written (an ``OSError`` naming the folder; nothing has run yet).
  """
  parser = StudyArgumentParser(description=description)
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
  parser.add_argument("--config", dest="config_file", type=pathlib.Path, default=None,
                      metavar="FILE", help="a JSON or TOML file of config values to override "
                      "(e.g. a saved record's \"config\")")
  parser.add_argument("--set", dest="overrides", action="append", default=[],
                      metavar="KEY=VALUE", help="override one config value (repeatable); "
                      "VALUE is a Python literal, or else a string")
  parser.add_argument("--restart", action="store_true",
                      help="discard the saved progress of a killed run "
                      "(<results>.<study>.inprogress.jsonl) and start over, instead of "
                      "resuming it; ignored by studies that do not resume")
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


def config_fields(cfg: Any) -> tuple[str, ...]:
  """The field names of a config: a NamedTuple or a dataclass instance."""
  if hasattr(cfg, "_fields"):
    return tuple(cfg._fields)
  if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
    return tuple(f.name for f in dataclasses.fields(cfg))
  raise TypeError(f"a study config must be a NamedTuple or a dataclass, got {type(cfg).__name__}")


def _coerce(key: str, current: Any, value: Any, source: str) -> Any:
  """`value` in the form of the field's `current` value (lists become tuples, ints floats)."""
  def wrong(expected: str) -> TypeError:
    return TypeError(f"{source}: {key}={value!r} has the wrong type: expected {expected} "
                     f"(the current value is {current!r})")

  if current is None or value is None:
    return value
  if isinstance(current, bool):
    if not isinstance(value, bool):
      raise wrong("True or False")
    return value
  if isinstance(current, int):
    if isinstance(value, bool) or not isinstance(value, int):
      raise wrong("an integer")
    return value
  if isinstance(current, float):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise wrong("a number")
    return float(value)
  if isinstance(current, str):
    if not isinstance(value, str):
      raise wrong("a string")
    return value
  if isinstance(current, (tuple, list)):
    if isinstance(value, (str, bytes)) or not isinstance(value, (tuple, list)):
      raise wrong("a list")
    return type(current)(value)
  return value


def apply_overrides(cfg: Any, overrides: Mapping[str, Any], *, source: str = "overrides") -> Any:
  """A copy of the config `cfg` with `overrides` applied, every key checked.

  Args:
    cfg: a study config (a NamedTuple or a dataclass).
    overrides: field name -> new value. Lists become tuples where the field holds a
      tuple, ints become floats where it holds a float.
    source: where the overrides came from, for error messages (``"--set"``, a path).

  Returns:
    The new config (same type).

  Raises:
    ValueError: a key that is not a field; the message suggests the closest fields
      and lists them all.
    TypeError: a value of the wrong kind (a string for a number, ...).

  Example:
    >>> from typing import NamedTuple
    >>> class Config(NamedTuple):
    ...   epochs: int = 10
    ...   learning_rates: tuple[float, ...] = (0.1,)
    >>> apply_overrides(Config(), {"epochs": 3, "learning_rates": [0.1, 0.3]})
    Config(epochs=3, learning_rates=(0.1, 0.3))
  """
  if not isinstance(overrides, Mapping):
    raise TypeError(f"{source}: expected a table of key = value, got {type(overrides).__name__}")
  fields = config_fields(cfg)
  changes = {}
  for key, value in overrides.items():
    if key not in fields:
      close = difflib.get_close_matches(str(key), fields, n=3, cutoff=0.5)
      hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
      raise ValueError(f"{source}: unknown config key {key!r}.{hint} Keys of "
                       f"{type(cfg).__name__}: {', '.join(fields)}")
    changes[key] = _coerce(key, getattr(cfg, key), value, source)
  if hasattr(cfg, "_replace"):
    return cfg._replace(**changes)
  return dataclasses.replace(cfg, **changes)


def read_config_file(path: str | pathlib.Path) -> dict[str, Any]:
  """The table of config values in a JSON (``.json``) or TOML (``.toml``) file.

  Raises:
    FileNotFoundError: no such file.
    ValueError: a file that does not parse (the message names the file and the
      position), that is not a table, or whose suffix is neither.
  """
  path = pathlib.Path(path)
  if path.suffix not in (".json", ".toml"):
    raise ValueError(f"--config {path}: expected a .json or .toml file, got suffix "
                     f"{path.suffix or '(none)'!r}")
  text = path.read_text(encoding="utf-8")
  try:
    table = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
  except json.JSONDecodeError as error:
    raise ValueError(f"--config {path}: not valid JSON (line {error.lineno}, column "
                     f"{error.colno}): {error.msg}") from None
  except tomllib.TOMLDecodeError as error:
    raise ValueError(f"--config {path}: not valid TOML: {error}") from None
  if not isinstance(table, dict):
    raise ValueError(f"--config {path}: expected a table of key = value, got a JSON "
                     f"{type(table).__name__}")
  return table


def parse_set(items: Sequence[str]) -> dict[str, Any]:
  """``["epochs=3", "schedule=cosine"]`` -> ``{"epochs": 3, "schedule": "cosine"}``.

  A value is read as a Python literal (numbers, tuples, lists, True/False/None) and
  kept as a string otherwise.

  Raises:
    ValueError: an item without ``=`` or with an empty key.
  """
  table = {}
  for item in items:
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
      raise ValueError(f"--set: expected KEY=VALUE, got {item!r}")
    try:
      table[key] = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
      table[key] = text.strip()
  return table


def config_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace,
                     configs: dict[str, Any]) -> Any:
  """The configuration a runner's command line asks for.

  ``--quick``/``--full`` picks the config, then ``--config FILE`` and the
  ``--set KEY=VALUE`` items are applied (in that order), then ``--seeds N``.
  `configs` maps a mode to a config (a NamedTuple, or anything with a ``replace``
  method) that has a ``num_seeds`` field. ``--seeds`` below 1, an unknown key or a
  value of the wrong type is a usage error (exit status 2, with the message).
  """
  cfg = configs[args.mode or "quick"]
  try:
    config_file = getattr(args, "config_file", None)
    if config_file is not None:
      cfg = apply_overrides(cfg, read_config_file(config_file), source=f"--config {config_file}")
    overrides = getattr(args, "overrides", None)
    if overrides:
      cfg = apply_overrides(cfg, parse_set(overrides), source="--set")
  except (OSError, ValueError, TypeError) as error:
    parser.error(str(error))
  if args.seeds is not None:
    if args.seeds < 1:
      parser.error(f"--seeds must be at least 1, got {args.seeds}")
    replace = getattr(cfg, "replace", None) or cfg._replace
    cfg = replace(num_seeds=args.seeds)
  return cfg
