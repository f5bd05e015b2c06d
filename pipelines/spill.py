"""Records that wait on local disk for their shard, on the local runner.

A build groups its kept records by shard. On Dataflow the shuffle service
carries them; Beam's local runner holds every element that crosses a
GroupByKey in its own memory and copies it several times on the way
(encoded, wrapped in a Fn API message, decoded, regrouped, re-encoded, in
fresh buffers): 0.6 to 0.7 ms of CPU per 640x480 example, half as much as
decoding its image, and about 100 KB of memory per example held until the
build ends (BENCHMARKS.md, "Dataset pipeline"). Spilled,
each serialized record is written once to an ArrayRecord file of its bundle
in a local directory, only a `SpillRef` crosses the GroupByKey, and the shard
writer reads the records back. All workers of the local runner share the
machine's disk, so any of them can read any spill file.
"""

from collections.abc import Sequence
import os
import secrets
from typing import NamedTuple

from array_record.python import array_record_module

from dataformat import shards

SUFFIX = ".spill"


class SpillRef(NamedTuple):
  """Where a spilled record is: its file and its index in that file."""

  path: str
  index: int


class SpillWriter:
  """Appends records to one new spill file in `directory`, made on first use.

  The file name is random: each bundle (and each retry of one) writes its own
  file, and the records' contents never depend on the name.
  """

  def __init__(self, directory: str):
    self._path = os.path.join(directory, secrets.token_hex(8) + SUFFIX)
    self._writer = None
    self._count = 0

  def write(self, record: bytes) -> SpillRef:
    """Appends `record`; returns its reference.

    Raises:
      OSError: naming the file, if writing fails (a full disk).
    """
    try:
      if self._writer is None:
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        self._writer = array_record_module.ArrayRecordWriter(
            self._path, shards.WRITER_OPTIONS)
      self._writer.write(record)
    except RuntimeError as e:  # ArrayRecord's I/O errors.
      raise OSError(f"writing {self._path} failed: {e}") from e
    self._count += 1
    return SpillRef(self._path, self._count - 1)

  def close(self) -> None:
    """Finishes the file, if any record was written.

    Raises:
      OSError: naming the file, if its last bytes cannot be written.
    """
    if self._writer is None:
      return
    writer, self._writer = self._writer, None
    try:
      writer.close()
    except RuntimeError as e:
      raise OSError(f"writing {self._path} failed: {e}") from e


def read(refs: Sequence[SpillRef]) -> list[bytes]:
  """The records that `refs` point to, in the order of `refs`.

  Raises:
    OSError: naming the file, if a spill file is missing or damaged.
  """
  by_path: dict[str, list[int]] = {}
  for position, ref in enumerate(refs):
    by_path.setdefault(ref.path, []).append(position)
  found: list[bytes] = [b""] * len(refs)
  for path, positions in by_path.items():
    positions.sort(key=lambda p: refs[p].index)
    try:
      reader = array_record_module.ArrayRecordReader(
          path, "readahead_buffer_size:0")
      try:
        if not reader.ok():
          raise RuntimeError("not a readable ArrayRecord file")
        records = reader.read([refs[p].index for p in positions])
      finally:
        reader.close()
    except (RuntimeError, ValueError) as e:
      raise OSError(f"reading the spilled records in {path} failed: {e}"
                    ) from e
    for position, record in zip(positions, records):
      found[position] = record
  return found
