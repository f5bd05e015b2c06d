"""Tests for pipelines.langid."""

import pickle

import pytest

from pipelines import langid
from pipelines import records

UND = records.UNDETERMINED_LANG


@pytest.fixture(scope="module", params=langid.BACKENDS)
def identifier(request):
  return langid.LanguageIdentifier(backend=request.param)


def test_xm3600_languages_are_the_36_codes_of_the_design():
  assert langid.XM3600_LANGUAGES == tuple(
      "ar bn cs da de el en es fa fi fil fr he hi hr hu id it ja ko mi nl no "
      "pl pt quz ro ru sv sw te th tr uk vi zh".split())


def test_code_mapping():
  assert langid.to_xm3600_code("zh-cn") == "zh"
  assert langid.to_xm3600_code("zh-tw") == "zh"
  assert langid.to_xm3600_code("tl") == "fil"
  assert langid.to_xm3600_code("he") == "he"
  assert langid.to_xm3600_code("af") == "af"


def test_languages_are_langdetects_55_mapped_to_54_codes():
  languages = langid.LanguageIdentifier().languages
  assert len(languages) == 54
  assert {"zh", "fil", "he", "id", "no", "af", "bg"} <= set(languages)
  assert not {"zh-cn", "zh-tw", "tl", UND} & set(languages)
  assert set(langid.XM3600_LANGUAGES) - set(languages) == {"mi", "quz"}


@pytest.mark.parametrize("text, expected", [
    ("这是一只在公园里散步的小狗，阳光很好", "zh"),
    ("這是一隻在公園裡散步的小狗，陽光很好", "zh"),
    ("Isang batang babae na naglalaro sa tabing-dagat kasama ang kanyang aso",
     "fil"),
])
def test_mapped_codes_are_output(identifier, text, expected):
  assert identifier.identify(text).lang == expected


@pytest.mark.parametrize("text", ["", "   ", "2024 12 31", "!!! ... ???",
                                  "http://example.com/a.jpg",
                                  "someone@example.com"])
def test_no_usable_characters_is_und_with_zero_score(identifier, text):
  assert identifier.identify(text) == langid.LanguagePrediction(UND, 0.0)


def test_below_threshold_is_und_with_the_best_score():
  ambiguous = "Internet"
  lenient = langid.LanguageIdentifier(min_score=0.0).identify(ambiguous)
  assert lenient.lang != UND and 0.0 < lenient.score < 0.9
  strict = langid.LanguageIdentifier(min_score=0.9).identify(ambiguous)
  assert strict == langid.LanguagePrediction(UND, lenient.score)


def test_invalid_settings_are_rejected():
  with pytest.raises(ValueError, match="backend must be one of"):
    langid.LanguageIdentifier(backend="cld3")
  with pytest.raises(ValueError, match=r"min_score must be in \[0, 1\]"):
    langid.LanguageIdentifier(min_score=1.5)


def test_pickle_round_trip_is_small_and_equivalent(identifier):
  text = "Deux enfants jouent au ballon dans un parc en automne"
  before = identifier.identify(text)
  payload = pickle.dumps(identifier)
  assert len(payload) < 300
  restored = pickle.loads(payload)
  assert (restored.backend, restored.min_score, restored.seed) == (
      identifier.backend, identifier.min_score, identifier.seed)
  assert restored.identify(text) == before == ("fr", before.score)
