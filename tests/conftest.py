"""Test configuration: strict JAX and fresh PRNG keys (as in equinox and optimistix)."""

import atexit
import itertools
import os
import shutil
import tempfile
import zlib

import jax
import pytest

# Implicit rank promotion hides shape bugs (a (n,) array meeting an (n, 1) one);
# make it an error everywhere in the tests.
jax.config.update("jax_numpy_rank_promotion", "raise")
if jax.default_backend() == "gpu":
  # The tests compare float32 runs with each other and with hand-written rules at float32
  # tolerances. On a GPU, JAX's default float32 matrix products use TF32 (10-bit mantissa),
  # and the kernel chosen can change with load: two runs of the same fit differed by up to
  # 7e-3 on an H200 with 8 test workers sharing it. Full float32 products for the tests.
  jax.config.update("jax_default_matmul_precision", "highest")

# Many tests build the same programs again (a new closure around the same step, the same
# model in another test): one compilation cache per test process lets a program compiled
# once be loaded instead of compiled again (the suite's CPU time on 2 cores 1049 -> 962 s).
# One directory per process: without JAX's lock (a size limit, whose eviction scans the
# whole directory at every write) two processes must not write into one. Removed at exit.
# OPTLAB_TEST_COMPILATION_CACHE=off compiles everything, as a user's first run does.
if os.environ.get("OPTLAB_TEST_COMPILATION_CACHE", "on").lower() not in ("off", "0", "false"):
  _CACHE_DIR = tempfile.mkdtemp(prefix="optlab-tests-xla-cache-")
  atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
  jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


@pytest.fixture
def getkey(request):
  """Returns a function that hands out a new, deterministic PRNG key at each call.

  The keys depend on the test alone (seeded by its node id), not on which tests ran
  before it in the same worker: a test sees the same data in every run, whatever
  order pytest-xdist gives it.
  """
  base = jax.random.key(zlib.crc32(request.node.nodeid.encode()))
  counter = itertools.count()

  def _getkey():
    return jax.random.fold_in(base, next(counter))

  return _getkey


@pytest.fixture
def key(getkey):
  return getkey()
