"""Tests for trainer.metric_writers: event files, progress lines, timing."""

import pathlib
import subprocess
import sys

from tensorboard.backend.event_processing import event_accumulator

from trainer import metric_writers

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _scalars(logdir: pathlib.Path) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value)]} as TensorBoard's own reader sees `logdir`."""
  events = event_accumulator.EventAccumulator(str(logdir))
  events.Reload()
  return {tag: [(e.step, e.value) for e in events.Scalars(tag)]
          for tag in events.Tags()["scalars"]}


def test_tensorboard_reads_back_scalars_and_steps(tmp_path):
  logdir = tmp_path / "tb"
  writer = metric_writers.TensorBoardWriter(logdir)
  path = pathlib.Path(writer.path)
  assert path.parent == logdir
  assert path.name.startswith("events.out.tfevents.")
  writer.write_scalars(2, {"train/loss": 2.5, "perf/examples_per_sec": 96})
  # Each write is flushed: a TensorBoard watching the run sees it at once.
  assert _scalars(logdir) == {"train/loss": [(2, 2.5)],
                              "perf/examples_per_sec": [(2, 96.0)]}
  writer.write_scalars(4, {"train/loss": 1.25})
  writer.close()
  assert _scalars(logdir) == {"train/loss": [(2, 2.5), (4, 1.25)],
                              "perf/examples_per_sec": [(2, 96.0)]}
  assert [p.name for p in logdir.iterdir()] == [path.name]


def test_event_files_on_gcs_show_every_write(gcs, gcs_dir, tmp_path):
  # An object cannot be appended to: each write rewrites it whole.
  writer = metric_writers.TensorBoardWriter(f"{gcs_dir}/tb")
  name = writer.path.rsplit("/", 1)[1]
  assert writer.path == f"{gcs_dir}/tb/{name}"
  local = tmp_path / "tb"
  local.mkdir()

  def scalars():
    (local / name).write_bytes(gcs.read(writer.path))
    return _scalars(local)

  writer.write_scalars(2, {"train/loss": 2.5})
  assert scalars() == {"train/loss": [(2, 2.5)]}
  writer.write_scalars(4, {"train/loss": 1.25})
  writer.close()
  assert scalars() == {"train/loss": [(2, 2.5), (4, 1.25)]}
  assert gcs.list(f"{gcs_dir}/tb") == [name]


def test_writing_events_does_not_import_tensorflow(tmp_path):
  script = (
      "import sys\n"
      "from trainer import metric_writers\n"
      f"writer = metric_writers.TensorBoardWriter({str(tmp_path)!r})\n"
      "writer.write_scalars(1, {'loss': 1.0})\n"
      "writer.close()\n"
      "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                          capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr
  assert len(list(tmp_path.iterdir())) == 1


def test_progress_line_and_durations():
  assert metric_writers.format_duration(3723.4) == "1h02m03s"
  assert metric_writers.format_duration(245) == "4m05s"
  assert metric_writers.format_duration(6) == "6s"
  assert metric_writers.progress_line(
      7, 120, 0.123456, 512.25, 0.0456, 65) == (
          "step   7/120 | loss 0.1235 | 512.2 ex/s | data wait 4.6% | "
          "ETA 1m05s")
