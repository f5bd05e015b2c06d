"""Parquet files: key, caption and image columns (`ParquetColumns`)."""

from collections.abc import Iterator
import dataclasses
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.readers.common import CAPTION_FIELDS
from pipelines.readers.common import CorruptInputError
from pipelines.readers.common import OnError
from pipelines.readers.common import RawExample
from pipelines.readers.common import read_referenced_image
from pipelines.readers.common import report


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
    return read_referenced_image(value, source)
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
    report(on_error, source, e)
