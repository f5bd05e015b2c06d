"""Readers of raw web pairs: input files -> `RawExample`s.

Readers never judge content: an image or caption that is missing, empty or
undecodable is passed on as it is (bytes or None) so that the validation step
can reject it with a reason. A file that is corrupt or truncated part-way
yields the examples before the damage and then reports the damage through
`on_error` instead of raising.
"""

from collections.abc import Callable, Iterator
import dataclasses
import json
import posixpath
import tarfile
from typing import Any, BinaryIO

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTENSIONS = ("txt",)


@dataclasses.dataclass(frozen=True)
class RawExample:
  """One pair as read from the input, before any validation.

  Attributes:
    key: the example's key, unique within the input.
    source: the input file the example came from.
    image: the encoded image bytes, or None if the input had no image.
    caption: the caption's raw bytes (not yet decoded), or None if missing.
    metadata: the example's JSON side data (img2dataset's `KEY.json`), if any.
  """

  key: str
  source: str
  image: bytes | None
  caption: bytes | None
  metadata: dict[str, Any] = dataclasses.field(default_factory=dict)


def _split_member_name(name: str) -> tuple[str, str]:
  """'dir/000123.jpg' -> ('dir/000123', 'jpg'), as webdataset groups files."""
  base = posixpath.basename(name)
  stem, dot, ext = base.partition(".")
  prefix = posixpath.dirname(name)
  return (posixpath.join(prefix, stem) if prefix else stem), (ext if dot else "")


def _to_example(key: str, source: str, files: dict[str, bytes]) -> RawExample:
  image = next((files[e] for e in IMAGE_EXTENSIONS if e in files), None)
  caption = next((files[e] for e in CAPTION_EXTENSIONS if e in files), None)
  metadata = {}
  if "json" in files:
    try:
      metadata = json.loads(files["json"])
    except (ValueError, UnicodeDecodeError):
      metadata = {}
  return RawExample(key=posixpath.basename(key), source=source, image=image,
                    caption=caption, metadata=metadata)


def read_webdataset_tar(
    fileobj: BinaryIO,
    source: str,
    on_error: Callable[[str, Exception], None] | None = None,
) -> Iterator[RawExample]:
  """Yields the examples of one webdataset tar shard, in file order.

  Files are grouped by their name up to the first dot (`KEY.jpg`, `KEY.txt`,
  `KEY.json`), as img2dataset writes them; consecutive files with the same key
  form one example.

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
    if on_error is None:
      raise
    on_error(source, e)
    return
  if current_key is not None:
    yield _to_example(current_key, source, files)
