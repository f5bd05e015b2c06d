"""TFRecord files (`.tfrecord(s)`, gzipped too) of `tf.train.Example`s.

The record framing (length, payload, masked CRC-32C of each) is read here
rather than with Beam's `tfrecordio`, whose reader is private API and reports
damage with a hex dump of the record and no position; the checksum itself is
`google-crc32c`'s, the implementation Beam's `tfrecordio` prefers.
"""

from collections.abc import Iterator
import struct
from typing import Any, BinaryIO
import zlib

import google_crc32c

from dataformat import example_proto
from pipelines.readers.common import CAPTION_FIELDS
from pipelines.readers.common import CorruptInputError
from pipelines.readers.common import first_present
from pipelines.readers.common import KEY_FIELDS
from pipelines.readers.common import OnError
from pipelines.readers.common import RawExample
from pipelines.readers.common import report
from pipelines.readers.common import unreadable_example

# Feature names of the image, first present wins.
IMAGE_FEATURES = ("image/encoded", "image", "jpg")

_CRC_MASK_DELTA = 0xA282EAD8
_TFRECORD_HEADER = struct.Struct("<QI")
_TFRECORD_FOOTER = struct.Struct("<I")


def masked_crc32c(data: bytes) -> int:
  """TFRecord's masked CRC-32C (Castagnoli) of `data`."""
  crc = google_crc32c.value(data)
  return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


def _read_exactly(fileobj: BinaryIO, size: int) -> bytes:
  chunks, remaining = [], size
  while remaining:
    chunk = fileobj.read(remaining)
    if not chunk:
      break
    chunks.append(chunk)
    remaining -= len(chunk)
  return b"".join(chunks)


def tfrecord_payloads(fileobj: BinaryIO) -> Iterator[bytes]:
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
    return unreadable_example(
        fallback_key, source, f"record {index} is not a tf.train.Example: {e}")
  values = {name: _feature_values(feature)
            for name, feature in example.features.feature.items()}
  firsts = {name: v[0] for name, v in values.items() if v}
  key = first_present(firsts, KEY_FIELDS)
  image = first_present(firsts, IMAGE_FEATURES)
  caption = first_present(firsts, CAPTION_FIELDS)
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
    for index, payload in enumerate(tfrecord_payloads(fileobj)):
      yield _example_from_tf_example(payload, source, index)
  except (CorruptInputError, OSError, EOFError, zlib.error) as e:
    report(on_error, source, e)
