"""Tests for pipelines.signature_index: multi-index hashing vs a scan."""

import numpy as np
import pytest

from pipelines import image_signature
from pipelines import signature_index
from pipelines.image_signature import Signatures

_SIZE = 100_000
_RADIUS = 10


def _random_signatures(rng: np.random.Generator, n: int) -> Signatures:
  hashes = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
  # Colour grids on a few levels, half of them greyscale, so that the colour
  # check both passes and fails among candidates.
  colour = rng.choice(np.array([-20, 0, 20], np.int8),
                      (n, image_signature.COLOUR_VALUES))
  colour[: n // 2, 1::3] = 0
  colour[: n // 2, 2::3] = 0
  return Signatures(hashes, colour)


def _near(rng: np.random.Generator, hash_value: np.uint64,
          bits: int) -> np.uint64:
  flips = rng.choice(64, bits, replace=False)
  return hash_value ^ np.uint64(sum(1 << int(b) for b in flips))


@pytest.fixture(scope="module")
def stored():
  rng = np.random.default_rng(0)
  signatures = _random_signatures(rng, _SIZE)
  # Signature rows belong to eval images of 1 to 4 rows each.
  owners = np.sort(rng.integers(0, _SIZE // 2, _SIZE))
  return signatures, owners


@pytest.mark.parametrize("num_blocks", [None, _RADIUS + 1, 3])
def test_index_answers_exactly_as_a_scan(stored, num_blocks):
  signatures, owners = stored
  config = image_signature.MatchConfig(radius=_RADIUS)
  index = signature_index.SignatureIndex(
      [f"eval{i}" for i in range(_SIZE // 2)], owners, signatures, config,
      num_blocks)
  rng = np.random.default_rng(1)
  found = 0
  for bits in list(range(_RADIUS + 3)) * 8:
    row = int(rng.integers(_SIZE))
    # Two rows, like a training image's (as it is and mirrored).
    query = Signatures(
        np.array([_near(rng, signatures.hashes[row], bits),
                  _near(rng, signatures.hashes[row - 1], bits + 1)],
                 np.uint64),
        # Half the queries take the colours of the rows they are near.
        signatures.colour[[row, row - 1] if bits % 2 else
                          rng.integers(_SIZE, size=2)])
    matches = index.matches(query)
    assert matches == index.scan(query)
    found += bool(matches)
  # Both outcomes occur: the comparison is not of empty lists only.
  assert 0 < found < (_RADIUS + 3) * 8


def test_default_blocks_grow_with_the_index():
  assert signature_index.default_num_blocks(_RADIUS, 100) == _RADIUS + 1
  assert (signature_index.default_num_blocks(_RADIUS, 10_000_000)
          < signature_index.default_num_blocks(_RADIUS, 10_000))


def test_matches_report_each_eval_image_once_nearest_first():
  config = image_signature.MatchConfig(radius=4)
  colour = np.zeros((4, image_signature.COLOUR_VALUES), np.int8)
  index = signature_index.SignatureIndex.build(
      ["b", "a"],
      [Signatures(np.array([0b111, 0b1], np.uint64), colour[:2]),
       Signatures(np.array([0b11, 0xFFFF], np.uint64), colour[2:])],
      config)
  query = Signatures(np.array([0], np.uint64), colour[:1])
  assert index.matches(query) == [signature_index.Match(1, "b"),
                                  signature_index.Match(2, "a")]
  assert index.distances(query).tolist() == [1, 2]


def test_colour_distance_decides_among_hash_matches():
  config = image_signature.MatchConfig(radius=4, max_colour_distance=10)
  grey = np.zeros(image_signature.COLOUR_VALUES, np.int8)
  red = grey.copy()
  red[2] = 60  # Cr of the first cell.
  index = signature_index.SignatureIndex.build(
      ["red"], [Signatures(np.array([0], np.uint64), red[None])], config)
  reddish = red.copy()
  reddish[2] = 52
  blue = grey.copy()
  blue[1] = 60
  assert [m.key for m in index.matches(
      Signatures(np.array([1], np.uint64), reddish[None]))] == ["red"]
  assert not index.matches(Signatures(np.array([1], np.uint64), blue[None]))
  # A greyscale query is compared on luminance only.
  assert [m.key for m in index.matches(
      Signatures(np.array([1], np.uint64), grey[None]))] == ["red"]


def test_bad_block_count():
  config = image_signature.MatchConfig(radius=2)
  with pytest.raises(ValueError, match=r"num_blocks must be in \[1, radius"):
    signature_index.SignatureIndex.build([], [], config, num_blocks=4)
