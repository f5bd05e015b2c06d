"""Tests for pipelines/beam_options.py: Beam's flags, the runner, worker logs."""

import re
import tempfile
import threading

import apache_beam as beam
from apache_beam.options.pipeline_options import SetupOptions
from apache_beam.options.pipeline_options import WorkerOptions
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.runners.worker import data_plane
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
import pytest

from pipelines import beam_options


@pytest.mark.parametrize("argv", [
    [], ["--direct_num_workers", "2", "--direct_running_mode",
         "multi_processing"],
    ["--runner", "DirectRunner"], ["--runner", "FnApiRunner"],
])
def test_local_runs_use_the_fn_api_runner(argv):
  runner = beam_options.runner_for(beam_options.from_flags(argv))
  assert isinstance(runner, fn_runner.FnApiRunner)


def test_other_runners_and_their_options_pass_through():
  dataflow = beam_options.from_flags([
      "--runner", "DataflowRunner", "--project", "p", "--region",
      "europe-west4", "--temp_location", "gs://b/tmp", "--setup_file",
      "./setup.py", "--max_num_workers", "64"])
  assert beam_options.runner_for(dataflow) == "DataflowRunner"
  assert dataflow.view_as(WorkerOptions).max_num_workers == 64


@pytest.mark.parametrize("argv, message", [
    (["--bogus", "1"], "unrecognized arguments: --bogus 1"),
    (["--runner", "DirectRunner", "--vocab-size", "9"],
     "unrecognized arguments: --vocab-size 9"),
    # Beam's own flags are not abbreviated either.
    (["--max_num_work", "2"], "unrecognized arguments: --max_num_work 2"),
    # Dashes for underscores name no Beam flag, though they name its option.
    (["--max-num-workers", "2", "--experiment", "x"],
     "unrecognized arguments: --max-num-workers 2"),
    (["--bogus=1", "--max_num_workers", "3"], "unrecognized arguments: --bogus=1"),
])
def test_unknown_flags_are_errors(argv, message):
  with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
    beam_options.from_flags(argv)


def test_overrides_take_precedence_over_flags():
  options = beam_options.from_flags(["--save_main_session"],
                                    save_main_session=False)
  assert options.view_as(SetupOptions).save_main_session is False


def test_quiet_workers_keeps_levels_the_flags_set():
  options = beam_options.from_flags([
      "--default_sdk_harness_log_level", "WARNING",
      "--sdk_harness_log_level_overrides", '{"__main__": "INFO"}'])
  worker_options = options.view_as(WorkerOptions)
  beam_options.quiet_workers(worker_options)
  assert worker_options.default_sdk_harness_log_level == "WARNING"
  assert worker_options.sdk_harness_log_level_overrides == {
      "pipelines": "INFO", "__main__": "INFO",
      "apache_beam.runners.worker.sdk_worker_main": "ERROR"}
  default = beam_options.from_flags([]).view_as(WorkerOptions)
  beam_options.quiet_workers(default)
  assert default.default_sdk_harness_log_level == "ERROR"
  assert default.sdk_harness_log_level_overrides == {
      "pipelines": "INFO", "__main__": "ERROR",
      "apache_beam.runners.worker.sdk_worker_main": "ERROR"}



def test_is_local_and_the_main_session_is_never_pickled():
  assert beam_options.is_local(beam_options.from_flags([]))
  assert beam_options.is_local(beam_options.from_flags(
      ["--runner", "DirectRunner"]))
  dataflow = beam_options.from_flags(["--runner", "DataflowRunner"])
  assert not beam_options.is_local(dataflow)
  # Beam would pickle it for Dataflow by default.
  assert dataflow.view_as(SetupOptions).save_main_session is False


def test_worker_files_dir_is_new_under_the_temp_location(tmp_path):
  local = beam_options.from_flags([])
  first = beam_options.worker_files_dir(local, "--blocklist")
  assert re.fullmatch(re.escape(tempfile.gettempdir()) + r"/worker-files-"
                      r"[0-9a-f]{16}", first)
  assert beam_options.worker_files_dir(local, "--blocklist") != first
  assert beam_options.worker_files_dir(
      beam_options.from_flags(["--temp_location", str(tmp_path)]),
      "--blocklist").startswith(f"{tmp_path}/worker-files-")
  dataflow = ["--runner", "DataflowRunner", "--project", "p", "--region",
              "europe-west4"]
  assert beam_options.worker_files_dir(
      beam_options.from_flags([*dataflow, "--temp_location", "gs://b/tmp"]),
      "--blocklist").startswith("gs://b/tmp/worker-files-")
  for temp in ([], ["--temp_location", str(tmp_path)]):
    with pytest.raises(ValueError) as raised:
      beam_options.worker_files_dir(
          beam_options.from_flags([*dataflow, *temp]), "--blocklist")
    assert str(raised.value) == (
        "--blocklist on DataflowRunner needs a --temp_location that its "
        "workers can read (gs://... on Dataflow): the launcher writes the "
        "files they read there")


def test_beams_timed_flush_drops_what_is_written_while_it_sends():
  """The upstream fault the local runner avoids (see `_LocalRunner`).

  When this starts failing, Beam has fixed its stream and the runner's
  size-only flushing may go.
  """
  sent = []
  sending, written = threading.Event(), threading.Event()

  def slow_send(data):  # As when the data plane's send queue is full.
    if data:
      sending.set()
      written.wait(10)
      sent.append(data)

  stream = data_plane.TimeBasedBufferingClosableOutputStream(
      close_callback=sent.append, flush_callback=slow_send,
      time_flush_threshold_ms=1)
  stream.write(b"first chunk;")
  assert sending.wait(10)
  stream.write(b"second chunk")
  written.set()
  stream.close()
  assert b"".join(sent) == b"first chunk;"


def test_local_runner_sends_worker_inputs_whole(monkeypatch):
  timed = []
  create = data_plane.ClosableOutputStream.create

  def recording_create(close_callback, flush_callback, time_limit_ms):
    timed.append(time_limit_ms > 0)
    return create(close_callback, flush_callback, time_limit_ms)

  monkeypatch.setattr(data_plane.ClosableOutputStream, "create",
                      staticmethod(recording_create))
  options = beam_options.from_flags(
      ["--direct_num_workers", "2", "--direct_running_mode",
       "multi_processing"])
  chunk = 256 * 1024
  with beam.Pipeline(runner=beam_options.runner_for(options),
                     options=options) as p:
    pairs = (p | beam.Create(range(16)) | beam.Reshuffle()
             | beam.FlatMap(lambda i: [(i % 4, bytes(chunk))] * 8))
    sizes = (pairs | beam.GroupByKey()
             | beam.Map(lambda kv: (kv[0], sum(map(len, kv[1])))))
    assert_that(sizes, equal_to([(k, 32 * chunk) for k in range(4)]))
  # The runner's streams to its two workers, none flushed on a timer.
  assert timed and not any(timed)
