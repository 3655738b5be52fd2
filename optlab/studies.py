"""Helpers shared by the studies in ``experiments/`` and by ``optlab reproduce``.

A study is a folder of plain files (``config.py``, ``run.py``), not a package, so
its runner and the command line load those files by path.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType


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
