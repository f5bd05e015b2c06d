"""The fast image primitives that the dataset build and the trainer share.

JPEG decoding and encoding run in libjpeg-turbo through `simplejpeg`, area
resizing in OpenCV: together about half the CPU time of the same work in
Pillow (BENCHMARKS.md, "Image path"). Untrusted bytes are not validated here:
`pipelines.images.decode_image` checks them before and around these calls.
"""

import cv2
import numpy as np
import simplejpeg

# Parallelism comes from Beam workers and Grain workers, one image each at a
# time; OpenCV's own thread pool would only compete with them for the cores.
cv2.setNumThreads(1)

JPEG_SIGNATURE = b"\xff\xd8\xff"


def is_jpeg(data: bytes) -> bool:
  """Whether `data` starts like a JPEG file (SOI marker, then a marker)."""
  return data[:3] == JPEG_SIGNATURE


def decode_jpeg(data: bytes, min_height: int = 0,
                min_width: int = 0) -> np.ndarray:
  """(height, width, 3) uint8 RGB pixels of a YCbCr, RGB or greyscale JPEG.

  With `min_height`/`min_width`, libjpeg-turbo decodes at the smallest DCT
  scale M/8 (M = 1..8) that keeps both sides at least that large, which skips
  most of the inverse DCT and colour work; never upsampled.

  Raises:
    ValueError: for anything libjpeg-turbo warns about (truncated or corrupt
      data, an unsupported colour space such as CMYK): strict decoding never
      returns padded or guessed pixels.
  """
  return simplejpeg.decode_jpeg(data, colorspace="RGB", strict=True,
                                min_height=min_height, min_width=min_width)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
  """Baseline JPEG of RGB pixels: 4:2:0, no metadata, deterministic."""
  return simplejpeg.encode_jpeg(np.ascontiguousarray(pixels), quality=quality,
                                colorspace="RGB", colorsubsampling="420")


def resize_area(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
  """Pixels resized to (height, width): each output pixel is the exact mean
  of the input area it covers (bilinear when enlarging)."""
  return cv2.resize(np.ascontiguousarray(pixels), (width, height),
                    interpolation=cv2.INTER_AREA)
