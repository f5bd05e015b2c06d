"""The single definition of a clean caption.

The dataset pipeline and vocabulary training both call `decode_caption`, so
the text a vocabulary is trained on is exactly the text it later tokenizes.
"""

import unicodedata

from pipelines.reasons import Reason
from pipelines.reasons import Rejection

# How many bytes around an invalid UTF-8 sequence a rejection detail shows.
_DETAIL_CONTEXT_BYTES = 8

# Characters to delete: control characters (category Cc, all below U+00A0)
# and the byte order mark U+FEFF that text files written on Windows start
# with. Whitespace controls (tab, newline, ...) are not deleted but become word
# separators, so that they never glue words together. Other format characters
# (category Cf, e.g. the zero-width non-joiner) are kept: Persian, Hindi and
# other scripts need them to spell words.
_BYTE_ORDER_MARK = 0xFEFF
_DELETED_CHARACTERS = {
    code: None for code in range(0xA0)
    if unicodedata.category(chr(code)) == "Cc" and not chr(code).isspace()
} | {_BYTE_ORDER_MARK: None}


def decode_caption(raw: bytes | None) -> str:
  """Decodes and cleans a caption's raw bytes.

  The caption is decoded as strict UTF-8, NFC-normalised and stripped of
  control characters and byte order marks; every run of whitespace (spaces,
  tabs, newlines, Unicode spaces) becomes one space, and leading and trailing
  whitespace is removed.

  Args:
    raw: the caption as read from the input, or None if it had none.

  Returns:
    The clean caption, never empty.

  Raises:
    Rejection: MISSING_CAPTION if `raw` is None, CAPTION_NOT_UTF8 if it is
      not valid UTF-8 (the detail says where), EMPTY_CAPTION if nothing is
      left after cleaning.
  """
  if raw is None:
    raise Rejection(Reason.MISSING_CAPTION)
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    context = raw[max(0, e.start - _DETAIL_CONTEXT_BYTES):
                  e.end + _DETAIL_CONTEXT_BYTES]
    raise Rejection(Reason.CAPTION_NOT_UTF8,
                    f"{e.reason} at byte {e.start}: {context!r}") from None
  text = unicodedata.normalize("NFC", text)
  text = text.translate(_DELETED_CHARACTERS)
  text = " ".join(text.split())
  if not text:
    raise Rejection(Reason.EMPTY_CAPTION)
  return text
