"""JSONL manifests (`.jsonl`, `.jsonl.gz`) of image paths and captions."""

from collections.abc import Iterator
import json
from typing import BinaryIO
import zlib

from pipelines.readers.common import CAPTION_FIELDS
from pipelines.readers.common import first_present
from pipelines.readers.common import KEY_FIELDS
from pipelines.readers.common import OnError
from pipelines.readers.common import RawExample
from pipelines.readers.common import read_referenced_image
from pipelines.readers.common import report
from pipelines.readers.common import unreadable_example

# Fields holding the image's path, first present wins.
IMAGE_PATH_FIELDS = ("image_path", "image")


def _example_from_json_line(
    line: bytes, source: str, line_number: int) -> RawExample:
  fallback_key = f"{source}:{line_number}"
  try:
    entry = json.loads(line)
  except ValueError as e:
    return unreadable_example(
        fallback_key, source, f"line {line_number} is not valid JSON: {e}")
  if not isinstance(entry, dict):
    return unreadable_example(
        fallback_key, source, f"line {line_number} is not a JSON object")
  key = first_present(entry, KEY_FIELDS)
  caption = first_present(entry, CAPTION_FIELDS)
  image_path = first_present(entry, IMAGE_PATH_FIELDS)
  image, read_error = (read_referenced_image(image_path, source)
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
    report(on_error, source, e)
