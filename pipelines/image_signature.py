"""Perceptual image signatures: what survives resizing, re-encoding and crops.

A signature is a 64-bit DCT hash of the luminance (the signs of 64 low
frequencies of a 32x32 thumbnail against their median) and the image's mean
colour (Y, Cb, Cr) on a 6x6 grid. Two images are near-duplicates when their
hashes differ in at most `radius` bits and no grid cell differs by more than
`max_colour_distance` (|dY| + |dCb| + |dCr|, 8-bit units). The hash sees the
layout whatever the contrast; the grid sees which colours and tones sit
where, so that two pictures of the same layout in other colours stay apart.
A greyscale query is compared on luminance only, so that a greyscale copy of
a colour image still matches.

An eval image gets one signature per crop (`eval_signatures`): its whole
picture and 80 crops of up to 10% per side, so that a copy cropped by a web
page meets a signature made from nearly the same part of the picture. A
training image gets two (`image_signature`): as it is and mirrored.
"""

from collections.abc import Sequence
import dataclasses
import functools
import itertools

import numpy as np
from PIL import Image

SIGNATURE_NAME = "dct64-ycc6x6"
# Bumped whenever signatures of the same pixels change.
SIGNATURE_VERSION = 1

_THUMBNAIL = 32
_FREQUENCIES = 64
COLOUR_GRID = 6
COLOUR_VALUES = 3 * COLOUR_GRID * COLOUR_GRID

# Chosen on benchmarks/neardup_bench.py (see BENCHMARKS.md).
DEFAULT_RADIUS = 10
DEFAULT_MAX_COLOUR_DISTANCE = 35
# A query whose every cell has |Cb| + |Cr| below this is greyscale: its
# chroma says nothing, so only luminance is compared.
GREY_CHROMA = 6

# Fractions cut from each side for the eval-side crops: every combination of
# these per side, so a copy cropped by up to 10% per side is at most 5% from
# one of them.
_CROP_STEPS = (0.0, 0.05, 0.1)
# Eval images are first box-reduced to about this shorter side: a crop's
# thumbnail needs no more, and it makes 81 thumbnails cheap.
_EVAL_WORKING_SIDE = 256


@dataclasses.dataclass(frozen=True)
class MatchConfig:
  """When two signatures are near-duplicates.

  Attributes:
    radius: the most hash bits that may differ.
    max_colour_distance: the largest difference |dY| + |dCb| + |dCr| of a
      colour grid cell (|dY| alone for a greyscale query).
  """

  radius: int = DEFAULT_RADIUS
  max_colour_distance: int = DEFAULT_MAX_COLOUR_DISTANCE

  def __post_init__(self):
    if not 0 <= self.radius < 32:
      raise ValueError(f"the near-duplicate radius must be in [0, 31] (or "
                       f"-1 for none), got {self.radius}")
    if self.max_colour_distance < 0:
      raise ValueError(f"the near-duplicate colour distance must be >= 0, "
                       f"got {self.max_colour_distance}")

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


def _colour(ycc: np.ndarray) -> np.ndarray:
  """Mean (Y - 128, Cb, Cr) per grid cell, row by row, rounded to int8."""
  cells = np.array_split(np.arange(_THUMBNAIL), COLOUR_GRID)
  means = [ycc[rows][:, cols].mean(axis=(0, 1))
           for rows, cols in itertools.product(cells, cells)]
  return np.clip(np.round(np.concatenate(means) - [128, 0, 0] * len(means)),
                 -128, 127).astype(np.int8)


@dataclasses.dataclass(frozen=True)
class Signatures:
  """Signatures of one or more images (or crops), row-aligned.

  Attributes:
    hashes: (n,) uint64 DCT hashes.
    colour: (n, COLOUR_VALUES) int8 mean (Y - 128, Cb, Cr) per grid cell.
  """

  hashes: np.ndarray
  colour: np.ndarray

  def __len__(self) -> int:
    return len(self.hashes)

  @classmethod
  def concatenate(cls, parts: Sequence["Signatures"]) -> "Signatures":
    if not parts:
      return cls(np.zeros(0, np.uint64),
                 np.zeros((0, COLOUR_VALUES), np.int8))
    return cls(np.concatenate([p.hashes for p in parts]),
               np.concatenate([p.colour for p in parts]))


def _of_ycc(thumbnails: Sequence[np.ndarray]) -> Signatures:
  return Signatures(np.array([_hash(t[..., 0]) for t in thumbnails],
                             np.uint64),
                    np.stack([_colour(t) for t in thumbnails]))


def _check_rgb(pixels: np.ndarray) -> None:
  if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
    raise ValueError(f"expected (height, width, 3) uint8 RGB pixels, got "
                     f"{pixels.dtype} {pixels.shape}")


def image_signature(pixels: np.ndarray) -> Signatures:
  """A (training) image's signatures: as it is, and mirrored."""
  _check_rgb(pixels)
  thumbnail = _thumbnail(pixels)
  return _of_ycc([thumbnail, thumbnail[:, ::-1]])


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
  """Signatures of an eval image: the whole and crops of it."""
  _check_rgb(pixels)
  factor = min(pixels.shape[:2]) // _EVAL_WORKING_SIDE
  if factor > 1:
    pixels = np.asarray(Image.fromarray(pixels).reduce(factor))
  thumbnails = []
  for top, bottom, left, right in _crops(*pixels.shape[:2]):
    thumbnails.append(_thumbnail(np.ascontiguousarray(
        pixels[top:bottom, left:right])))
  return _of_ycc(thumbnails)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """Bitwise Hamming distances between uint64 arrays (broadcast)."""
  return np.bitwise_count(np.bitwise_xor(a, b)).astype(np.int64)


def colour_distances(query: np.ndarray,
                     candidates: np.ndarray) -> np.ndarray:
  """The largest cell difference between a query's colour grid and others'.

  Args:
    query: (COLOUR_VALUES,) int8.
    candidates: (n, COLOUR_VALUES) int8.

  Returns:
    (n,) int: max over cells of |dY| + |dCb| + |dCr|, or of |dY| alone when
    the query is greyscale.
  """
  q = query.astype(np.int32).reshape(-1, 3)
  diff = np.abs(candidates.astype(np.int32).reshape(len(candidates), *q.shape)
                - q)
  if (np.abs(q[:, 1]) + np.abs(q[:, 2])).max() < GREY_CHROMA:
    diff = diff[..., :1]
  return diff.sum(axis=2).max(axis=1, initial=0)
