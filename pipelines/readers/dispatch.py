"""Input files: matching patterns, and reading a file by its extension."""

from collections.abc import Callable, Iterable, Iterator
import functools
import gzip
import os
import posixpath
from typing import BinaryIO

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from pipelines.readers.common import OnError
from pipelines.readers.common import RawExample
from pipelines.readers.common import report
from pipelines.readers.jsonl import read_jsonl
from pipelines.readers.parquet import DEFAULT_PARQUET_COLUMNS
from pipelines.readers.parquet import ParquetColumns
from pipelines.readers.parquet import read_parquet
from pipelines.readers.tfrecord import read_tfrecord
from pipelines.readers.webdataset import read_webdataset_tar

Reader = Callable[[BinaryIO, str, OnError], Iterator[RawExample]]

_GZIP_SUFFIX = ".gz"
# No ".json": img2dataset writes `NNNNN_stats.json` beside its shards, and a
# glob over a download folder must not take those for manifests.
_READERS_BY_EXTENSION: dict[str, Callable[..., Iterator[RawExample]]] = {
    ".tar": read_webdataset_tar,
    ".tgz": read_webdataset_tar,
    ".parquet": read_parquet,
    ".tfrecord": read_tfrecord,
    ".tfrecords": read_tfrecord,
    ".jsonl": read_jsonl,
}
SUPPORTED_EXTENSIONS = tuple(
    [*_READERS_BY_EXTENSION]
    + [e + _GZIP_SUFFIX for e in (".tar", ".tfrecord", ".tfrecords", ".jsonl")])


def _reader_and_compression(path: str) -> tuple[Callable[..., Iterator], bool]:
  name = posixpath.basename(path).lower()
  gzipped = name.endswith(_GZIP_SUFFIX)
  if gzipped:
    name = name[:-len(_GZIP_SUFFIX)]
  reader = _READERS_BY_EXTENSION.get(os.path.splitext(name)[1])
  if reader is None or (gzipped and reader is read_parquet):
    raise ValueError(
        f"cannot read {path!r}: unknown input format; supported extensions: "
        f"{', '.join(SUPPORTED_EXTENSIONS)}")
  return reader, gzipped


def reader_for(path: str) -> Reader:
  """The reader for `path`'s extension (gzip handled by `read_examples`).

  Raises:
    ValueError: for an extension no reader knows.
  """
  return _reader_and_compression(path)[0]


def read_examples(
    path: str,
    on_error: OnError = None,
    *,
    parquet_columns: ParquetColumns = DEFAULT_PARQUET_COLUMNS,
) -> Iterator[RawExample]:
  """Yields the examples of the input file `path`, by its extension.

  Args:
    path: a local path or any Beam `FileSystems` URL.
    on_error: called with (path, exception) if the file cannot be opened or is
      damaged; the examples before the damage are still yielded. If None, the
      exception propagates.
    parquet_columns: the columns read from Parquet files.

  Raises:
    ValueError: for an extension no reader knows (before opening the file).
  """
  reader, gzipped = _reader_and_compression(path)
  if reader is read_parquet:
    reader = functools.partial(read_parquet, columns=parquet_columns)
  try:
    raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
  except OSError as e:
    report(on_error, path, e)
    return
  with raw:
    stream = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
    yield from reader(stream, path, on_error)


def match_input_files(patterns: str | Iterable[str]) -> list[str]:
  """The sorted, distinct files matching `patterns` (globs or paths).

  Raises:
    ValueError: if there are no patterns, a pattern matches nothing, or a
      matched file has an extension no reader knows.
  """
  patterns = [patterns] if isinstance(patterns, str) else list(patterns)
  if not patterns:
    raise ValueError("no input patterns given")
  paths = set()
  for result in FileSystems.match(patterns):
    if not result.metadata_list:
      raise ValueError(f"no input files match {result.pattern!r}")
    paths.update(m.path for m in result.metadata_list)
  for path in paths:
    _reader_and_compression(path)
  return sorted(paths)
