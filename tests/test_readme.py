"""The README's set-up commands and Python examples stay true."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
CI_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "run"


def code_blocks(language):
  return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.S)


def test_ci_runs_exactly_the_readme_test_command():
  test_command = next(b.strip() for b in code_blocks("bash") if "pytest" in b)
  ci_commands = [line.strip() for line in CI_SCRIPT.read_text().splitlines()]
  assert test_command in ci_commands


def test_readme_main_job_is_optlab_reproduce():
  assert any("optlab reproduce" in block for block in code_blocks("bash"))


@pytest.mark.parametrize("index", range(len(code_blocks("python"))))
def test_readme_python_examples_run(index):
  namespace = {}
  for block in code_blocks("python")[: index + 1]:  # later examples reuse earlier names
    exec(compile(block, f"README.md python block {index}", "exec"), namespace)
