"""Tests for pipelines/pipeline_command.py: exit codes, errors, summary."""

import logging

import pytest

from pipelines import pipeline_command


def run(work, verbose=False, name="cmd"):
  return pipeline_command.run(
      name, logging.getLogger(f"test_pipeline_command.{name}"), verbose,
      work, lambda result, seconds: f"done: {result} in {seconds >= 0}")


def test_success_prints_the_summary(capsys):
  assert run(lambda: 42) == 0
  assert capsys.readouterr().out == "done: 42 in True\n"


def test_user_error_is_one_line(capsys):
  def work():
    raise ValueError("--num_shards must be positive, got 0")

  assert run(work) == 1
  err = capsys.readouterr().err
  assert err == "error: --num_shards must be positive, got 0\n"


def test_pipeline_failure_shows_the_last_line_of_the_worker_error(capsys):
  def work():
    raise RuntimeError("Traceback (most recent call last):\n  File x\n"
                       "KeyError: 'image/encoded'")

  assert run(work) == 1
  err = capsys.readouterr().err
  assert err == ("error: the pipeline failed: RuntimeError: KeyError: "
                 "'image/encoded' (--verbose shows the traceback)\n")


def test_verbose_raises_for_the_traceback():
  def work():
    raise ValueError("bad")

  with pytest.raises(ValueError, match="bad"):
    run(work, verbose=True, name="verbose")


def test_progress_lines_carry_the_command_name(capsys):
  logger = logging.getLogger("test_pipeline_command.progress")

  def work():
    logger.info("read 10 files")
    return 1

  pipeline_command.run("build_dataset", logger, False, work,
                       lambda result, seconds: "ok")
  assert "build_dataset: read 10 files\n" in capsys.readouterr().err
