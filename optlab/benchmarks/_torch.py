"""PyTorch baselines on the device JAX computes on: CUDA when JAX runs on a GPU, else the CPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def available() -> bool:
  """Whether PyTorch can be imported (it is an optional benchmark dependency)."""
  try:
    import torch  # noqa: F401
  except ImportError:
    return False
  return True


def device() -> str:
  """``"cuda"`` when JAX's default backend is a GPU and PyTorch sees one, else ``"cpu"``.

  A comparison is fair only on the same processor: on a GPU machine both
  frameworks run there; on a CPU machine both run on the CPU.
  """
  import jax
  import torch

  if jax.default_backend() == "gpu" and torch.cuda.is_available():
    return "cuda"
  return "cpu"


def synchronized(fn: Callable[[], Any]) -> Callable[[], None]:
  """`fn` followed by waiting for the device (CUDA runs asynchronously; the CPU does not)."""
  import torch

  if device() != "cuda":
    return fn

  def run() -> None:
    fn()
    torch.cuda.synchronize()

  return run
