"""Rejecting training images that are near-copies of block-listed eval images.

Beam-free, so that the demo corpus can predict the build's decisions too.
"""

from collections.abc import Hashable, Sequence
import dataclasses
import threading
from typing import Protocol

import numpy as np

from pipelines import filters
from pipelines import image_signature
from pipelines import signature_index
from pipelines.image_signature import Signatures
from pipelines.reasons import Reason


@dataclasses.dataclass(frozen=True, eq=False)
class EvalImage:
  """One block-listed image: its key, pixel SHA-256 and signatures."""

  key: str
  sha256: str
  signatures: Signatures


class EntrySource(Hashable, Protocol):
  """Where the eval images can be loaded again (`blocklist.BlocklistFile`)."""

  def entries(self) -> list[EvalImage]:
    ...


@dataclasses.dataclass(frozen=True, eq=False)
class _Index:
  """The eval images and what a filter looks them up in."""

  entries: list[EvalImage]
  exact: frozenset[str]
  signatures: signature_index.SignatureIndex


def _build_index(entries: Sequence[EvalImage],
                 config: image_signature.MatchConfig) -> _Index:
  entries = list(entries)
  return _Index(entries, frozenset(e.sha256 for e in entries),
                signature_index.SignatureIndex.build(
                    [e.key for e in entries], [e.signatures for e in entries],
                    config))


_shared_lock = threading.Lock()
_shared: dict[tuple[EntrySource, image_signature.MatchConfig], _Index] = {}


def _shared_index(source: EntrySource,
                  config: image_signature.MatchConfig) -> _Index:
  """The index of `source`'s entries, loaded once per process."""
  # Beam unpickles a DoFn for each thread of a worker: they share one index,
  # loaded by the first of them while the others wait.
  with _shared_lock:
    key = (source, config)
    if key not in _shared:
      _shared.clear()  # A worker runs one build: keep only its index.
      _shared[key] = _build_index(source.entries(), config)
    return _shared[key]


class EvalImageFilter:
  """Rejects training images that are near, not exact, copies of eval images.

  Exact copies (same pixel SHA-256) pass here: the build's set-level check
  rejects them as BLOCKLISTED_IMAGE, as without signatures.

  A filter with a `source` pickles as that source and its match settings, a
  few hundred bytes whatever the number of signatures (which for XM3600 take
  tens of MB, more than a Dataflow job graph may hold); an unpickled copy
  loads the entries from the source when first used, once per process.
  """

  def __init__(self, entries: Sequence[EvalImage] | None,
               config: image_signature.MatchConfig,
               source: EntrySource | None = None):
    """Indexes `entries`, or with None, those of `source` when first used.

    Raises:
      ValueError: with neither entries nor a source.
    """
    if entries is None and source is None:
      raise ValueError("an EvalImageFilter needs entries or a source")
    self.config = config
    self.source = source
    self._loaded = (None if entries is None
                    else _build_index(entries, config))

  def __reduce__(self):
    if self.source is not None:
      return (EvalImageFilter, (None, self.config, self.source))
    # The index is rebuilt where the filter is unpickled (a Beam worker):
    # its sorted copies need not travel.
    return (EvalImageFilter, (self._index().entries, self.config))

  def _index(self) -> _Index:
    """The index, loaded from the source on first use."""
    if self._loaded is None:
      self._loaded = _shared_index(self.source, self.config)
    return self._loaded

  @property
  def num_signatures(self) -> int:
    return len(self._index().signatures)

  def reject_reason(self, pixels: np.ndarray, sha256: str) -> filters.Verdict:
    """NEAR_DUPLICATE_OF_EVAL with the nearest eval image's key, or None.

    Raises:
      ValueError, OSError: on first use, if the source's entries cannot be
        loaded.
    """
    index = self._index()
    if sha256 in index.exact:
      return None
    found = index.signatures.matches(image_signature.image_signature(pixels))
    if not found:
      return None
    return (Reason.NEAR_DUPLICATE_OF_EVAL,
            f"near {found[0].key} (distance {found[0].distance} <= radius "
            f"{self.config.radius})")
