"""Readers of raw web pairs: input files -> `RawExample`s.

Four input formats, chosen by file extension (`reader_for`):

  .tar .tgz .tar.gz         webdataset shards as img2dataset writes them
  .parquet                  key, caption and image columns (`ParquetColumns`)
  .tfrecord(s) (.gz)        `tf.train.Example`s: `key`, `image/encoded`, `text`
  .jsonl (.jsonl.gz)        manifests: `{"key", "image_path", "caption"}` lines

Paths are opened through Beam's `FileSystems`, so `gs://` and other Beam
filesystems work like local paths.

Readers never judge content: an image or caption that is missing, empty or
undecodable is passed on as it is (bytes or None) so that the validation step
can reject it with a reason. Two kinds of damage are told apart:

* A damaged file (a truncated tar, a bad TFRecord checksum, an unreadable
  Parquet row group, a broken gzip stream): the reader yields the examples
  before the damage, then reports the damage once through `on_error` and stops.
  The example being assembled when the damage hit is dropped with the report.
* A damaged entry in a readable file (a JSONL line that is not a JSON object,
  a TFRecord payload that is not a `tf.train.Example`, a manifest or Parquet
  image path that cannot be read): the reader yields a `RawExample` with
  `image=None` and the problem under `metadata[READ_ERROR]`, so the entry is
  counted and rejected (as `missing_image`) like any other bad example, never
  silently dropped. Its key is `"<source>:<line or record number>"` when the
  entry gives none.

Keys are passed through as the input gives them (img2dataset keys are unique
across a download); readers do not detect keys that repeat across files.
"""

from collections.abc import Callable, Iterable, Iterator, Sequence
import dataclasses
import functools
import gzip
import json
import os
import posixpath
import struct
import tarfile
from typing import Any, BinaryIO, NamedTuple
import zlib

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines import example_proto

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTENSIONS = ("txt",)

# Field names, first present wins, in TFRecord features and JSONL manifests.
KEY_FIELDS = ("key", "image/key")
IMAGE_FEATURES = ("image/encoded", "image", "jpg")
IMAGE_PATH_FIELDS = ("image_path", "image")
CAPTION_FIELDS = ("caption", "text")

# `RawExample.metadata` entry saying why an entry's image could not be read.
READ_ERROR = "read_error"

OnError = Callable[[str, Exception], None] | None


@dataclasses.dataclass(frozen=True)
class RawExample:
  """One pair as read from the input, before any validation.

  Attributes:
    key: the example's key, unique within the input.
    source: the input file the example came from.
    image: the encoded image bytes, or None if the input had no image.
    caption: the caption's raw bytes (not yet decoded), or None if missing.
    metadata: the example's side data (img2dataset's `KEY.json`, the other
      scalar Parquet columns, TFRecord features or JSONL fields), if any.
  """

  key: str
  source: str
  image: bytes | None
  caption: bytes | None
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


class CorruptInputError(Exception):
  """An input file is damaged at a known place (reported via `on_error`)."""


class FileError(NamedTuple):
  """An input file that could not be read to its end, and why."""

  source: str
  message: str


def _report(on_error: OnError, source: str, error: Exception) -> None:
  if on_error is None:
    raise error
  on_error(source, error)


def _unreadable_example(key: str, source: str, why: str) -> RawExample:
  return RawExample(key=key, source=source, image=None, caption=None,
                    metadata={READ_ERROR: why})


def _first_present(mapping: dict[str, Any], names: Sequence[str]) -> Any:
  return next((mapping[n] for n in names if mapping.get(n) is not None), None)


def resolve_relative_path(base_file: str, path: str) -> str:
  """`path` as written in `base_file`: relative to its folder unless absolute.

  Absolute local paths and URLs (`gs://...`) are returned unchanged.
  """
  if "://" in path or os.path.isabs(path):
    return path
  if "://" in base_file:
    return posixpath.join(posixpath.dirname(base_file), path)
  return os.path.join(os.path.dirname(base_file), path)


