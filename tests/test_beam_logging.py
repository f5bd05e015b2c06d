"""Tests for pipelines/beam_logging.py: start-up notices go, warnings stay."""

import logging
import os
import subprocess
import sys

import pytest

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


@pytest.mark.slow
def test_tensorflow_loads_silently_once_a_package_is_imported():
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("TF_CPP_", "TF_ENABLE_"))}
  result = subprocess.run(
      [sys.executable, "-c", "import pipelines, tensorflow"], env=env,
      capture_output=True, text=True, check=True)
  assert result.stderr == ""
