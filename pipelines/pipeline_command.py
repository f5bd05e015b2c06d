"""Running a Beam command: progress logging, one-line errors, the summary.

`build_dataset` and `embed` run the same way: their module logger prints
progress as "<name>: ..." lines on stderr, bad options and inputs end with
"error: ..." and exit 1, a failure inside the pipeline (which Beam reports
with the worker's whole traceback in the message) ends with its last line,
and success prints the command's summary. `--verbose` shows Beam's own
progress and raises instead, for the traceback.
"""

from collections.abc import Callable
import logging
import sys
import time
from typing import TypeVar

Result = TypeVar("Result")

# What a command's own checks raise for bad options and inputs.
USER_ERRORS = (ValueError, FileExistsError, OSError)


def _log_progress(logger: logging.Logger, name: str) -> None:
  if logger.handlers:
    return
  handler = logging.StreamHandler(sys.stderr)
  handler.setFormatter(logging.Formatter(f"{name}: %(message)s"))
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  logger.propagate = False


def run(name: str, logger: logging.Logger, verbose: bool,
        work: Callable[[], Result],
        summary: Callable[[Result, float], str]) -> int:
  """Runs `work()`, prints `summary(result, seconds)`; returns the exit code.

  Args:
    name: the command's name, prefixed to its progress lines.
    logger: the command module's logger.
    verbose: log Beam's progress at INFO and let errors raise.
    work: builds and runs the pipeline.
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
    print(f"error: {e}", file=sys.stderr)
    return 1
  except Exception as e:  # pylint: disable=broad-except
    # Beam wraps a worker's exception with its traceback in the message.
    if verbose:
      raise
    last_line = str(e).strip().splitlines()[-1] if str(e).strip() else ""
    print(f"error: the pipeline failed: {type(e).__name__}: {last_line} "
          "(--verbose shows the traceback)", file=sys.stderr)
    return 1
  print(summary(result, time.perf_counter() - start))
  return 0
