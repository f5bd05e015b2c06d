"""The dataset build's image path before libjpeg-turbo and OpenCV: a baseline.

For benchmarks only: `installed()` swaps the old kernel into
`pipelines.process` in this process while it lasts: Pillow decodes every
image, Pillow's bicubic filter resizes, Pillow encodes, and the duplicate key
hashes the full-size pixels.
The checks (headers, bombs, PNG checksums, orientation) are the package's own
Pillow path, unchanged. Run as a module, it is `pipelines.build_dataset` with
the old kernel (one worker: the in-process runner executes it here):

  python -m benchmarks.baseline_image_path --input 'corpus/*.tar' --output DIR
"""

import contextlib
import io
import sys
from unittest import mock

import numpy as np
from PIL import Image

from dataformat.records import Record
from pipelines import build_dataset
from pipelines import filters
from pipelines import images
from pipelines import process
from pipelines.readers import common
from pipelines.reasons import Reason
from pipelines.reasons import Rejection


def resize_shorter_side(pixels: np.ndarray, size: int) -> np.ndarray:
  """The old resize: Pillow's antialiased bicubic filter."""
  height, width = pixels.shape[:2]
  new_height, new_width = images.shorter_side_size(height, width, size)
  if (new_height, new_width) == (height, width):
    return pixels
  resized = Image.fromarray(pixels).resize(
      (new_width, new_height), Image.Resampling.BICUBIC)
  return np.asarray(resized, dtype=np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
  """The old encoder: Pillow, baseline 4:2:0."""
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(
      buffer, format="JPEG", quality=quality, subsampling="4:2:0",
      optimize=False, progressive=False)
  return buffer.getvalue()


def _untokenized_record(raw, text, language, config, eval_filter) -> Record:
  """process._untokenized_record with the old image functions.

  The benchmark builds without a block-list, so there is no eval filter.
  """
  if eval_filter is not None:
    raise ValueError("the baseline kernel takes no block-list")
  failure = common.download_failure(raw.metadata)
  if failure is not None:
    raise Rejection(Reason.DOWNLOAD_FAILED, failure)
  decoded = images.decode_image(raw.image, config.max_image_pixels)
  if isinstance(text, Exception):
    raise text
  height, width = decoded.original_height, decoded.original_width
  for verdict in (
      filters.image_reject_reason(height, width, config.thresholds),
      filters.caption_reject_reason(text, config.thresholds),
      filters.language_reject_reason(language.lang, language.score,
                                     config.thresholds)):
    process._raise_if(verdict)  # pylint: disable=protected-access
  pixels = resize_shorter_side(decoded.pixels, config.image_size)
  return Record(
      key=raw.key, text=text, lang=language.lang, lang_score=language.score,
      source=raw.source,
      image_encoded=encode_jpeg(pixels, config.jpeg_quality),
      image_height=pixels.shape[0], image_width=pixels.shape[1],
      image_original_height=height, image_original_width=width,
      image_sha256=images.pixel_sha256(decoded.pixels),
      **process.source_fields(raw))


def _pillow_decodes(unused_data: bytes, unused_image: Image.Image) -> None:
  """In place of the fast decoders: every image goes to Pillow."""


@contextlib.contextmanager
def installed():
  """The old kernel in place in this process while the context lasts."""
  with mock.patch.object(images, "_fast_jpeg_pixels", _pillow_decodes), \
      mock.patch.object(images, "_fast_png_pixels", _pillow_decodes), \
      mock.patch.object(images, "_fast_webp_pixels", _pillow_decodes), \
      mock.patch.object(process, "_untokenized_record", _untokenized_record):
    yield


if __name__ == "__main__":
  with installed():
    sys.exit(build_dataset.main(sys.argv[1:]))
