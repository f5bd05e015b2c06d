"""Running a Beam command: progress logging, one-line errors, the summary.

`build_dataset` and `embed` run the same way: their module logger prints
progress as "<name>: ..." lines on stderr, bad options and inputs end with
"error: ..." and exit 1, a failure inside the pipeline (which Beam reports
with the worker's whole traceback in the message) ends with its last line,
and success prints the command's summary. `--verbose` shows Beam's own
progress and raises instead, for the traceback.

`run_pipeline` runs a command's pipeline and waits for it. A remote runner
may also be asked to do less: a Dataflow dry run (`--dry_run True`) only
translates the pipeline, a template (`--template_location`) is staged to be
launched later, and a job submitted with `wait=False` is left running. Then
there is no output to summarise yet: the command prints what was done
instead, and exits 0.
"""

from collections.abc import Callable
import dataclasses
import logging
import sys
import time
from typing import TypeVar

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import TestOptions
from apache_beam.runners.runner import PipelineResult

from dataformat import cli
from pipelines import beam_options

Result = TypeVar("Result")

# What a command's own checks raise for bad options and inputs.
USER_ERRORS = (ValueError, FileExistsError, OSError)


@dataclasses.dataclass(frozen=True)
class Launched:
  """A pipeline that a remote runner has not run to its end (yet).

  Attributes:
    summary: what was done, for people: translated, staged or submitted.
    result: the runner's result (a dry run's holds the translated job).
  """

  summary: str
  result: PipelineResult


def run_pipeline(pipeline: beam.Pipeline, options: PipelineOptions,
                 output: str,
                 wait: bool = True) -> PipelineResult | Launched:
  """Runs `pipeline`: its result once it has finished, else what was done.

  Args:
    pipeline: the pipeline, built with `options`.
    options: its options: the runner, a dry run or a template location.
    output: what the pipeline writes, named in the summary.
    wait: wait for a remote job to finish; local runs always finish here.
  """
  result = pipeline.run()
  runner = options.view_as(StandardOptions).runner
  if beam_options.is_local(options):
    result.wait_until_finish()
    return result
  # As the DataflowRunner does, any value of --dry_run asks for a dry run.
  if options.view_as(TestOptions).dry_run:
    return Launched(
        f"dry run: the pipeline was translated for {runner}; no job was "
        f"submitted and nothing was written to {output}", result)
  template = options.view_as(GoogleCloudOptions).template_location
  if template:
    return Launched(
        f"staged a {runner} template at {template}; launching it writes "
        f"{output}", result)
  if not wait:
    return Launched(_submitted(result, options, output), result)
  result.wait_until_finish()
  return result


def _submitted(result: PipelineResult, options: PipelineOptions,
               output: str) -> str:
  runner = options.view_as(StandardOptions).runner
  job_id = result.job_id() if hasattr(result, "job_id") else "(no id)"
  lines = [f"submitted {runner} job {job_id} (state {result.state}); it "
           f"writes {output}, COMPLETED last, when it finishes"]
  cloud = options.view_as(GoogleCloudOptions)
  if runner == beam_options.DATAFLOW_RUNNER:
    lines.append(f"follow it at https://console.cloud.google.com/dataflow/"
                 f"jobs/{cloud.region}/{job_id}?project={cloud.project}")
  return "\n".join(lines)


class _StderrHandler(logging.StreamHandler):
  """Writes to the `sys.stderr` of the moment, not the one at creation.

  A command run again in one process (a notebook, a test capturing output)
  may find `sys.stderr` replaced, and the old stream closed.
  """

  def __init__(self):
    super().__init__(sys.stderr)

  @property
  def stream(self):
    return sys.stderr

  @stream.setter
  def stream(self, _):
    pass


def _log_progress(logger: logging.Logger, name: str) -> None:
  if logger.handlers:
    return
  handler = _StderrHandler()
  handler.setFormatter(logging.Formatter(f"{name}: %(message)s"))
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  logger.propagate = False


def run(name: str, logger: logging.Logger, verbose: bool,
        work: Callable[[], Result],
        summary: Callable[[Result, float], str]) -> int:
  """Runs `work()`, prints `summary(result, seconds)`; returns the exit code.

  A `Launched` result prints its own summary.

  Args:
    name: the command's name, prefixed to its progress lines.
    logger: the command module's logger.
    verbose: log Beam's progress at INFO and let errors raise.
    work: builds and runs the pipeline (e.g. with `run_pipeline`).
    summary: the lines printed on success, given the result and the run's
      wall time in seconds.
  """
  if verbose:
    logging.getLogger().setLevel(logging.INFO)
  else:
    # Beam logs a failing transform's traceback before it raises; the error
    # is printed below, as one line.
    logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
  _log_progress(logger, name)
  start = time.perf_counter()
  try:
    result = work()
  except USER_ERRORS as e:
    if verbose:
      raise
    return cli.fail(e)
  except Exception as e:  # pylint: disable=broad-except
    # Beam wraps a worker's exception with its traceback in the message.
    if verbose:
      raise
    last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
    return cli.fail(f"the pipeline failed: {type(e).__name__}: {last_line} "
                    "(--verbose shows the traceback)")
  if isinstance(result, Launched):
    print(result.summary)
  else:
    print(summary(result, time.perf_counter() - start))
  return 0
