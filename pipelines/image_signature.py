"""Perceptual image signatures: what survives resizing, re-encoding and crops.

A signature is a 64-bit DCT hash of the luminance (the signs of 64 low
frequencies of a 32x32 thumbnail against their median) and the image's mean
chroma on a 3x3 grid. Two images are near-duplicates when their hashes differ
in at most `radius` bits and, where both have colour, their chroma grids
agree: the hash sees layout and tone, the chroma sees which colours sit where.
A greyscale copy of a colour image matches on its hash alone.

A training image gets one signature. An eval image gets several
(`eval_signatures`): its whole picture and crops of it, each also mirrored, so
that a copy cropped by a web page, or flipped, meets a signature made from
nearly the same part of the picture.
"""

from collections.abc import Sequence
import dataclasses
import functools
import itertools

import numpy as np
from PIL import Image

SIGNATURE_NAME = "dct64-chroma3x3"
# Bumped whenever signatures of the same pixels change.
SIGNATURE_VERSION = 1

_THUMBNAIL = 32
_FREQUENCIES = 64
CHROMA_GRID = 3
CHROMA_VALUES = 2 * CHROMA_GRID * CHROMA_GRID

DEFAULT_RADIUS = 10
# Mean absolute chroma difference over the grid (in 8-bit YCbCr units) up to
# which two colour images may still be copies.
DEFAULT_MAX_CHROMA_DISTANCE = 12.0
# Below this mean chroma magnitude an image counts as greyscale: its chroma
# says nothing, so only the hash decides.
GREY_CHROMA = 4.0

# Fractions cut from each side for the eval-side crops: every combination of
# these per side, so a copy cropped by up to 10% per side is at most 5% from
# one of them.
_CROP_STEPS = (0.0, 0.05, 0.1)
# Eval images are first box-reduced to about this shorter side: a crop's
# thumbnail needs no more, and it makes 162 thumbnails cheap.
_EVAL_WORKING_SIDE = 256


@dataclasses.dataclass(frozen=True)
class MatchConfig:
  """When two signatures are near-duplicates.

  Attributes:
    radius: the most hash bits that may differ.
    max_chroma_distance: the largest mean absolute chroma difference between
      two colour images.
  """

  radius: int = DEFAULT_RADIUS
  max_chroma_distance: float = DEFAULT_MAX_CHROMA_DISTANCE

  def __post_init__(self):
    if not 0 <= self.radius < 32:
      raise ValueError(f"the near-duplicate radius must be in [0, 31] (or "
                       f"-1 for none), got {self.radius}")
    if not self.max_chroma_distance >= 0:
      raise ValueError(f"the near-duplicate chroma distance must be >= 0, "
                       f"got {self.max_chroma_distance}")

  def to_json(self) -> dict:
    """The settings as JSON-ready values, with the signature's name."""
    return {"signature": SIGNATURE_NAME,
            "signature_version": SIGNATURE_VERSION,
            **dataclasses.asdict(self)}


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
  """The orthonormal DCT-II matrix: `m @ x` transforms a column x."""
  k = np.arange(n)[:, None]
  m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n))
  m[0] /= np.sqrt(2.0)
  return m * np.sqrt(2.0 / n)


@functools.cache
def _frequencies() -> tuple[np.ndarray, np.ndarray]:
  """The 64 lowest (row, column) frequencies, DC excluded, by u + v then u."""
  pairs = sorted(((u, v) for u in range(12) for v in range(12)
                  if (u, v) != (0, 0)), key=lambda p: (p[0] + p[1], p[0]))
  rows, cols = zip(*pairs[:_FREQUENCIES])
  return np.array(rows), np.array(cols)


def _thumbnail(pixels: np.ndarray) -> np.ndarray:
  """(32, 32, 3) float32 YCbCr, each cell the mean of its pixels."""
  image = Image.fromarray(pixels)
  # Halving first with `reduce` is exact box averaging and much faster than
  # one large box resize.
  factor = min(image.size) // (2 * _THUMBNAIL)
  if factor > 1:
    image = image.reduce(factor)
  small = np.asarray(image.resize((_THUMBNAIL, _THUMBNAIL),
                                  Image.Resampling.BOX), np.float32)
  r, g, b = small[..., 0], small[..., 1], small[..., 2]
  y = 0.299 * r + 0.587 * g + 0.114 * b
  return np.stack([y, 0.564 * (b - y), 0.713 * (r - y)], axis=-1)


