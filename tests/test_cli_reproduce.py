"""`optlab reproduce`: studies found by folder, run in parallel processes, failures reported."""

import textwrap

from optlab import cli

RUNNER = textwrap.dedent("""
    import sys
    print("{name} ran with", " ".join(sys.argv[1:]))
    sys.exit({status})
""")


def _studies(tmp_path, monkeypatch, statuses):
  for name, status in statuses.items():
    (tmp_path / name).mkdir()
    (tmp_path / name / "run.py").write_text(RUNNER.format(name=name, status=status))
  (tmp_path / "not_a_study").mkdir()  # no run.py: ignored
  monkeypatch.setenv("OPTLAB_EXPERIMENTS", str(tmp_path))


def test_studies_run_in_parallel_processes_with_their_arguments(tmp_path, monkeypatch, capsys):
  _studies(tmp_path, monkeypatch, {"alpha": 0, "beta": 0, "gamma": 0})
  assert cli.study_names() == ["alpha", "beta", "gamma"]
  assert cli.main(["reproduce", "--jobs", "2", "--seeds", "3"]) == 0
  out = capsys.readouterr().out
  for name in ("alpha", "beta", "gamma"):
    assert f"== {name} (quick): ok" in out
    assert f"{name} ran with --quick --seeds 3" in out
  assert "all 3 studies done" in out


def test_a_failing_study_does_not_stop_the_others(tmp_path, monkeypatch, capsys):
  _studies(tmp_path, monkeypatch, {"alpha": 0, "broken": 3, "gamma": 0})
  assert cli.main(["reproduce", "--full", "-j", "2"]) == 1
  captured = capsys.readouterr()
  assert "== broken (full): FAILED (exit status 3)" in captured.out
  assert "gamma ran with --full" in captured.out
  assert "1 of 3 studies failed: broken" in captured.err


def test_jobs_must_be_positive(tmp_path, monkeypatch, capsys):
  _studies(tmp_path, monkeypatch, {"alpha": 0})
  assert cli.main(["reproduce", "--jobs", "0"]) == 2
  assert "--jobs must be ≥ 1, got 0" in capsys.readouterr().err


def _checkout(root, init_text):
  (root / "experiments" / "alpha").mkdir(parents=True)
  (root / "experiments" / "alpha" / "run.py").write_text(RUNNER.format(name="alpha", status=0))
  (root / "optlab").mkdir()
  (root / "optlab" / "__init__.py").write_text(init_text)
  return root


def test_studies_of_another_checkout_are_refused(tmp_path, monkeypatch, capsys):
  """Another clone's studies would run with this process's optlab: refused, with what to do."""
  checkout = _checkout(tmp_path, "# another version\n")
  monkeypatch.delenv("OPTLAB_EXPERIMENTS", raising=False)
  monkeypatch.chdir(checkout)
  assert cli.main(["reproduce", "--jobs", "2"]) == 2
  err = capsys.readouterr().err
  assert f"belong to the checkout {checkout}" in err
  assert f"pip install -e {checkout}" in err


def test_a_checkout_with_the_same_sources_is_accepted(tmp_path, monkeypatch):
  import shutil
  from pathlib import Path

  import optlab

  checkout = tmp_path / "copy"
  (checkout / "experiments").mkdir(parents=True)
  shutil.copytree(Path(optlab.__file__).parent, checkout / "optlab",
                  ignore=shutil.ignore_patterns("__pycache__"))
  monkeypatch.delenv("OPTLAB_EXPERIMENTS", raising=False)
  monkeypatch.chdir(checkout)
  assert cli.library_mismatch() is None
  monkeypatch.chdir(Path(optlab.__file__).parents[1])  # this checkout itself
  assert cli.library_mismatch() is None
