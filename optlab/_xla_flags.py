"""XLA:CPU's multi-output loop fusion, opt-in for optlab's runs (``OPTLAB_XLA_CPU_FUSION=1``).

An optimizer update reads and writes each parameter's state once if XLA emits it
as one loop; XLA:CPU's default fusion emits Adam as three loops (40 instead of 28
bytes per parameter), which caps it at 0.7 of the machine's streaming bandwidth
(see :mod:`optlab.optim._fusion`). The multi-output fusion pass that merges them is
off by default in XLA:CPU and reachable only through
``XLA_FLAGS=--xla_backend_extra_options=xla_cpu_use_multi_output_fusion``, read
when JAX starts its backends. With ``OPTLAB_XLA_CPU_FUSION=1`` in the environment,
importing optlab before the first JAX computation adds that option (``optlab bench
update_bandwidth`` measures the effect: Adam at about 1.0 of the streaming
bandwidth instead of 0.7). Child processes inherit it.

Why not by default: the pass is experimental in XLA:CPU (jaxlib 0.10.2) and aborts
the process (``symbolic_map.cc:196 Check failed: GetNumDims() ==
other.GetNumResults()``) when it merges two scatters that share their indices into
one loop fusion: the loop emitter cannot index a fusion with two scatter roots.
Such pairs are common: the gradient of a gather is a scatter-add, so two
cross-entropies on the same integer labels (``take_along_axis``, as in optax's
``softmax_cross_entropy_with_integer_labels``) in one loss produce them; the
adversarial-training study (natural and TRADES losses on one batch) hit it.
optlab's own losses pick the label logit with a mask
(:func:`optlab.metrics.losses.integer_label_cross_entropy`), so every optlab
program compiles with the pass on (the whole test suite passes with
``OPTLAB_XLA_CPU_FUSION=1``), but a user's program with that pattern would still
kill the process. A process abort is not an acceptable price for a faster
optimizer update, so the speed-up stays opt-in until XLA fixes it;
``tests/test_cross_entropy_gather_free.py`` keeps a 10-line reproducer and
skips with a note once a JAX upgrade no longer aborts.

Other backends ignore the option. Importing optlab after JAX has started changes
nothing in that process (optlab's updates then keep the formulation XLA's default
fuses best), and nothing else in ``XLA_FLAGS`` is touched.

This module imports nothing from optlab, so that it can run before optlab's
subpackages (and before anything that might start JAX's backends).
"""

from __future__ import annotations

import os
import re

OPTION = "xla_cpu_use_multi_output_fusion"
_EXTRA = "--xla_backend_extra_options"
ENV_VAR = "OPTLAB_XLA_CPU_FUSION"
OFF_VALUES = ("", "0", "off", "false", "no", "none")


def flags_with_multi_output_fusion(flags: str) -> str:
  """`flags` (an ``XLA_FLAGS`` value) with the CPU multi-output fusion option added.

  Example:
    >>> flags_with_multi_output_fusion("--xla_cpu_enable_fast_math=false")
    '--xla_cpu_enable_fast_math=false --xla_backend_extra_options=xla_cpu_use_multi_output_fusion'
  """
  if OPTION in flags:
    return flags
  match = re.search(rf"{_EXTRA}=(\S*)", flags)
  if match:
    value = f"{match.group(1)},{OPTION}" if match.group(1) else OPTION
    return flags[:match.start()] + f"{_EXTRA}={value}" + flags[match.end():]
  return f"{flags} {_EXTRA}={OPTION}".strip()


def flags_without_multi_output_fusion(flags: str) -> str:
  """`flags` with the CPU multi-output fusion option removed (other options kept).

  Example:
    >>> flags_without_multi_output_fusion(
    ...     "--x=1 --xla_backend_extra_options=a=1,xla_cpu_use_multi_output_fusion")
    '--x=1 --xla_backend_extra_options=a=1'
  """
  match = re.search(rf"{_EXTRA}=(\S*)", flags)
  if not match:
    return flags
  kept = [o for o in match.group(1).split(",") if o and o != OPTION]
  value = f"{_EXTRA}={','.join(kept)}" if kept else ""
  return " ".join((flags[:match.start()] + value + flags[match.end():]).split())


def wanted() -> bool:
  """True when ``OPTLAB_XLA_CPU_FUSION`` asks for the option (off when unset)."""
  return os.environ.get(ENV_VAR, "0").strip().lower() not in OFF_VALUES


def enable_default() -> bool:
  """Adds the option to ``XLA_FLAGS`` if asked for; returns whether it is in effect.

  Call it before JAX starts its backends; afterwards it only reports whether the
  running backends already had the option (and leaves ``XLA_FLAGS`` alone).
  """
  from jax._src import xla_bridge

  flags = os.environ.get("XLA_FLAGS", "")
  if xla_bridge.backends_are_initialized():
    return OPTION in flags
  if not wanted():
    return OPTION in flags
  os.environ["XLA_FLAGS"] = flags_with_multi_output_fusion(flags)
  return True
