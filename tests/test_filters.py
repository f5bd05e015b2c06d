"""Tests for pipelines.filters."""

import pytest

from pipelines import filters
from pipelines.reasons import Reason

DEFAULT = filters.FilterConfig()


@pytest.mark.parametrize("text, words", [
    ("a", 1),
    ("a cat", 2),
    ("  a   cat\tsits ", 3),
    ("東京タワーの夜景", 4),  # 8 Han/kana characters, 2 per word.
    ("猫", 1),
    ("iPhone手机", 2),
    ("東京 tower", 2),
    ("แมวนอนบนโซฟา", 3),  # 12 Thai code points, 4 per word.
    ("東京。", 2),  # CJK punctuation counts like the characters it follows.
    ("", 0),
])
def test_count_words(text, words):
  assert filters.count_words(text) == words


def test_defaults_are_the_documented_thresholds():
  assert (DEFAULT.min_image_side, DEFAULT.max_aspect_ratio) == (32, 3.0)
  assert (DEFAULT.min_caption_chars, DEFAULT.max_caption_chars) == (2, 512)
  assert (DEFAULT.min_caption_words, DEFAULT.max_caption_words) == (1, 128)
  assert DEFAULT.languages is None


@pytest.mark.parametrize("kwargs, message", [
    ({"min_image_side": 0}, "min_image_side must be at least 1, got 0"),
    ({"max_aspect_ratio": 0.5}, "max_aspect_ratio must be at least 1, got 0.5"),
    ({"min_caption_chars": 10, "max_caption_chars": 5},
     "min_caption_chars <= max_caption_chars, got 10 and 5"),
    ({"min_caption_words": -1}, "0 <= min_caption_words"),
    ({"languages": frozenset()}, "languages must not be empty"),
])
def test_config_rejects_bad_thresholds(kwargs, message):
  with pytest.raises(ValueError, match=message):
    filters.FilterConfig(**kwargs)


def test_config_to_json_sorts_languages():
  config = filters.FilterConfig(languages={"en", "de"})
  assert config.languages == frozenset({"en", "de"})
  assert config.to_json() == {
      "min_image_side": 32, "max_aspect_ratio": 3.0, "min_caption_chars": 2,
      "max_caption_chars": 512, "min_caption_words": 1,
      "max_caption_words": 128, "languages": ["de", "en"]}
  assert DEFAULT.to_json()["languages"] is None


@pytest.mark.parametrize("spec, languages", [
    ("all", None),
    ("", None),
    ("en", frozenset({"en"})),
    (" en, de ,und,", frozenset({"en", "de", "und"})),
    ("mi,NB,nn,tl,iw", frozenset({"mi", "no", "fil", "he"})),
])
def test_parse_languages(spec, languages):
  assert filters.parse_languages(spec) == languages


@pytest.mark.parametrize("height, width, verdict", [
    (32, 32, None),
    (32, 96, None),  # Exactly the maximum aspect ratio.
    (31, 64, (Reason.IMAGE_TOO_SMALL, "64x31 px, shorter side 31 < 32")),
    (500, 20, (Reason.IMAGE_TOO_SMALL, "20x500 px, shorter side 20 < 32")),
    (32, 97, (Reason.EXTREME_ASPECT_RATIO,
              "97x32 px, aspect ratio 3.03 > 3")),
    (400, 100, (Reason.EXTREME_ASPECT_RATIO,
                "100x400 px, aspect ratio 4.00 > 3")),
])
def test_image_reject_reason(height, width, verdict):
  assert filters.image_reject_reason(height, width, DEFAULT) == verdict


def test_image_thresholds_are_configurable():
  config = filters.FilterConfig(min_image_side=10, max_aspect_ratio=5.0)
  assert filters.image_reject_reason(10, 50, config) is None
  assert filters.image_reject_reason(9, 9, config)[0] == Reason.IMAGE_TOO_SMALL
  assert (filters.image_reject_reason(10, 51, config)[0]
          == Reason.EXTREME_ASPECT_RATIO)


@pytest.mark.parametrize("text, verdict", [
    ("ok", None),
    ("x", (Reason.CAPTION_TOO_SHORT, "1 characters < 2")),
    ("y" * 512, None),
    ("y" * 513, (Reason.CAPTION_TOO_LONG, "513 characters > 512")),
    ("a " * 128 + "b", (Reason.CAPTION_TOO_LONG, "129 words > 128")),
    ("a " * 127 + "b", None),
])
def test_caption_reject_reason(text, verdict):
  assert filters.caption_reject_reason(text, DEFAULT) == verdict


def test_caption_word_minimum():
  config = filters.FilterConfig(min_caption_words=3)
  assert filters.caption_reject_reason("two words", config) == (
      Reason.CAPTION_TOO_SHORT, "2 words < 3")
  assert filters.caption_reject_reason("three short words", config) is None
  # 6 Han characters are 3 words.
  assert filters.caption_reject_reason("一二三四五六", config) is None


def test_language_reject_reason():
  assert filters.language_reject_reason("fr", 0.9, DEFAULT) is None
  config = filters.FilterConfig(languages={"en", "und"})
  assert filters.language_reject_reason("en", 0.99, config) is None
  assert filters.language_reject_reason("und", 0.0, config) is None
  assert filters.language_reject_reason("fr", 0.93, config) == (
      Reason.LANGUAGE_NOT_ALLOWED, "fr (score 0.93) not in en,und")
