"""Webdataset tar shards (`.tar`, `.tgz`, `.tar.gz`), as img2dataset writes."""

from collections.abc import Iterator
import json
import posixpath
import tarfile
from typing import Any, BinaryIO

from pipelines.readers.common import OnError
from pipelines.readers.common import RawExample
from pipelines.readers.common import report

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
CAPTION_EXTENSIONS = ("txt",)


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
    report(on_error, source, e)
    return
  if current_key is not None:
    yield _to_example(current_key, source, files)
