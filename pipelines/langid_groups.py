"""The cascade's second stage: lingua's models within a group of look-alikes.

The fast pass over langdetect's profiles (1- to 3-grams) reliably finds a
caption's family but not which of a few close languages it is in: Russian
against Macedonian, Danish against Norwegian, Indonesian against Malay.
lingua's models (up to 5-grams, and word rules, in high-accuracy mode) tell
those apart; restricted to one group's languages they cost a fraction of a
full lingua call. lingua also brings languages langdetect has no profile for
(bs, mi, ms, sr). Its confidences, rounded, are the same on every call for a
text and a set of languages; its models load once per process, on first use.
Beside the groups: the letter rules that send text to Maori, and that keep
Quechua, which no model here knows, from being tagged as another language.
"""

from collections.abc import Iterable
import functools
import re
import unicodedata

from lingua import Language
from lingua import LanguageDetector
from lingua import LanguageDetectorBuilder

from pipelines import lang_codes

# Languages the fast pass confuses with each other, in the project's codes.
# A language the fast pass can output sits in at most one group; codes it
# cannot output (sr, bs, ms) are reached through a neighbour's group. Serbian
# is in both Slavic groups: Cyrillic and Latin script.
CONFUSABLE_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"ru", "uk", "bg", "mk", "sr"}),
    frozenset({"hr", "sr", "bs", "sl"}),
    frozenset({"da", "no", "sv"}),
    frozenset({"id", "ms"}),
    frozenset({"hi", "mr", "ne"}),
    frozenset({"es", "pt", "ca", "gl"}),
)

# lingua's confidences differ between calls in their last bits (it sums
# log-probabilities over n-grams in hash order: by at most 5e-15 on the
# benchmark's captions). Rounded to this many decimals they come out the same
# on every call, in every process, unless a value lies within those bits of a
# rounding boundary (about one value in 10^8).
CONFIDENCE_DECIMALS = 6

# How many sets of candidate languages keep their detector; a detector is
# cheap to rebuild, the models it reads are loaded once per process.
_DETECTORS_CACHED = 1024

MAORI = "mi"
# Maori is written with these letters only (macrons for long vowels); `g`
# only in `ng`. Text of no other letters is a Maori candidate.
_MAORI_LETTERS = frozenset("aehikmnoprtuwgāēīōū")
_LETTER_RE = re.compile(r"[^\W\d_]")
_LONE_G_RE = re.compile(r"(?<!n)g")
# Southern Quechua's progressive `-chka-`, its `q` inside a word before
# anything but `u`, and its ejectives (`k'`, `p'`, `q'`, `ch'` before a
# vowel; the apostrophe may be typographic).
_QUECHUA_MARKER_RE = re.compile(
    r"chk|(?<=[^\W\d_])q(?=[aehioptkcnsmlwy'’ʼ])|"
    r"(?:ch|[kpq])['’ʼ][aeiou]")
# The languages with a profile that write such a `q` too: Albanian, Somali.
Q_WRITING_LANGUAGES = frozenset({"sq", "so"})


def to_project_code(language: Language) -> str:
  """lingua's language -> the project's code (Bokmal and Nynorsk -> no)."""
  return lang_codes.canonical(language.iso_code_639_1.name)


@functools.cache
def _lingua_languages() -> dict[str, tuple[Language, ...]]:
  """Project code -> lingua's languages for it (two for `no`)."""
  languages: dict[str, tuple[Language, ...]] = {}
  for language in sorted(Language.all(), key=lambda l: l.name):
    code = to_project_code(language)
    languages[code] = languages.get(code, ()) + (language,)
  return languages


def lingua_codes() -> frozenset[str]:
  """The project codes lingua has a model for."""
  return frozenset(_lingua_languages())


@functools.cache
def group_of(code: str) -> frozenset[str] | None:
  """The confusable group the fast pass's answer `code` sends text to."""
  groups = [g for g in CONFUSABLE_GROUPS if code in g]
  return groups[0] if len(groups) == 1 else None


def output_codes() -> frozenset[str]:
  """Codes the second stage can output: its groups' and Maori, if lingua
  has a model for them."""
  return (frozenset().union(*CONFUSABLE_GROUPS) | {MAORI}) & lingua_codes()


def is_maori_candidate(text: str) -> bool:
  """Whether every letter of `text` is in the Maori alphabet (some are)."""
  letters = _LETTER_RE.findall(unicodedata.normalize("NFC", text.lower()))
  return (bool(letters) and _MAORI_LETTERS.issuperset(letters) and
          not _LONE_G_RE.search("".join(letters)))


def is_quechua_like(text: str, best: str) -> bool:
  """Whether `text`, whose best language is `best` by the fast pass, has
  Southern Quechua's letter sequences that `best` does not write."""
  return (best not in Q_WRITING_LANGUAGES and
          _QUECHUA_MARKER_RE.search(text.lower()) is not None)


def preload() -> None:
  """Loads lingua's models of every language the groups can ask about.

  Otherwise each loads at the first caption that needs it, a cost of up to
  about 5 s of CPU in all (and ~450 MB) that then depends on the data. The
  models stay loaded for the process, shared by every detector.
  """
  languages = {language for code in output_codes()
               for language in _lingua_languages()[code]}
  _builder(languages).with_preloaded_language_models().build()


def _builder(languages: Iterable[Language]) -> LanguageDetectorBuilder:
  """lingua's builder over `languages`, in a fixed order."""
  return LanguageDetectorBuilder.from_languages(
      *sorted(languages, key=lambda l: l.name))


@functools.lru_cache(maxsize=_DETECTORS_CACHED)
def _detector(languages: frozenset[Language]) -> LanguageDetector:
  """A lingua detector over `languages` (they share lingua's loaded models)."""
  return _builder(languages).build()


def confidences(text: str, codes: Iterable[str]) -> dict[str, float]:
  """lingua's probabilities of `text` over the codes it has models for.

  Restricted to those of `codes` (at least two); they sum to 1 (up to the
  rounding to CONFIDENCE_DECIMALS) unless lingua rules out all of them, when
  all are 0. Empty if fewer than two of `codes` have a model.
  """
  languages = frozenset(language for code in codes
                        for language in _lingua_languages().get(code, ()))
  if len({to_project_code(l) for l in languages}) < 2:
    return {}
  result = {to_project_code(l): 0.0 for l in languages}
  for value in _detector(languages).compute_language_confidence_values(
      text):
    result[to_project_code(value.language)] += value.value
  return {code: round(p, CONFIDENCE_DECIMALS) for code, p in result.items()}
