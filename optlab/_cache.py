"""JAX's persistent compilation cache, on by default for optlab's runs.

A repeated experiment (``optlab reproduce``, a second ``fit`` of the same model,
a study's runner started again) then loads its compiled programs from disk
instead of compiling them: the 1000-leaf Adam step that takes seconds to
compile loads in milliseconds (``optlab bench compile_time`` measures it).

Where the cache lives:

* ``OPTLAB_CACHE_DIR=/some/path``: there;
* ``OPTLAB_CACHE_DIR=""`` (or ``off``, ``0``, ``false``, ``none``): no cache;
* unset: ``$XDG_CACHE_HOME/optlab/jax`` (``~/.cache/optlab/jax``).

:func:`enable_default` is what optlab's entry points call. It never overrides a
cache directory the user already gave JAX (``jax_compilation_cache_dir`` or
``JAX_COMPILATION_CACHE_DIR``), it never fails a run (an unwritable directory
only leaves the cache off, with one warning), and it does nothing under pytest,
whose parallel workers must not share one directory of entries written while
they run. Entries are written under JAX's file lock (a size limit is set, which
turns the lock on), so concurrent processes can share the directory safely.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import jax

ENV_VAR = "OPTLAB_CACHE_DIR"
OFF_VALUES = ("", "off", "0", "false", "no", "none")
# Cache programs whose compilation takes at least this long: the step and epoch
# programs, not the many tiny eager-op programs (those compile in milliseconds).
MIN_COMPILE_SECONDS = 0.1
MAX_SIZE_BYTES = 4 * 1024**3  # setting a limit makes JAX lock the directory while writing

_state: dict[str, Path | None] = {}


def default_cache_dir() -> Path:
  """``$XDG_CACHE_HOME/optlab/jax``, or ``~/.cache/optlab/jax``."""
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return Path(base) / "optlab" / "jax"


def configured_cache_dir() -> Path | None:
  """The directory :func:`enable_default` would use: from ``OPTLAB_CACHE_DIR``, None when off."""
  value = os.environ.get(ENV_VAR)
  if value is None:
    return default_cache_dir()
  if value.strip().lower() in OFF_VALUES:
    return None
  return Path(value).expanduser()


def under_pytest() -> bool:
  """True inside a pytest process or a process a running test started."""
  return "pytest" in sys.modules or "PYTEST_CURRENT_TEST" in os.environ


def enable(path: str | os.PathLike | None = None, *,
           min_compile_seconds: float = MIN_COMPILE_SECONDS) -> Path | None:
  """Turns on JAX's persistent compilation cache in `path`; returns it, or None if it cannot.

  Args:
    path: the cache directory (default: :func:`configured_cache_dir`; None there
      means the user turned the cache off).
    min_compile_seconds: programs that compile faster than this are not cached.

  Returns:
    The directory in use, or None when the cache stays off (turned off, or the
    directory cannot be created or written: a warning says why; the run goes on).

  Example:
    >>> import tempfile, optlab._cache as cache
    >>> with tempfile.TemporaryDirectory() as tmp:  # doctest: +SKIP
    ...   cache.enable(tmp)
  """
  directory = configured_cache_dir() if path is None else Path(path).expanduser()
  if directory is None:
    return None
  try:
    directory.mkdir(parents=True, exist_ok=True)
    probe = directory / f".optlab-write-test-{os.getpid()}"
    probe.write_bytes(b"")
    probe.unlink()
  except OSError as error:
    warnings.warn(f"optlab: the compilation cache stays off: cannot write to {directory} "
                  f"({error}); set {ENV_VAR} to a writable directory or to 'off'",
                  RuntimeWarning, stacklevel=2)
    return None
  jax.config.update("jax_compilation_cache_dir", str(directory))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  try:
    import filelock  # noqa: F401  (JAX locks the directory only when a size limit is set)
  except ImportError:
    pass
  else:
    if jax.config.jax_compilation_cache_max_size == -1:
      jax.config.update("jax_compilation_cache_max_size", MAX_SIZE_BYTES)
  return directory


def enable_default() -> Path | None:
  """Turns the cache on for an optlab run unless the user or the situation says otherwise.

  Idempotent. Does nothing (returns the directory JAX already uses, or None)
  when JAX already has a cache directory, under pytest, or when
  ``OPTLAB_CACHE_DIR`` turns it off.

  Returns:
    The cache directory in use, or None.
  """
  if "result" in _state:
    return _state["result"]
  existing = jax.config.jax_compilation_cache_dir
  if existing:
    result = Path(existing)
  elif under_pytest():
    result = None
  else:
    result = enable()
  _state["result"] = result
  return result
