"""A registry of the model classes by name: `names()` and `get(name, **kwargs)`."""

from __future__ import annotations

import difflib
import inspect
import weakref
from typing import Any

from flax import nnx

from optlab.models._checks import suggest
from optlab.models.cnn import CNN
from optlab.models.mlp import MLP
from optlab.models.rnn import CharRNNLM, RNNClassifier
from optlab.models.transformer import TransformerClassifier, TransformerLM

_MODELS: dict[str, type[nnx.Module]] = {
  "char_rnn_lm": CharRNNLM,
  "cnn": CNN,
  "mlp": MLP,
  "rnn_classifier": RNNClassifier,
  "transformer_classifier": TransformerClassifier,
  "transformer_lm": TransformerLM,
}


# The arguments of the models `get` built, for `describe` (weak: models come and go).
_ARGUMENTS: weakref.WeakKeyDictionary[nnx.Module, dict[str, Any]] = weakref.WeakKeyDictionary()


def names() -> tuple[str, ...]:
  """The registered model names, sorted."""
  return tuple(sorted(_MODELS))


def get(name: str, **kwargs: Any) -> nnx.Module:
  """Builds the registered model `name` with the class's keyword arguments.

  Args:
    name: one of `names()`.
    **kwargs: the model's constructor arguments, by keyword; ``rngs`` defaults to
      ``nnx.Rngs(0)``.

  Returns:
    The model.

  Raises:
    ValueError: for an unknown name, listing the closest known names.
    TypeError: for a keyword the model does not take, listing the ones it does.

  Example:
    >>> get("mlp", in_features=4, hidden_sizes=[8], out_features=3).out_features
    3
  """
  cls = _MODELS.get(name) if isinstance(name, str) else None
  if cls is None:
    raise ValueError(
      f"get: name {name!r} is not a registered model.{suggest(name, _MODELS)} "
      f"Known: {', '.join(names())}"
    )
  accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
  unknown = [k for k in kwargs if k not in accepted]
  if unknown:
    hints = "; ".join(
      f"{k!r}" + "".join(f" (did you mean {c!r}?)" for c in difflib.get_close_matches(
        k, accepted, n=1, cutoff=0.6))
      for k in unknown
    )
    raise TypeError(
      f"get: model {name!r} ({cls.__name__}) has no argument {hints}. "
      f"Accepted: {', '.join(accepted)}"
    )
  kwargs.setdefault("rngs", nnx.Rngs(0))
  model = cls(**kwargs)
  _ARGUMENTS[model] = {"name": name, **{k: _plain(v) for k, v in kwargs.items() if k != "rngs"}}
  return model


def _plain(value: Any) -> Any:
  if value is None or isinstance(value, (str, bool, int, float)):
    return value
  if isinstance(value, (list, tuple)):
    return [_plain(v) for v in value]
  return repr(value)


def describe(model: nnx.Module) -> dict[str, Any]:
  """What a training record keeps of a model: its class, parameter count and arguments.

  ``arguments`` are the keyword arguments when the model was built by :func:`get`
  (None otherwise: pass them to ``optlab.train.fit(run_config=...)``).

  Example:
    >>> describe(get("mlp", in_features=4, hidden_sizes=[8], out_features=3))["num_params"]
    67
  """
  from optlab.models.summary import count_params

  cls = type(model)
  return {"class": f"{cls.__module__}.{cls.__qualname__}", "num_params": int(count_params(model)),
          "arguments": dict(_ARGUMENTS[model]) if model in _ARGUMENTS else None}
