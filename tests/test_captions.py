"""Caption cleaning: the one definition of a clean caption."""

import unicodedata

import pytest

from pipelines.captions import decode_caption
from pipelines.reasons import Reason
from pipelines.reasons import Rejection


def _rejection_reason(raw: bytes | None) -> Reason:
  with pytest.raises(Rejection) as info:
    decode_caption(raw)
  return info.value.reason


def test_plain_caption_unchanged():
  assert decode_caption("A red circle.".encode()) == "A red circle."


def test_missing_caption_rejected():
  assert _rejection_reason(None) == Reason.MISSING_CAPTION


@pytest.mark.parametrize("raw", [b"caf\xe9", b"\xff\xfe", b"ok \xed\xa0\x80"])
def test_invalid_utf8_rejected_with_position(raw):
  with pytest.raises(Rejection) as info:
    decode_caption(raw)
  assert info.value.reason == Reason.CAPTION_NOT_UTF8
  assert "at byte" in info.value.detail


@pytest.mark.parametrize("raw", [b"", b"   ", b"\n\t\r\n", b"\x00\x07",
                                 "\u00a0\u3000".encode()])
def test_nothing_left_is_empty_caption(raw):
  assert _rejection_reason(raw) == Reason.EMPTY_CAPTION


def test_whitespace_runs_collapse_to_one_space():
  raw = "  two\t\twords \n and\r\na\u00a0line\u2028break  ".encode()
  assert decode_caption(raw) == "two words and a line break"


def test_control_characters_removed():
  raw = b"bell\x07ed \x1b[0mtext\x7f\xc2\x85"
  assert decode_caption(raw) == "belled [0mtext"


def test_zero_width_non_joiner_kept():
  persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
  assert decode_caption(persian.encode()) == persian


def test_nfc_normalised():
  decomposed = "Cafe\u0301 cre\u0300me"
  assert decode_caption(decomposed.encode()) == "Caf\u00e9 cr\u00e8me"
  hangul = unicodedata.normalize("NFD", "한국어")
  assert decode_caption(hangul.encode()) == "한국어"


def test_byte_order_mark_removed():
  assert decode_caption("\ufeffhi there".encode("utf-8")) == "hi there"


def test_idempotent():
  once = decode_caption("  Ünïcödé \t text \x00 ".encode())
  assert decode_caption(once.encode()) == once
