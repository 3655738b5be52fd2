"""Cross-validation: per-fold results equal a fold trained alone, model selection, the figure."""

import numpy as np
import pytest
from flax import nnx

from optlab import data, models, optim
from optlab.train import EarlyStopping, fit
from optlab.tune.cv import cross_validate, make_folds, plot_validation_curve, select


@pytest.fixture(scope="module")
def iris():
  ds = data.iris()
  x = data.Standardizer.fit(ds.x).apply(ds.x).astype(np.float32)
  return x, ds.y


def _mlp(rngs):
  return models.MLP(4, [8], 3, rngs=rngs)


def test_each_fold_equals_that_fold_trained_alone(iris):
  x, y = iris
  cv = cross_validate(_mlp, "sgd", iris, k=3, seed=1, hyperparams={"learning_rate": 0.1},
                      metrics=("accuracy",), epochs=2, batch_size=16)
  assert cv.vectorized and cv.k == 3 and cv.status == ["completed"] * 3
  assert cv.per_fold["accuracy"].shape == cv.per_fold["loss"].shape == (3,)
  fold = 2
  train_idx, val_idx = cv.folds[fold]
  assert np.ptp(np.bincount(y[val_idx])) <= 1  # stratified: 16 or 17 of each class
  length = min(len(t) for t, _ in cv.folds)
  alone = fit(_mlp(nnx.Rngs(1)), optim.get("sgd", learning_rate=0.1),
              (x[train_idx[:length]], y[train_idx[:length]]), validation=(x[val_idx], y[val_idx]),
              epochs=2, batch_size=16, seed=1, progress=False)
  np.testing.assert_allclose(cv.per_fold["accuracy"][fold], alone.history[-1]["val_accuracy"],
                             rtol=1e-5)
  np.testing.assert_allclose(cv.per_fold["loss"][fold], alone.history[-1]["val_loss"],
                             rtol=1e-5)
  assert cv.mean("accuracy") == pytest.approx(np.mean(cv.per_fold["accuracy"]))
  assert cv.std("val_accuracy") == pytest.approx(np.std(cv.per_fold["accuracy"]))
  acc = cv.per_fold["accuracy"]
  assert cv.summary("accuracy") == f"accuracy {acc.mean():.3f} ± {acc.std():.3f} (3 folds)"


def test_select_picks_the_best_configuration_and_plots_it(iris, tmp_path):
  result = select(_mlp, "sgd", iris, {"learning_rate": [0.001, 0.1, 1.0]}, k=3, epochs=2,
                  batch_size=16)
  assert result.per_fold.shape == (3, 3)
  means = result.per_fold.mean(axis=1)
  assert result.best_config == {"learning_rate": result.configs[int(np.argmax(means))][
      "learning_rate"]}
  assert result.best_score == pytest.approx(means.max())
  assert means[0] < means[2]  # a 1000x smaller step learns much less in 2 epochs
  rows = result.rows()
  assert [r["rank"] for r in rows] == list(np.argsort(np.argsort(-means)) + 1)
  assert "accuracy" in result.table().splitlines()[0]
  path = tmp_path / "curve.png"
  fig = plot_validation_curve(result, "learning_rate", path=path)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert fig.axes[0].get_xscale() == "log"
  with pytest.raises(ValueError, match="not a swept hyperparameter"):
    plot_validation_curve(result, "momentum")
  from matplotlib.figure import Figure

  panels = Figure().subplots(1, 2)
  assert plot_validation_curve(result, "learning_rate", ax=panels[1]) is panels[1].figure
  assert len(panels[1].lines) == 3 + 1  # 3 folds and the mean


def test_fold_checks_and_fallback_rules(iris):
  _, y = iris
  with pytest.raises(ValueError, match="k must be an int ≥ 2"):
    make_folds(y, 1)
  small = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])
  with pytest.raises(ValueError, match=r"smallest class.*label 2.*Lower k to ≤ 2"):
    make_folds(small, 3)
  folds = make_folds(small, 3, stratify=False)
  assert sorted(np.concatenate([v for _, v in folds]).tolist()) == list(range(9))
  with pytest.raises(ValueError, match="stratify=True needs 1-D integer"):
    make_folds(np.linspace(0, 1, 9), 3, stratify=True)
  with pytest.raises(ValueError, match=r"fit arguments \['callbacks'\] need vectorize=False"):
    cross_validate(_mlp, "sgd", iris, k=3, vectorize=True, callbacks=[EarlyStopping()])
  with pytest.raises(ValueError, match="cannot be injected"):
    cross_validate(_mlp, optim.get("sgd", learning_rate=0.1), iris, k=3, vectorize=True)


@pytest.mark.slow
def test_fit_fallback_gives_the_vectorized_numbers(iris):
  kwargs = {"k": 2, "hyperparams": {"learning_rate": 0.1}, "epochs": 2, "batch_size": 16}
  vectorized = cross_validate(_mlp, "sgd", iris, **kwargs)
  looped = cross_validate(_mlp, "sgd", iris, vectorize=False, **kwargs)
  assert not looped.vectorized
  for name in ("loss", "accuracy"):
    np.testing.assert_allclose(vectorized.per_fold[name], looped.per_fold[name], rtol=1e-5)
