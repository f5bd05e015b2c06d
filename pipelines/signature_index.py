"""Finding the eval images near a training image's signature, without a scan.

Multi-index hashing (Norouzi et al., 2012): the 64 hash bits are cut into m
contiguous blocks. Two hashes within `radius` bits of each other differ in at
most floor(radius / m) bits of at least one block (were every block further
apart, the total would exceed the radius). So the candidates of a query are
the signatures whose value in some block lies within that many bits of the
query's: binary searches of the block's neighbouring values in that block's
sorted values. Only the candidates' full distances and colours are then
checked, so the answers are exactly a linear scan's. With m = radius + 1
blocks the lookups are exact; fewer, longer blocks keep the candidate lists
short when there are millions of signatures (`default_num_blocks` balances the
probes against the candidates).
"""

from collections.abc import Sequence
import dataclasses
import functools
import itertools
import math

import numpy as np

from pipelines import image_signature
from pipelines.image_signature import Signatures

_BITS = 64


@dataclasses.dataclass(frozen=True, order=True)
class Match:
  """An eval image near a query: its hash distance and key."""

  distance: int
  key: str


def _blocks(num_blocks: int) -> list[tuple[int, int]]:
  """(shift, width) of contiguous blocks covering the 64 bits."""
  edges = np.linspace(0, _BITS, num_blocks + 1).round().astype(int)
  return [(int(lo), int(hi - lo)) for lo, hi in zip(edges[:-1], edges[1:])]


@functools.cache
def _flips(width: int, bits: int) -> np.ndarray:
  """Every `width`-bit mask with at most `bits` bits set."""
  return np.array([sum(1 << i for i in chosen)
                   for k in range(bits + 1)
                   for chosen in itertools.combinations(range(width), k)],
                  np.uint64)


def default_num_blocks(radius: int, size: int) -> int:
  """The block count with the least expected work for `size` signatures.

  The work of a lookup is, per block, its probes (the block values within
  radius // blocks bits of the query's) times one binary search plus the
  signatures expected to share a probed value, were hashes uniform.
  """
  def work(blocks: int) -> float:
    width = _BITS // blocks
    probes = sum(math.comb(width, k) for k in range(radius // blocks + 1))
    return blocks * probes * (math.log2(size + 2) + size / 2 ** width)
  return min(range(1, radius + 2), key=work)


class SignatureIndex:
  """Eval images' signatures, looked up by multi-index hashing."""

  def __init__(self, keys: Sequence[str], owners: np.ndarray,
               signatures: Signatures, config: image_signature.MatchConfig,
               num_blocks: int | None = None):
    """Indexes signatures; row i belongs to eval image `keys[owners[i]]`.

    Args:
      num_blocks: how many blocks to cut the hashes into, from 1 to
        radius + 1; by default `default_num_blocks`.
    """
    self.keys = list(keys)
    self.config = config
    self._owners = np.asarray(owners, np.int64)
    self._hashes = signatures.hashes
    self._colour = signatures.colour
    if num_blocks is None:
      num_blocks = default_num_blocks(config.radius, len(self._hashes))
    if not 1 <= num_blocks <= config.radius + 1:
      raise ValueError(f"num_blocks must be in [1, radius + 1 = "
                       f"{config.radius + 1}], got {num_blocks}")
    self.num_blocks = num_blocks
    self._block_radius = config.radius // num_blocks
    self._sorted = []
    # 32-bit block values and row numbers halve the index's memory.
    row_type = np.int32 if len(self._hashes) < 2**31 else np.int64
    for shift, width in _blocks(num_blocks):
      values = self._block_values(self._hashes, shift, width)
      value_type = np.uint32 if width <= 32 else np.uint64
      order = np.argsort(values, kind="stable").astype(row_type)
      self._sorted.append((shift, width, values[order].astype(value_type),
                           order))

  @staticmethod
  def _block_values(hashes: np.ndarray, shift: int, width: int) -> np.ndarray:
    return (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)

  @classmethod
  def build(cls, keys: Sequence[str], signatures: Sequence[Signatures],
            config: image_signature.MatchConfig,
            num_blocks: int | None = None) -> "SignatureIndex":
    """Indexes the signatures of each eval image `keys[i]`."""
    if len(keys) != len(signatures):
      raise ValueError(f"{len(keys)} keys for {len(signatures)} signature "
                       f"sets")
    owners = np.repeat(np.arange(len(keys)), [len(s) for s in signatures])
    return cls(keys, owners, Signatures.concatenate(signatures), config,
               num_blocks)

  def __len__(self) -> int:
    return len(self._hashes)

  def candidates(self, hash_value: np.uint64) -> np.ndarray:
    """Rows sharing at least one block with `hash_value`, sorted."""
    rows = []
    query = np.array([hash_value], np.uint64)
    for shift, width, values, order in self._sorted:
      probes = np.sort(self._block_values(query, shift, width)
                       ^ _flips(width, self._block_radius)).astype(values.dtype)
      starts = np.searchsorted(values, probes, side="left")
      lengths = np.searchsorted(values, probes, side="right") - starts
      # Positions starts[i] .. starts[i] + lengths[i] - 1 for every probe.
      firsts = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
      rows.append(order[firsts + np.arange(lengths.sum())])
    rows = np.sort(np.concatenate(rows))
    # np.unique's hash table is far slower here than a sort.
    return rows[np.concatenate([[True], rows[1:] != rows[:-1]])]

  def _matches_among(self, query: Signatures, rows_of) -> list[Match]:
    """Nearest-first matches of any query row among `rows_of(hash)`."""
    best = {}
    for hash_value, colour in zip(query.hashes, query.colour):
      rows = rows_of(hash_value)
      distances = image_signature.hamming(self._hashes[rows], hash_value)
      near = distances <= self.config.radius
      rows, distances = rows[near], distances[near]
      agree = (image_signature.colour_distances(colour, self._colour[rows])
               <= self.config.max_colour_distance)
      for owner, distance in zip(self._owners[rows[agree]].tolist(),
                                 distances[agree].tolist()):
        best[owner] = min(best.get(owner, distance), distance)
    return sorted(Match(d, self.keys[o]) for o, d in best.items())

  def matches(self, query: Signatures) -> list[Match]:
    """The eval images near any of the query's signatures, nearest first."""
    return self._matches_among(query, self.candidates)

  def scan(self, query: Signatures) -> list[Match]:
    """`matches` by a linear scan of every signature: the reference."""
    every = np.arange(len(self._hashes))
    return self._matches_among(query, lambda unused_hash: every)

  def distances(self, query: Signatures) -> np.ndarray:
    """Each eval image's smallest hash distance to a query row (a scan)."""
    distances = image_signature.hamming(self._hashes[:, None],
                                        query.hashes[None]).min(axis=1)
    smallest = np.full(len(self.keys), _BITS + 1, np.int64)
    np.minimum.at(smallest, self._owners, distances)
    return smallest
