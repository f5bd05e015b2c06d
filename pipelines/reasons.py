"""Reason codes for rejected examples, defined once.

Every rejected example carries exactly one reason: the first check it fails, in
the order of `REASONS` (the order the pipeline runs its checks). The demo corpus
records the reason it expects for each bad example with these same codes.
"""

import enum


class Reason(enum.StrEnum):
  """Why an example was rejected."""

  # The source says it could not fetch the pair (img2dataset's status).
  DOWNLOAD_FAILED = "download_failed"
  # Image validation and decoding.
  MISSING_IMAGE = "missing_image"
  EMPTY_IMAGE = "empty_image"
  CORRUPT_IMAGE = "corrupt_image"
  DECOMPRESSION_BOMB = "decompression_bomb"
  # Caption decoding.
  MISSING_CAPTION = "missing_caption"
  CAPTION_NOT_UTF8 = "caption_not_utf8"
  EMPTY_CAPTION = "empty_caption"
  # Filters with thresholds.
  IMAGE_TOO_SMALL = "image_too_small"
  EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
  CAPTION_TOO_SHORT = "caption_too_short"
  CAPTION_TOO_LONG = "caption_too_long"
  LANGUAGE_NOT_ALLOWED = "language_not_allowed"
  # Perceptually near a block-listed eval image (exact copies are left to
  # BLOCKLISTED_IMAGE).
  NEAR_DUPLICATE_OF_EVAL = "near_duplicate_of_eval"
  # Image-text agreement below the cut-off (needs every example's score).
  LOW_IMAGE_TEXT_SCORE = "low_image_text_score"
  # Set-level decisions, made after all per-example checks passed.
  BLOCKLISTED_IMAGE = "blocklisted_image"
  DUPLICATE_IMAGE = "duplicate_image"


REASONS: tuple[Reason, ...] = tuple(Reason)
# Reasons that drop a copy of another image (a training or an eval image).
DUPLICATE_REASONS: frozenset[Reason] = frozenset(
    {Reason.NEAR_DUPLICATE_OF_EVAL, Reason.BLOCKLISTED_IMAGE,
     Reason.DUPLICATE_IMAGE})


class Rejection(Exception):
  """Raised by a validation step: the example is rejected for `reason`."""

  def __init__(self, reason: Reason, detail: str = ""):
    super().__init__(f"{reason}: {detail}" if detail else str(reason))
    self.reason = Reason(reason)
    self.detail = detail

  def __reduce__(self):
    return (Rejection, (self.reason, self.detail))
