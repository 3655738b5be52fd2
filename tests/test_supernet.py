"""Tabular architecture search: the masked, vmapped MLP table against standalone training."""

from __future__ import annotations

import numpy as np
import pytest

from optlab.structure.nas import (
    build_model,
    evaluate_architecture,
    load_task,
    mlp_space,
    search_architecture,
)
from optlab.structure.supernet import ArchitectureTable, tabulate_mlp_space

# Two depths, two widths, three activations: 3 * (2 + 4) = 18 architectures, 3 epochs.
SPACE = mlp_space(max_depth=2, widths=(8, 32), activations=("relu", "tanh", "gelu"),
                  normalizations=(None,), dropouts=(0.0,))
OPTIONS = {"epochs": 3, "batch_size": 64, "learning_rate": 3e-3, "seed": 1}


@pytest.fixture(scope="module")
def task():
  return load_task("digits", seed=0, max_train=400)


@pytest.fixture(scope="module")
def table(task):
  # check_init off: test_initial_parameters_are_the_standalone_models checks the same.
  # Two chunks at a time (threads), as on a 2-core CPU by default.
  return tabulate_mlp_space(SPACE, task, **OPTIONS, chunk_size=4, check_init=False, workers=2)


def test_table_covers_the_space(table):
  assert len(table) == len(SPACE.grid()) == 18
  assert table.curves.shape == table.val_loss.shape == table.train_loss.shape == (18, 3)
  assert table.status == ("completed",) * 18
  assert np.all((table.scores > 0) & (table.scores <= 1))
  assert table.best_score == table.scores.max() == table.score(table.best_config)
  # One compilation, chunks of one activation each (3 activations × 6 runs, chunk 4 → 2 each).
  assert table.settings["compiles"] == 1 and table.settings["num_programs"] == 6
  assert table.settings["chunk_size"] == 3


def test_chunks_side_by_side_equal_chunks_one_after_another(task, table):
  alone = tabulate_mlp_space(SPACE, task, **OPTIONS, chunk_size=4, check_init=False, workers=1)
  np.testing.assert_array_equal(table.curves, alone.curves)
  np.testing.assert_array_equal(table.train_loss, alone.train_loss)
  assert table.status == alone.status


@pytest.mark.parametrize("index", [0, 9, 17], ids=["d1-w8-relu", "d2-tanh", "d2-w32-gelu"])
def test_entries_match_standalone_training(task, table, index):
  config = table.configs[index]
  real = evaluate_architecture(config, task, **OPTIONS)
  assert real.score == table.scores[index]
  np.testing.assert_allclose(real.curve, table.curves[index], atol=1e-6)
  assert real.num_params == table.num_params[index]


def test_initial_parameters_are_the_standalone_models(task):
  from optlab.structure import supernet

  configs = [dict(c) for c in SPACE.grid()]
  layout = supernet._layout(SPACE, configs)
  params, arch, _ = supernet._initial_params(configs, layout, 64, 10, seed=5)
  for r in (2, 11):
    model = build_model(configs[r], (8, 8, 1), 10, seed=5)
    for l, layer in enumerate(model.layers):
      kernel = np.asarray(layer.kernel[...])
      a, b = kernel.shape
      np.testing.assert_array_equal(params["kernels"][l][r, :a, :b], kernel)
      assert not params["kernels"][l][r, a:].any() and not params["kernels"][l][r, :, b:].any()
      assert arch["masks"][r, l].sum() == b
    head = np.asarray(model.head.kernel[...])
    np.testing.assert_array_equal(params["head_kernel"][r, :head.shape[0]], head)
    assert not params["head_kernel"][r, head.shape[0]:].any()


def test_objective_drives_a_search(table):
  objective = table.objective()
  result = search_architecture(objective, SPACE, method="random", budget=6, seed=0)
  for config, score in result.history:
    assert score == table.score(config)
  assert result.best_score <= table.best_score


def test_unknown_configurations_raise_key_errors(table):
  objective = table.objective()
  known = dict(table.configs[0])
  with pytest.raises(KeyError, match="not in the table"):
    objective({**known, "normalization": "layer"})
  with pytest.raises(KeyError, match="not in the table"):
    objective({**known, "width_1": 64})
  with pytest.raises(KeyError, match="not in the table"):
    table.index({**known, "learning_rate": 1e-2})
  with pytest.raises(TypeError, match="mapping"):
    table.index([("depth", 1)])


def test_numpy_scalars_are_looked_up(table):
  config = {k: (np.int64(v) if isinstance(v, int) else v) for k, v in table.configs[5].items()}
  assert table.score(config) == table.scores[5]


def test_records_are_json_ready(table):
  import json

  records = table.to_records()
  assert len(records) == len(table)
  json.dumps(records, allow_nan=False)
  assert records[3]["score"] == table.scores[3] and len(records[3]["curve"]) == 3


@pytest.mark.parametrize(
    ("space", "match"),
    [(mlp_space(max_depth=1, widths=(8,), normalizations=(None, "layer"), dropouts=(0.0,)),
      "normalization=None"),
     (mlp_space(max_depth=1, widths=(8,), normalizations=(None,), dropouts=(0.0, 0.1)),
      "dropout=0.0"),
     (mlp_space(max_depth=1, widths=(8,), activations=("sigmoid",), normalizations=(None,),
                dropouts=(0.0,)), "does not map 0 to 0")],
    ids=["normalization", "dropout", "sigmoid"])
def test_untabulable_spaces_are_rejected(task, space, match):
  with pytest.raises(ValueError, match=match):
    tabulate_mlp_space(space, task, epochs=1)


def test_bad_arguments_are_rejected(task):
  with pytest.raises(ValueError, match="epochs"):
    tabulate_mlp_space(SPACE, task, epochs=0)
  with pytest.raises(ValueError, match="chunk_size"):
    tabulate_mlp_space(SPACE, task, epochs=1, chunk_size=0)
  with pytest.raises(ValueError, match="workers"):
    tabulate_mlp_space(SPACE, task, epochs=1, workers=0)
  with pytest.raises(TypeError, match="SearchSpace"):
    tabulate_mlp_space({"depth": (1, 2)}, task, epochs=1)


def test_distinct_configs_are_required():
  config = {"depth": 1, "width_1": 8, "activation": "relu"}
  with pytest.raises(ValueError, match="distinct"):
    ArchitectureTable(configs=(config, dict(config)), curves=np.zeros((2, 1)),
                      val_loss=np.zeros((2, 1)), train_loss=np.zeros((2, 1)),
                      num_params=np.zeros(2, int), status=("completed",) * 2,
                      train_seconds=np.zeros(2), compile_seconds=np.zeros(2), settings={})