def _hash(luma: np.ndarray) -> np.uint64:
  m = _dct_matrix(_THUMBNAIL)
  coefficients = (m @ luma @ m.T)[_frequencies()]
  bits = coefficients > np.median(coefficients)
  return np.uint64(int(np.packbits(bits).view(">u8")[0]))


def _chroma(ycc: np.ndarray) -> np.ndarray:
  """Mean (Cb, Cr) per grid cell, rounded to int8."""
  cells = np.array_split(np.arange(_THUMBNAIL), CHROMA_GRID)
  means = [ycc[rows][:, cols, 1:].mean(axis=(0, 1))
           for rows, cols in itertools.product(cells, cells)]
  return np.clip(np.round(np.concatenate(means)), -128, 127).astype(np.int8)


@dataclasses.dataclass(frozen=True)
class Signatures:
  """Signatures of one or more images (or crops), row-aligned.

  Attributes:
    hashes: (n,) uint64 DCT hashes.
    chroma: (n, CHROMA_VALUES) int8 mean (Cb, Cr) per grid cell.
  """

  hashes: np.ndarray
  chroma: np.ndarray

  def __len__(self) -> int:
    return len(self.hashes)

  @classmethod
  def concatenate(cls, parts: Sequence["Signatures"]) -> "Signatures":
    if not parts:
      return cls(np.zeros(0, np.uint64),
                 np.zeros((0, CHROMA_VALUES), np.int8))
    return cls(np.concatenate([p.hashes for p in parts]),
               np.concatenate([p.chroma for p in parts]))


def _of_ycc(thumbnails: Sequence[np.ndarray]) -> Signatures:
  return Signatures(np.array([_hash(t[..., 0]) for t in thumbnails],
                             np.uint64),
                    np.stack([_chroma(t) for t in thumbnails]))


def _check_rgb(pixels: np.ndarray) -> None:
  if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
    raise ValueError(f"expected (height, width, 3) uint8 RGB pixels, got "
                     f"{pixels.dtype} {pixels.shape}")


def image_signature(pixels: np.ndarray) -> Signatures:
  """The one signature of a (training) image's RGB pixels."""
  _check_rgb(pixels)
  return _of_ycc([_thumbnail(pixels)])


def _crops(height: int, width: int) -> list[tuple[int, int, int, int]]:
  """(top, bottom, left, right) pixel bounds of the eval-side crops."""
  boxes = set()
  for left, top, right, bottom in itertools.product(_CROP_STEPS, repeat=4):
    box = (round(top * height), height - round(bottom * height),
           round(left * width), width - round(right * width))
    if box[1] - box[0] >= 8 and box[3] - box[2] >= 8:
      boxes.add(box)
  return sorted(boxes)


def eval_signatures(pixels: np.ndarray) -> Signatures:
  """Signatures of an eval image: crops of it, each as is and mirrored."""
  _check_rgb(pixels)
  factor = min(pixels.shape[:2]) // _EVAL_WORKING_SIDE
  if factor > 1:
    pixels = np.asarray(Image.fromarray(pixels).reduce(factor))
  thumbnails = []
  for top, bottom, left, right in _crops(*pixels.shape[:2]):
    thumbnail = _thumbnail(np.ascontiguousarray(
        pixels[top:bottom, left:right]))
    thumbnails += [thumbnail, thumbnail[:, ::-1]]
  return _of_ycc(thumbnails)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Bitwise Hamming distances between uint64 arrays (broadcast)."""
  return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def chroma_agrees(query: np.ndarray, candidates: np.ndarray,
                  max_distance: float) -> np.ndarray:
  """Whether each candidate's chroma grid may belong to a copy of `query`.

  Args:
    query: (CHROMA_VALUES,) int8.
    candidates: (n, CHROMA_VALUES) int8.
    max_distance: the largest mean absolute difference of two colour grids.

  Returns:
    (n,) bool: True where either side is greyscale or the grids are close.
  """
  q = query.astype(np.float32)
  c = candidates.astype(np.float32)
  grey = (np.abs(q).mean() < GREY_CHROMA) | (np.abs(c).mean(axis=1)
                                             < GREY_CHROMA)
  return grey | (np.abs(c - q).mean(axis=1) <= max_distance)
