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