def _read_referenced_image(
    path: str, base_file: str) -> tuple[bytes | None, dict[str, str]]:
  """(image bytes, {}) or (None, {READ_ERROR: why}) for an image path."""
  resolved = resolve_relative_path(base_file, path)
  try:
    with FileSystems.open(
        resolved, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      return f.read(), {}
  except OSError as e:
    return None, {READ_ERROR: f"cannot read image {resolved}: {e}"}


# Webdataset tar shards.


def _split_member_name(name: str) -> tuple[str, str]:
  """'dir/000123.jpg' -> ('dir/000123', 'jpg'), as webdataset groups files."""
  base = posixpath.basename(name)
  stem, dot, ext = base.partition(".")
  prefix = posixpath.dirname(name)
  key = posixpath.join(prefix, stem) if prefix else stem
  return key, (ext if dot else "")


def _json_object(data: bytes) -> dict[str, Any]:
  """`data` parsed as a JSON object, or {} if it is not one."""
  try:
    value = json.loads(data)
  except ValueError:
    return {}
  return value if isinstance(value, dict) else {}


def _to_example(key: str, source: str, files: dict[str, bytes]) -> RawExample:
  image = next((files[e] for e in IMAGE_EXTENSIONS if e in files), None)
  caption = next((files[e] for e in CAPTION_EXTENSIONS if e in files), None)
  return RawExample(key=posixpath.basename(key), source=source, image=image,
                    caption=caption,
                    metadata=_json_object(files["json"]) if "json" in files
                    else {})


def read_webdataset_tar(
    fileobj: BinaryIO,
    source: str,
    on_error: OnError = None,
) -> Iterator[RawExample]:
  """Yields the examples of one webdataset tar shard, in file order.

  Files are grouped by their name up to the first dot (`KEY.jpg`, `KEY.txt`,
  `KEY.json`), as img2dataset writes them; consecutive files with the same key
  form one example. Gzip-compressed tars are recognised by their content.

  Args:
    fileobj: the open tar file (a local file or a Beam `FileSystems` stream).
    source: the file's path, recorded in each example.
    on_error: called with (source, exception) if the tar is corrupt or
      truncated; the examples read before the damage are still yielded. If
      None, the exception propagates.
  """
  current_key, files = None, {}
  try:
    with tarfile.open(fileobj=fileobj, mode="r|*") as tar:
      for member in tar:
        if not member.isfile():
          continue
        key, ext = _split_member_name(member.name)
        if key != current_key and current_key is not None:
          yield _to_example(current_key, source, files)
          files = {}
        current_key = key
        files[ext.lower()] = tar.extractfile(member).read()
  except (tarfile.TarError, EOFError, OSError) as e:
    # The example being assembled when the damage hit may be incomplete:
    # it is dropped with the damage report, never passed on half-read.
    _report(on_error, source, e)
    return
  if current_key is not None:
    yield _to_example(current_key, source, files)


# Parquet.


@dataclasses.dataclass(frozen=True)
class ParquetColumns:
  """The columns holding an example's parts; in each tuple the first present.

  The defaults read img2dataset's parquet output (`key`, `caption`, `jpg`) and
  Hugging Face datasets layouts (`text`, `image` as a {bytes, path} struct).
  An image column may hold encoded bytes, a {bytes, path} struct, or a string
  path, read relative to the Parquet file's folder.
  """

  key: tuple[str, ...] = ("key",)
  caption: tuple[str, ...] = CAPTION_FIELDS
  image: tuple[str, ...] = ("jpg", "image", "image_path")


DEFAULT_PARQUET_COLUMNS = ParquetColumns()

# Rows converted to Python at a time; memory stays within one row group.
_PARQUET_BATCH_ROWS = 256


def _is_metadata_type(arrow_type: pa.DataType) -> bool:
  return (pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
          or pa.types.is_integer(arrow_type)
          or pa.types.is_floating(arrow_type)
          or pa.types.is_boolean(arrow_type))


def _as_bytes_column(column: pa.Array) -> list[bytes | None]:
  """A text column as raw bytes (bad UTF-8 reaches validation); else None."""
  if pa.types.is_string(column.type):
    column = column.cast(pa.binary())
  elif pa.types.is_large_string(column.type):
    column = column.cast(pa.large_binary())
  return [v if isinstance(v, bytes) else None for v in column.to_pylist()]


def _parquet_image(value: Any, source: str) -> tuple[bytes | None, dict]:
  """An image cell (bytes, {bytes, path} or a path) -> (bytes, metadata)."""
  if isinstance(value, dict):
    if value.get("bytes") is not None:
      return value["bytes"], {}
    value = value.get("path")
  if isinstance(value, str):
    return _read_referenced_image(value, source)
  return (value if isinstance(value, bytes) else None), {}


def _parquet_layout(
    schema: pa.Schema, columns: ParquetColumns
) -> tuple[str | None, str, str, list[str]]:
  """(key, caption, image, metadata) column names present in `schema`.

  Raises:
    CorruptInputError: if the file has no image or no caption column.
  """
  key, caption, image = (
      next((c for c in candidates if c in schema.names), None)
      for candidates in (columns.key, columns.caption, columns.image))
  for role, found, candidates in (("image", image, columns.image),
                                  ("caption", caption, columns.caption)):
    if found is None:
      raise CorruptInputError(
          f"no {role} column: expected one of {list(candidates)}, "
          f"found {schema.names}")
  metadata = [field.name for field in schema
              if field.name not in (key, caption, image)
              and _is_metadata_type(field.type)]
  return key, caption, image, metadata


def read_parquet(
    fileobj: BinaryIO,
    source: str,
    on_error: OnError = None,
    *,
    columns: ParquetColumns = DEFAULT_PARQUET_COLUMNS,
) -> Iterator[RawExample]:
  """Yields one example per row of a Parquet file, in row order.

  Rows are read in batches of one row group at most. A file without a key
  column gets keys `"<source>:<row>"`; the other string and number columns go
  to `metadata`.

  Args:
    fileobj: the open, seekable Parquet file.
    source: the file's path, recorded in each example; image paths in the file
      are relative to its folder.
    on_error: called with (source, exception) if the file is unreadable, lacks
      an image or caption column, or a row group is damaged; the rows before
      the damage are still yielded. If None, the exception propagates.
    columns: which columns hold the key, caption and image.
  """
  try:
    parquet_file = pq.ParquetFile(fileobj)
    key_column, caption_column, image_column, metadata_columns = (
        _parquet_layout(parquet_file.schema_arrow, columns))
    row = 0
    # One row group at a time: the reader would otherwise read ahead, and
    # damage in a later row group would hide the rows before it.
    batches = (
        batch for group in range(parquet_file.num_row_groups)
        for batch in parquet_file.iter_batches(
            batch_size=_PARQUET_BATCH_ROWS, row_groups=[group],
            columns=[c for c in (key_column, caption_column, image_column) if c]
            + metadata_columns))
    for batch in batches:
      images = batch.column(image_column).to_pylist()
      captions = _as_bytes_column(batch.column(caption_column))
      keys = (batch.column(key_column).to_pylist() if key_column
              else [None] * batch.num_rows)
      side = {c: batch.column(c).to_pylist() for c in metadata_columns}
      for i in range(batch.num_rows):
        image, read_error = _parquet_image(images[i], source)
        yield RawExample(
            key=str(keys[i]) if keys[i] is not None else f"{source}:{row}",
            source=source,
            image=image,
            caption=captions[i],
            metadata={**{c: side[c][i] for c in metadata_columns},
                      **read_error})
        row += 1
  except (CorruptInputError, pa.ArrowException, OSError) as e:
    _report(on_error, source, e)


# TFRecord.

_CRC32C_POLYNOMIAL = 0x82F63B78  # Castagnoli, bit-reversed.
_CRC_MASK_DELTA = 0xA282EAD8
# Payloads from this size on are checksummed in blocks of _CRC_BLOCK bytes, all
# blocks in step with numpy, then combined; smaller ones byte by byte.
_CRC_BLOCK = 32
_CRC_VECTOR_MIN_BYTES = 2048


def _crc32c_table() -> np.ndarray:
  table = np.arange(256, dtype=np.uint32)
  for _ in range(8):
    table = np.where(table & 1, (table >> 1) ^ np.uint32(_CRC32C_POLYNOMIAL),
                     table >> 1)
  return table


_CRC_TABLE = _crc32c_table()
_CRC_TABLE_LIST = _CRC_TABLE.tolist()


def _crc_zero_bytes(registers: np.ndarray, count: int) -> np.ndarray:
  """CRC registers after `count` more zero bytes (a linear map)."""
  for _ in range(count):
    registers = _CRC_TABLE[registers & 0xFF] ^ (registers >> 8)
  return registers


def _apply_crc_shift(shift: np.ndarray, registers: np.ndarray) -> np.ndarray:
  """Applies a linear register map given as 4 per-byte tables (4, 256)."""
  return (shift[0][registers & 0xFF] ^ shift[1][(registers >> 8) & 0xFF]
          ^ shift[2][(registers >> 16) & 0xFF] ^ shift[3][registers >> 24])


@functools.cache
def _crc_block_shift(level: int) -> np.ndarray:
  """The register map of _CRC_BLOCK * 2**level zero bytes, as byte tables."""
  if level == 0:
    identity = (np.arange(256, dtype=np.uint32)[None, :]
                << (8 * np.arange(4, dtype=np.uint32))[:, None])
    return _crc_zero_bytes(identity, _CRC_BLOCK)
  half = _crc_block_shift(level - 1)
  return _apply_crc_shift(half, half)


def crc32c(data: bytes) -> int:
  """The CRC-32C (Castagnoli) checksum of `data`, as TFRecord files use."""
  if len(data) < _CRC_VECTOR_MIN_BYTES:
    crc = 0xFFFFFFFF
    for byte in data:
      crc = _CRC_TABLE_LIST[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF
  # The CRC is affine in the data: a register starting at all ones equals one
  # starting at zero with the first 4 bytes inverted, and leading zero bytes
  # leave a zero register unchanged, so the data is zero-padded in front to a
  # power-of-two number of blocks whose CRCs combine pairwise.
  num_blocks = -(-len(data) // _CRC_BLOCK)
  lanes = 1 << (num_blocks - 1).bit_length()
  padded = np.zeros(lanes * _CRC_BLOCK, dtype=np.uint8)
  start = padded.size - len(data)
  padded[start:] = np.frombuffer(data, dtype=np.uint8)
  padded[start:start + 4] ^= 0xFF
  registers = np.zeros(lanes, dtype=np.uint32)
  for column in np.ascontiguousarray(padded.reshape(lanes, _CRC_BLOCK).T):
    registers = _CRC_TABLE[(registers ^ column) & 0xFF] ^ (registers >> 8)
  level = 0
  while registers.size > 1:
    registers = (_apply_crc_shift(_crc_block_shift(level), registers[0::2])
                 ^ registers[1::2])
    level += 1
  return int(registers[0]) ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC-32C of `data`."""
  crc = crc32c(data)
  return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


_TFRECORD_HEADER = struct.Struct("<QI")
_TFRECORD_FOOTER = struct.Struct("<I")


def _read_exactly(fileobj: BinaryIO, size: int) -> bytes:
  chunks, remaining = [], size
  while remaining:
    chunk = fileobj.read(remaining)
    if not chunk:
      break
    chunks.append(chunk)
    remaining -= len(chunk)
  return b"".join(chunks)


def _tfrecord_payloads(fileobj: BinaryIO) -> Iterator[bytes]:
  """Yields the payloads of a TFRecord file, checking both checksums.

  Raises:
    CorruptInputError: at the first truncated or mismatching record.
  """
  offset = 0
  while header := _read_exactly(fileobj, _TFRECORD_HEADER.size):
    if len(header) < _TFRECORD_HEADER.size:
      raise CorruptInputError(f"truncated record header at byte {offset}")
    length, length_crc = _TFRECORD_HEADER.unpack(header)
    if masked_crc32c(header[:8]) != length_crc:
      raise CorruptInputError(
          f"record length checksum mismatch at byte {offset}")
    payload = _read_exactly(fileobj, length)
    footer = _read_exactly(fileobj, _TFRECORD_FOOTER.size)
    if len(payload) < length or len(footer) < _TFRECORD_FOOTER.size:
      raise CorruptInputError(f"truncated record at byte {offset}")
    if masked_crc32c(payload) != _TFRECORD_FOOTER.unpack(footer)[0]:
      raise CorruptInputError(f"record data checksum mismatch at byte {offset}")
    yield payload
    offset += _TFRECORD_HEADER.size + length + _TFRECORD_FOOTER.size


def _feature_values(feature) -> list[Any]:
  kind = feature.WhichOneof("kind")
  return list(getattr(feature, kind).value) if kind else []


def _metadata_value(values: list[Any]) -> Any:
  """Feature values as JSON-able metadata: text decoded, one value unlisted."""
  if values and isinstance(values[0], bytes):
    values = [v.decode("utf-8", "backslashreplace") for v in values]
  return values[0] if len(values) == 1 else values


def _example_from_tf_example(
    payload: bytes, source: str, index: int) -> RawExample:
  fallback_key = f"{source}:{index}"
  example = example_proto.Example()
  try:
    example.ParseFromString(payload)
  except Exception as e:  # protobuf raises its own DecodeError type.
    return _unreadable_example(
        fallback_key, source, f"record {index} is not a tf.train.Example: {e}")
  values = {name: _feature_values(feature)
            for name, feature in example.features.feature.items()}
  firsts = {name: v[0] for name, v in values.items() if v}
  key = _first_present(firsts, KEY_FIELDS)
  image = _first_present(firsts, IMAGE_FEATURES)
  caption = _first_present(firsts, CAPTION_FIELDS)
  used = {*KEY_FIELDS, *IMAGE_FEATURES, *CAPTION_FIELDS}
  return RawExample(
      key=(key.decode("utf-8", "backslashreplace") if isinstance(key, bytes)
           else fallback_key),
      source=source,
      image=image if isinstance(image, bytes) else None,
      caption=caption if isinstance(caption, bytes) else None,
      metadata={name: _metadata_value(v) for name, v in sorted(values.items())
                if name not in used and v})


def read_tfrecord(
    fileobj: BinaryIO,
    source: str,
    on_error: OnError = None,
) -> Iterator[RawExample]:
  """Yields one example per `tf.train.Example` of a TFRecord file.

  The key is the `key` (or `image/key`) feature, else `"<source>:<index>"`;
  the image the first of `image/encoded`, `image`, `jpg`; the caption the
  first of `caption`, `text`; other features go to `metadata`. Both record
  checksums are verified, so truncation and corruption are detected.

  Args:
    fileobj: the open (uncompressed) TFRecord stream.
    source: the file's path, recorded in each example.
    on_error: called with (source, exception) at the first damaged record;
      the records before it are still yielded. If None, it propagates.
  """
  try:
    for index, payload in enumerate(_tfrecord_payloads(fileobj)):
      yield _example_from_tf_example(payload, source, index)
  except (CorruptInputError, OSError, EOFError, zlib.error) as e:
    _report(on_error, source, e)


# JSONL manifests.


def _example_from_json_line(
    line: bytes, source: str, line_number: int) -> RawExample:
  fallback_key = f"{source}:{line_number}"
  try:
    entry = json.loads(line)
  except ValueError as e:
    return _unreadable_example(
        fallback_key, source, f"line {line_number} is not valid JSON: {e}")
  if not isinstance(entry, dict):
    return _unreadable_example(
        fallback_key, source, f"line {line_number} is not a JSON object")
  key = _first_present(entry, KEY_FIELDS)
  caption = _first_present(entry, CAPTION_FIELDS)
  image_path = _first_present(entry, IMAGE_PATH_FIELDS)
  image, read_error = (_read_referenced_image(image_path, source)
                       if isinstance(image_path, str) else (None, {}))
  used = {*KEY_FIELDS, *CAPTION_FIELDS, *IMAGE_PATH_FIELDS}
  return RawExample(
      key=str(key) if key is not None else fallback_key,
      source=source,
      image=image,
      # Lone surrogates survive as bytes that caption validation rejects.
      caption=(caption.encode("utf-8", "surrogatepass")
               if isinstance(caption, str) else None),
      metadata={**{k: v for k, v in entry.items() if k not in used},
                **read_error})


def read_jsonl(
    fileobj: BinaryIO,
    source: str,
    on_error: OnError = None,
) -> Iterator[RawExample]:
  """Yields one example per non-blank line of a JSONL manifest.

  Each line is an object with a `key`, an image path (`image_path` or
  `image`: relative to the manifest's folder, absolute, or a `FileSystems`
  URL) and a caption (`caption` or `text`); other fields go to `metadata`.
  A missing key becomes `"<source>:<line>"`; a missing or unreadable image
  file and a line that is not a JSON object give an example with no image.

  Args:
    fileobj: the open (uncompressed) manifest stream.
    source: the file's path, recorded in each example.
    on_error: called with (source, exception) if the stream breaks; the lines
      before the damage are still yielded. If None, it propagates.
  """
  try:
    for line_number, line in enumerate(fileobj, start=1):
      if line.strip():
        yield _example_from_json_line(line, source, line_number)
  except (OSError, EOFError, zlib.error) as e:
    _report(on_error, source, e)


# Dispatch on file names.

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
    _report(on_error, path, e)
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


# Beam.

METRICS_NAMESPACE = "read"
EXAMPLES_TAG = "examples"
FILE_ERRORS_TAG = "file_errors"


class _ReadFileFn(beam.DoFn):
  """Input path -> its examples, and a `FileError` if it is damaged."""

  def __init__(self, parquet_columns: ParquetColumns):
    super().__init__()
    self._parquet_columns = parquet_columns
    self._files_read = beam.metrics.Metrics.counter(
        METRICS_NAMESPACE, "files_read")
    self._examples_read = beam.metrics.Metrics.counter(
        METRICS_NAMESPACE, "examples_read")
    self._corrupt_files = beam.metrics.Metrics.counter(
        METRICS_NAMESPACE, "corrupt_files")

  def process(self, path: str):
    errors = []

    def record_error(source: str, error: Exception) -> None:
      errors.append(FileError(source, f"{type(error).__name__}: {error}"))

    for example in read_examples(path, record_error,
                                 parquet_columns=self._parquet_columns):
      self._examples_read.inc()
      yield example
    self._files_read.inc()
    for error in errors:
      self._corrupt_files.inc()
      yield beam.pvalue.TaggedOutput(FILE_ERRORS_TAG, error)


class ReadRawExamples(beam.PTransform):
  """Reads every file matching `patterns`, files spread across workers.

  The result has two outputs: `result[EXAMPLES_TAG]` (`RawExample`s, also
  `result.examples`) and `result[FILE_ERRORS_TAG]` (a `FileError` per damaged
  input file, also `result.file_errors`). Files are matched when the pipeline
  is built, so a pattern that matches nothing fails early.
  """

  def __init__(
      self,
      patterns: str | Sequence[str],
      parquet_columns: ParquetColumns = DEFAULT_PARQUET_COLUMNS,
  ):
    super().__init__()
    self._patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    self._parquet_columns = parquet_columns

  def expand(self, pbegin):
    paths = match_input_files(self._patterns)
    return (
        pbegin
        | "ListFiles" >> beam.Create(paths)
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadFiles" >> beam.ParDo(
            _ReadFileFn(self._parquet_columns)).with_outputs(
                FILE_ERRORS_TAG, main=EXAMPLES_TAG))
