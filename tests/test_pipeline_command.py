"""Tests for pipelines/pipeline_command.py: exit codes, errors, summary."""

import logging

import apache_beam as beam
from apache_beam.runners.runner import PipelineState
import pytest

from pipelines import beam_options
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


def test_a_launched_pipeline_prints_what_was_done(capsys):
  launched = pipeline_command.Launched("staged a template at gs://b/t", None)
  assert run(lambda: launched) == 0
  assert capsys.readouterr().out == "staged a template at gs://b/t\n"


@pytest.mark.parametrize("argv", [[], ["--dry_run", "True"]])
def test_local_pipelines_run_to_their_end(argv):
  # A dry run is the DataflowRunner's: the local runner runs the pipeline.
  options = beam_options.from_flags(argv)
  pipeline = beam.Pipeline(runner=beam_options.runner_for(options),
                           options=options)
  counter = beam.metrics.Metrics.counter("test_pipeline_command", "seen")
  _ = (pipeline | beam.Create([1, 2, 3])
       | beam.Map(lambda x: counter.inc()))
  result = pipeline_command.run_pipeline(pipeline, options, "nowhere")
  assert result.state == PipelineState.DONE
  [seen] = result.metrics().query()["counters"]
  assert seen.committed == 3
