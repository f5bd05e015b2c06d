"""Captions of demo scenes in the 36 XM3600 languages.

Every language has its own grammar (in `grammar_*`) that writes several
caption variants (templates) for a scene, in its own script and word order,
with the agreement the language needs. `describe` picks one variant with the
caller's generator; `tokenize_caption` gives XM3600's `caption/tokenized`.
"""

import unicodedata

import numpy as np

from demo import grammar_africa_oceania_americas
from demo import grammar_asia
from demo import grammar_europe
from demo.grammar_common import Grammar
from demo.scenes import Background
from demo.scenes import Scene
from demo.scenes import SceneShape

# The XM3600 languages, in the dataset's order.
LANGUAGES: tuple[str, ...] = (
    "ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr",
    "he", "hi", "hr", "hu", "id", "it", "ja", "ko", "mi", "nl", "no", "pl",
    "pt", "quz", "ro", "ru", "sv", "sw", "te", "th", "tr", "uk", "vi", "zh",
)
# Languages written without spaces between words: tokenized by character.
UNSPACED_LANGUAGES: frozenset[str] = frozenset({"ja", "th", "zh"})

_GRAMMARS: dict[str, Grammar] = {
    **grammar_europe.GRAMMARS,
    **grammar_asia.GRAMMARS,
    **grammar_africa_oceania_americas.GRAMMARS,
}
if sorted(_GRAMMARS) != sorted(LANGUAGES):
  raise ImportError("demo caption grammars do not cover exactly the XM3600 "
                    f"languages: {sorted(set(_GRAMMARS) ^ set(LANGUAGES))}")


def _variant_count(lang: str) -> int:
  # Each grammar writes the same number of variants for every scene.
  scene = Scene(shapes=(SceneShape("circle", "red", "small", "left",
                                   (0.25, 0.5), 0.1, 0.0),),
                background=Background("blue", "plain"))
  return len(_GRAMMARS[lang](scene))


# The fewest caption variants (templates) any language has.
MIN_VARIANTS: int = min(_variant_count(lang) for lang in LANGUAGES)


def check_language(lang: str) -> None:
  """Raises ValueError if `lang` is not an XM3600 language code."""
  if lang not in _GRAMMARS:
    raise ValueError(f"unknown language {lang!r}; expected one of "
                     f"{' '.join(LANGUAGES)}")


def caption_variants(scene: Scene, lang: str) -> tuple[str, ...]:
  """Every caption of `scene` in language `lang`, one per template."""
  check_language(lang)
  return _GRAMMARS[lang](scene)


def describe(scene: Scene, lang: str, rng: np.random.Generator) -> str:
  """One caption of `scene` in `lang`, its template drawn from `rng`."""
  variants = caption_variants(scene, lang)
  return variants[rng.integers(len(variants))]


def _is_punctuation(char: str) -> bool:
  return unicodedata.category(char).startswith("P")


def _split_punctuation(word: str) -> list[str]:
  """'circle.' -> ['circle', '.']: punctuation at either end becomes tokens;
  inside a word (q'illu, c'è) it stays."""
  start, end = 0, len(word)
  while start < end and _is_punctuation(word[start]):
    start += 1
  while end > start and _is_punctuation(word[end - 1]):
    end -= 1
  return (list(word[:start]) + ([word[start:end]] if start < end else [])
          + list(word[end:]))


def _characters(text: str) -> list[str]:
  """Characters with their combining marks (Thai vowels, tone marks) kept on."""
  tokens: list[str] = []
  for char in text:
    if char.isspace():
      continue
    if tokens and unicodedata.category(char).startswith("M"):
      tokens[-1] += char
    else:
      tokens.append(char)
  return tokens


def tokenize_caption(caption: str, lang: str) -> str:
  """XM3600-style `caption/tokenized`: lower-cased tokens joined by spaces.

  Spaced languages split at whitespace and at punctuation around words;
  Japanese, Chinese and Thai split into characters.
  """
  check_language(lang)
  text = caption.lower()
  if lang in UNSPACED_LANGUAGES:
    tokens = _characters(text)
  else:
    tokens = [t for word in text.split() for t in _split_punctuation(word)]
  return " ".join(tokens)
