"""Beam's local worker process, started quietly.

Local multi-processing runs (`--direct_running_mode multi_processing`) start
their workers here instead of at Beam's `sdk_worker_main`: importing Beam logs
notices before any module of ours could filter them, and the first such
`logging.warning` gives the root logger a stderr handler, through which every
worker then also prints its start-up INFO lines. Here the package's filter is
installed first (by `pipelines/__init__`) and the root logger gets a handler
that prints nothing: the worker's log records still reach the runner, which
shows them at the levels the pipeline options set.
"""

import logging
import sys

import pipelines  # pylint: disable=unused-import  # Installs the filter.


def main() -> None:
  logging.getLogger().addHandler(logging.NullHandler())
  # pylint: disable-next=g-import-not-at-top
  from apache_beam.runners.worker import sdk_worker_main
  sdk_worker_main.main(sys.argv)


if __name__ == "__main__":
  main()
