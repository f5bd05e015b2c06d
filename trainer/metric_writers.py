"""Training progress: the console line, TensorBoard scalars and step timing.

Event files are written with TensorBoard's own `RecordWriter` through the file
layer (local or gs://). TensorBoard's `EventFileWriter` would open its file
through `tensorboard.compat.tf`, which imports TensorFlow whenever it is
installed: seconds and memory in every training run.
"""

from collections.abc import Iterator, Mapping
import contextlib
import io
import os
import socket
import time

from tensorboard.compat.proto import event_pb2
from tensorboard.compat.proto import summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

from dataformat import files


class TensorBoardWriter:
  """Appends scalar summaries to a new event file in `logdir`.

  Each `write_scalars` is on disk when it returns. Objects in a bucket
  cannot be appended to: there the file (a few hundred bytes per call) is
  rewritten whole, as TensorFlow's GCS file system does on a flush.
  """

  def __init__(self, logdir: str | os.PathLike[str]):
    logdir = os.fspath(logdir)
    files.makedirs(logdir)
    now = time.time()
    self.path = files.join(logdir, f"events.out.tfevents.{int(now)}."
                           f"{socket.gethostname()}")
    self._events = io.BytesIO()  # Not yet in a local file; all on gs://.
    self._records = RecordWriter(self._events)
    self._write(event_pb2.Event(wall_time=now, file_version="brain.Event:2"))
    self._flush()

  def _write(self, event: event_pb2.Event) -> None:
    self._records.write(event.SerializeToString())

  def _flush(self) -> None:
    if files.is_uri(self.path):
      files.write_bytes(self.path, self._events.getvalue())
      return
    with files.open_file(self.path, "ab") as f:
      f.write(self._events.getvalue())
    self._events.seek(0)
    self._events.truncate()

  def write_scalars(self, step: int, scalars: Mapping[str, float]) -> None:
    """Writes one value per tag at `step`."""
    summary = summary_pb2.Summary(value=[
        summary_pb2.Summary.Value(tag=tag, simple_value=float(value))
        for tag, value in scalars.items()
    ])
    self._write(event_pb2.Event(wall_time=time.time(), step=int(step),
                                summary=summary))
    self._flush()

  def close(self) -> None:
    self._flush()
    self._records.close()


def format_duration(seconds: float) -> str:
  """'1h02m03s', '4m05s' or '6s'."""
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  if hours:
    return f"{hours}h{minutes:02d}m{seconds:02d}s"
  if minutes:
    return f"{minutes}m{seconds:02d}s"
  return f"{seconds}s"


def progress_line(step: int, total_steps: int, loss: float,
                  examples_per_sec: float, data_wait: float,
                  eta_seconds: float) -> str:
  """The console line of one logging step."""
  width = len(str(total_steps))
  return (f"step {step:>{width}}/{total_steps} | loss {loss:.4f} | "
          f"{examples_per_sec:.1f} ex/s | data wait {100 * data_wait:.1f}% | "
          f"ETA {format_duration(eta_seconds)}")


class StepTimer:
  """Wall time and time spent waiting for input over a window of steps."""

  def __init__(self):
    self._start = time.perf_counter()
    self._waited = 0.0
    self._steps = 0

  @contextlib.contextmanager
  def waiting(self) -> Iterator[None]:
    """Counts the time spent inside as waiting for input."""
    began = time.perf_counter()
    try:
      yield
    finally:
      self._waited += time.perf_counter() - began

  def add_step(self) -> None:
    self._steps += 1

  @contextlib.contextmanager
  def excluded(self) -> Iterator[None]:
    """Leaves the time spent inside (checkpoints, evaluations) uncounted."""
    began = time.perf_counter()
    try:
      yield
    finally:
      self._start += time.perf_counter() - began

  def lap(self) -> tuple[int, float, float]:
    """(steps, seconds, data-wait fraction) since the last lap; restarts."""
    now = time.perf_counter()
    seconds = max(now - self._start, 1e-9)
    window = (self._steps, seconds, min(self._waited / seconds, 1.0))
    self._start, self._waited, self._steps = now, 0.0, 0
    return window
