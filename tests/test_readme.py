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


# One namespace for the whole file: later examples reuse earlier names, and each block
# runs once (``--dist loadfile`` keeps this file on one worker, in order).
_NAMESPACE: dict = {}
_EXECUTED: list[int] = []


@pytest.mark.parametrize("index", range(len(code_blocks("python"))))
def test_readme_python_examples_run(index):
  blocks = code_blocks("python")
  for earlier in range(len(_EXECUTED), index):  # run alone (-k): run what it builds on first
    exec(compile(blocks[earlier], f"README.md python block {earlier}", "exec"), _NAMESPACE)
    _EXECUTED.append(earlier)
  if index < len(_EXECUTED):  # already run as a prerequisite of a later block
    return
  exec(compile(blocks[index], f"README.md python block {index}", "exec"), _NAMESPACE)
  _EXECUTED.append(index)
