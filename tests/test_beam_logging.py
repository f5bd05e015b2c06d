"""Tests for pipelines/beam_logging.py: Beam's notices go, warnings stay."""

import logging
import subprocess
import sys

from pipelines import beam_logging


def test_notices_are_dropped_and_other_warnings_pass(caplog):
  beam_logging.drop_notices()
  beam_logging.drop_notices()
  with caplog.at_level(logging.WARNING):
    logging.warning("apitools not found, and bigquery client libraries are "
                    "not available despite the import not raising an "
                    "ImportError.")
    logging.warning("Resource module is not available for current platform, "
                    "memory usage cannot be fetched.")
    logging.warning("a real warning about apitools not found")
  assert [r.getMessage() for r in caplog.records] == [
      "a real warning about apitools not found"]


def test_commands_importing_beam_print_nothing_on_help():
  result = subprocess.run(
      [sys.executable, "-m", "pipelines.inspect", "--help"],
      capture_output=True, text=True, check=True)
  assert result.stdout and not result.stderr
