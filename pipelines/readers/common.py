"""What every input format shares: `RawExample`, damage reports, image paths."""

from collections.abc import Callable, Sequence
import dataclasses
import os
import posixpath
from typing import Any, NamedTuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

# Field names, first present wins, in TFRecord features, JSONL manifests and
# (captions) Parquet columns.
KEY_FIELDS = ("key", "image/key")
CAPTION_FIELDS = ("caption", "text")

# `RawExample.metadata` entry saying why an entry's image could not be read.
READ_ERROR = "read_error"

# img2dataset's per-sample fields (its KEY.json in webdataset tars, columns of
# its Parquet shards), which other inputs may share.
URL = "url"
SOURCE_KEY = "key"
SHA256 = "sha256"
ORIGINAL_WIDTH = "original_width"
ORIGINAL_HEIGHT = "original_height"
STATUS = "status"
ERROR_MESSAGE = "error_message"
SUCCESS = "success"

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


def report(on_error: OnError, source: str, error: Exception) -> None:
  """Passes a damaged file's `error` to `on_error`; raises it if None."""
  if on_error is None:
    raise error
  on_error(source, error)


def unreadable_example(key: str, source: str, why: str) -> RawExample:
  """An entry that could not be read: no image, `why` under READ_ERROR."""
  return RawExample(key=key, source=source, image=None, caption=None,
                    metadata={READ_ERROR: why})


def download_failure(metadata: dict[str, Any]) -> str | None:
  """Why the source could not fetch the pair, or None if it says nothing.

  img2dataset keeps a row for every URL in its Parquet shards; those whose
  `status` is not "success" (e.g. "failed_to_download", "failed_to_resize")
  have no image, and `error_message` says why.
  """
  status = metadata.get(STATUS)
  if status is None or status == SUCCESS:
    return None
  error = metadata.get(ERROR_MESSAGE)
  return f"status {status}" + (f": {error}" if error else "")


def first_present(mapping: dict[str, Any], names: Sequence[str]) -> Any:
  """The value of the first of `names` present and not None, else None."""
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


def read_referenced_image(
    path: str, base_file: str) -> tuple[bytes | None, dict[str, str]]:
  """(image bytes, {}) or (None, {READ_ERROR: why}) for an image path."""
  resolved = resolve_relative_path(base_file, path)
  try:
    with FileSystems.open(
        resolved, compression_type=CompressionTypes.UNCOMPRESSED) as f:
      return f.read(), {}
  except OSError as e:
    return None, {READ_ERROR: f"cannot read image {resolved}: {e}"}
