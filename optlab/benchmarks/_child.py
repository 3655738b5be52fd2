"""Benchmarks measured in a fresh Python process (other XLA flags, another cache setting)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])  # where `optlab` is importable from


def run_child(module: str, args: Sequence[str], *, caller: str,
              env: Mapping[str, str] | None = None, drop: Sequence[str] = ()) -> dict:
  """Runs ``python -m module *args`` in a new process; returns its last stdout line, parsed.

  The child inherits this process's environment with `env` set and the `drop`
  variables removed, and can import optlab from this checkout. A failing child
  raises ``RuntimeError`` naming `caller`, with the end of its stderr.
  """
  full = dict(os.environ)
  for name in drop:
    full.pop(name, None)
  full.update(env or {})
  full["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, full.get("PYTHONPATH")) if p)
  completed = subprocess.run([sys.executable, "-m", module, *args], env=full,
                             capture_output=True, text=True, check=False)
  if completed.returncode:
    raise RuntimeError(f"{caller}: the child process failed:\n{completed.stderr[-2000:]}")
  return json.loads(completed.stdout.strip().splitlines()[-1])
