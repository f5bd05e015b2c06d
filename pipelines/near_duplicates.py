"""Rejecting training images that are near-copies of block-listed eval images.

Beam-free, so that the demo corpus can predict the build's decisions too.
"""

from collections.abc import Sequence
import dataclasses

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


class EvalImageFilter:
  """Rejects training images that are near, not exact, copies of eval images.

  Exact copies (same pixel SHA-256) pass here: the build's set-level check
  rejects them as BLOCKLISTED_IMAGE, as without signatures.
  """

  def __init__(self, entries: Sequence[EvalImage],
               config: image_signature.MatchConfig):
    self.entries = list(entries)
    self.config = config
    self._exact = frozenset(e.sha256 for e in self.entries)
    self._index = signature_index.SignatureIndex.build(
        [e.key for e in self.entries],
        [e.signatures for e in self.entries], config)

  def __reduce__(self):
    # The index is rebuilt where the filter is unpickled (a Beam worker):
    # its sorted copies need not travel.
    return (EvalImageFilter, (self.entries, self.config))

  @property
  def num_signatures(self) -> int:
    return len(self._index)

  def reject_reason(self, pixels: np.ndarray, sha256: str) -> filters.Verdict:
    """NEAR_DUPLICATE_OF_EVAL with the nearest eval image's key, or None."""
    if sha256 in self._exact:
      return None
    found = self._index.matches(image_signature.image_signature(pixels))
    if not found:
      return None
    return (Reason.NEAR_DUPLICATE_OF_EVAL,
            f"near {found[0].key} (distance {found[0].distance} <= radius "
            f"{self.config.radius})")
