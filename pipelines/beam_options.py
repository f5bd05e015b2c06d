"""Beam pipeline options and runner from the flags a command leaves to Beam.

Our commands parse their own flags and pass the rest here. Without
`--runner` (or with `--runner DirectRunner`) a pipeline runs on Beam's local
FnApiRunner, which needs no download; `--direct_num_workers N
--direct_running_mode multi_processing` spreads it over N processes. Every
other runner and option passes through, e.g. to Dataflow.
"""

from collections.abc import Sequence
from typing import Any

from apache_beam.options import pipeline_options
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import WorkerOptions
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability import portable_runner
from apache_beam.runners.portability.fn_api_runner import fn_runner

_LOCAL_RUNNERS = (None, "DirectRunner", "FnApiRunner")
DATAFLOW_RUNNER = "DataflowRunner"


def from_flags(argv: Sequence[str], **overrides: Any) -> PipelineOptions:
  """Beam's options from `argv`, with `overrides` (option name: value).

  The main session is not pickled unless an override asks for it (Beam
  pickles it by default for Dataflow): workers import this project's
  packages, shipped with --setup_file, not the launching process's __main__.

  Raises:
    ValueError: for a flag that Beam does not know; Beam would only log and
      drop it, hiding a misspelt flag of the command's.
  """
  # Beam parses its options this way too (PipelineOptions.get_all_options).
  parser = pipeline_options._BeamArgumentParser(allow_abbrev=False)
  for options_class in PipelineOptions.__subclasses__():
    options_class._add_argparse_args(parser)
  _, unknown = parser.parse_known_args(list(argv))
  if unknown:
    raise ValueError(f"unrecognized arguments: {' '.join(unknown)}")
  return PipelineOptions(list(argv),
                         **{"save_main_session": False, **overrides})


def is_local(options: PipelineOptions) -> bool:
  """Whether the pipeline runs here, on the FnApiRunner (`runner_for`)."""
  return options.view_as(StandardOptions).runner in _LOCAL_RUNNERS


def runner_for(options: PipelineOptions):
  """The runner: FnApiRunner for local runs, else the one named.

  Beam's DirectRunner would first try the Prism runner, which downloads a
  binary. The FnApiRunner also serves `--direct_num_workers` and
  `--direct_running_mode`; like the DirectRunner, it hands the options to
  worker processes (their log level, for one).
  """
  if not is_local(options):
    return options.view_as(StandardOptions).runner
  encoded = portable_runner.JobServiceHandle.encode_pipeline_options(
      options.get_all_options(drop_default=True))
  return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(
      beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)))


def quiet_workers(worker_options: WorkerOptions) -> None:
  """Worker logs: this package's progress, and errors only from the rest."""
  if worker_options.default_sdk_harness_log_level is None:
    worker_options.default_sdk_harness_log_level = "ERROR"
  # A local worker process's own module is `__main__`; it warns about the
  # missing staging directory that local runs never have.
  worker_options.sdk_harness_log_level_overrides = {
      "pipelines": "INFO", "__main__": "ERROR",
      **(worker_options.sdk_harness_log_level_overrides or {})}
