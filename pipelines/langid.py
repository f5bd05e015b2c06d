"""Deterministic language identification for short captions.

Three backends share one code mapping and one `und` rule:

- "cascade" (the default): the fast pass below decides alone when it is sure
  and its answer is in no group of languages it confuses (Cyrillic
  ru/uk/bg/mk/sr, da/no/sv, id/ms, hi/mr/ne, es/pt/ca/gl, hr/sr/bs/sl).
  Otherwise lingua's models, restricted to the candidates (the languages the
  fast pass gives some probability, their groups, Maori for text written in
  the Maori alphabet only), split the candidates' probability between them
  (`pipelines.langid_groups`). Outputs langdetect's codes plus bs, mi, ms and
  sr; Quechua, which no model knows, is `und`.
- "fast": naive Bayes over every character 1-, 2- and 3-gram of the text, with
  the per-language n-gram probabilities and additive smoothing of langdetect's
  shipped profiles (55 languages; zh-cn and zh-tw mixed into one zh), its text
  normalisation, and one extra rule: a language is ruled out when none of its
  main scripts occurs in the text. Evaluated as one gather-and-sum in numpy.
  No randomness: the answer depends on the text only.
- "langdetect": langdetect's own detector (random n-gram sampling) with a fixed
  seed, kept as the reference.

Codes are langdetect's and lingua's, mapped to the XM3600 list where they
differ (`pipelines.lang_codes`: zh-cn and zh-tw -> zh, tl -> fil, nb and nn ->
no). An identifier holds only its settings; the profiles
load once per process on first use and are never pickled, so it is cheap to
ship to Beam workers and safe to share between threads.
"""

from collections.abc import Iterable, Sequence
import functools
import json
import math
import operator
import os
import re
import threading
from typing import Any, NamedTuple
import unicodedata

from langdetect import detector_factory
from langdetect.detector import Detector
from langdetect.lang_detect_exception import LangDetectException
from langdetect.utils.ngram import NGram
from langdetect.utils.unicode_block import unicode_block
import numpy as np

from dataformat import records
from pipelines import lang_codes
from pipelines import langid_groups

XM3600_LANGUAGES: tuple[str, ...] = (
    "ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "fil", "fr",
    "he", "hi", "hr", "hu", "id", "it", "ja", "ko", "mi", "nl", "no", "pl",
    "pt", "quz", "ro", "ru", "sv", "sw", "te", "th", "tr", "uk", "vi", "zh")

CASCADE_BACKEND = "cascade"
FAST_BACKEND = "fast"
LANGDETECT_BACKEND = "langdetect"
BACKENDS = (CASCADE_BACKEND, FAST_BACKEND, LANGDETECT_BACKEND)
DEFAULT_BACKEND = CASCADE_BACKEND

DEFAULT_MIN_SCORE = 0.5
# The cascade asks lingua whenever a second language holds this much of the
# fast pass's posterior (chosen on benchmarks/data/langid_dev.jsonl).
CANDIDATE_MIN_POSTERIOR = 0.01

# langdetect adds alpha / BASE_FREQ to every n-gram probability; the fast
# backend keeps that additive smoothing.
SMOOTHING = Detector.ALPHA_DEFAULT / Detector.BASE_FREQ
# Each character takes part in up to three overlapping n-grams, which naive
# Bayes counts as independent evidence; scaling the log-likelihoods by a third
# keeps the posterior from saturating on short captions.
EVIDENCE_SCALE = 1.0 / 3.0
# langdetect's default cap on the characters it reads.
MAX_TEXT_LENGTH = 10000
# Characters >= U+0300 outside Latin Extended Additional (Vietnamese) count as
# non-Latin when deciding whether stray Latin letters are noise.
_LATIN_RE = re.compile("[A-z]")
_NON_LATIN_RE = re.compile("[\u0300-\u1dff\u1f00-\U0010ffff]")
# Letters written with combining diacritics (as langdetect's Vietnamese
# normalisation expects) are composed.
_COMBINING_MARK_RE = re.compile("[\u0300-\u036f]")
# A Unicode block holding this share of a profile's characters is one of its
# main scripts; text with none of them is not in that language.
MAIN_SCRIPT_SHARE = 0.1
# How many sets of scripts keep their ruled-out languages cached; real text
# mixes few scripts, so few sets ever occur.
_SCRIPT_SETS_CACHED = 1024
# The highest code point langdetect's character normalisation changes.
_LAST_NORMALIZED_CODE_POINT = 0xFFFF


class LanguagePrediction(NamedTuple):
  """A language code (or `und`) and the best language's posterior."""

  lang: str
  score: float


def to_xm3600_code(code: str) -> str:
  """Maps a langdetect (or other) language code to the code this project
  uses: zh-cn, zh-tw -> zh; tl -> fil; nb, nn -> no; iw -> he; in -> id."""
  return lang_codes.canonical(code)


def _character_table() -> str:
  """`str.translate` table doing langdetect's per-character normalisation.

  A string indexed by code point rather than a dict: `translate` then never
  looks up a missing key, which costs it an exception per character.
  """
  changes = {}
  for code_point in range(_LAST_NORMALIZED_CODE_POINT + 1):
    char = chr(code_point)
    normalized = NGram.normalize(char)
    if normalized != char:
      changes[code_point] = normalized
  return "".join(map(chr, range(_LAST_NORMALIZED_CODE_POINT + 1))).translate(
      changes)


@functools.cache
def profile_languages() -> tuple[str, ...]:
  """The codes of langdetect's 55 profiles, mapped and sorted (54 codes)."""
  return tuple(sorted({to_xm3600_code(name) for name in _profile_names()}))


def _profile_names() -> list[str]:
  """The profile files' names, which are langdetect's language codes."""
  return sorted(name for name in os.listdir(detector_factory.PROFILES_DIRECTORY)
                if not name.startswith("."))


def _load_profiles() -> list[dict[str, Any]]:
  """langdetect's profiles, in file-name order: name, freq, n_words."""
  profiles = []
  for name in _profile_names():
    path = os.path.join(detector_factory.PROFILES_DIRECTORY, name)
    with open(path, encoding="utf-8") as f:
      profiles.append(json.load(f))
  return profiles


def _ngram_probabilities(
    profiles: list[dict[str, Any]],
    labels: Sequence[str]) -> tuple[dict[str, int], np.ndarray]:
  """p(n-gram | language) as langdetect computes it, one row per n-gram.

  A language with several profiles (zh: zh-cn and zh-tw) gets their mean.
  langdetect's profiles hold 1-, 2- and 3-grams only.

  Returns:
    (n-gram -> row, [n_ngrams + 1, len(labels)] float64 probabilities: the
    n-gram's count over the profile's count of n-grams of that length). Row 0
    is all zeros and belongs to no n-gram.
  """
  row_of_ngram: dict[str, int] = {}
  for profile in profiles:
    for ngram in profile["freq"]:
      row_of_ngram.setdefault(ngram, len(row_of_ngram) + 1)
  columns = [labels.index(to_xm3600_code(p["name"])) for p in profiles]
  probs = np.zeros((len(row_of_ngram) + 1, len(labels)))
  for column, profile in zip(columns, profiles):
    freq = profile["freq"]
    rows = np.fromiter(map(row_of_ngram.__getitem__, freq), np.intp, len(freq))
    counts = np.fromiter(freq.values(), np.float64, len(freq))
    lengths = np.fromiter(map(len, freq), np.intp, len(freq))
    probs[rows, column] += counts / np.asarray(
        profile["n_words"], np.float64)[lengths - 1] / columns.count(column)
  return row_of_ngram, probs


def _suffix_rows(row_of_ngram: dict[str, int], start: int) -> np.ndarray:
  """Per row, the row of its n-gram's suffix `ngram[start:]`.

  0 where the suffix is empty or not an n-gram of any profile.
  """
  suffixes = np.zeros(len(row_of_ngram) + 1, np.intp)
  for ngram, row in row_of_ngram.items():
    suffixes[row] = row_of_ngram.get(ngram[start:], 0)
  return suffixes


def _script_bits(row_of_ngram: dict[str, int], probs: np.ndarray) -> list[int]:
  """Per row, bit j set if its n-gram ends in a main-script character of j.

  Language j's main scripts are the Unicode blocks holding at least
  MAIN_SCRIPT_SHARE of its single characters' probability.
  """
  chars = [(g, r) for g, r in row_of_ngram.items() if len(g) == 1]
  char_rows = np.array([r for _, r in chars])
  blocks = np.array([unicode_block(g) or 0 for g, _ in chars])
  char_bits = np.zeros(len(row_of_ngram) + 1, np.int64)
  for column in range(probs.shape[1]):
    share = np.bincount(blocks, weights=probs[char_rows, column])
    main = np.isin(blocks, np.flatnonzero(share >= MAIN_SCRIPT_SHARE))
    char_bits[char_rows[main]] |= np.int64(1) << column
  return char_bits[_suffix_rows(row_of_ngram, -1)].tolist()


@functools.lru_cache(maxsize=_SCRIPT_SETS_CACHED)
def _ruled_out(scripts: int, n_labels: int) -> np.ndarray:
  """[n_labels] -inf for the languages none of whose scripts are in `scripts`.

  `scripts` has bit j set if a character of one of language j's main scripts
  occurs in the text. If no language's does, none is ruled out (all zeros).
  """
  present = np.array([scripts >> j & 1 for j in range(n_labels)], bool)
  ruled_out = np.where(present | ~present.any(), 0.0, -np.inf)
  ruled_out.flags.writeable = False
  return ruled_out


class FastModel:
  """langdetect's profiles as matrices for the fast backend.

  Naive Bayes reads every 1-, 2- and 3-gram of the text padded with spaces,
  that is, at each character, the n-grams ending there. Row r of
  `window_log_probs` holds the summed log-probabilities of n-gram r and of
  its known suffixes, so one lookup of the longest known n-gram ending at a
  character stands for all the n-grams ending there. Build it through
  `fast_model()`, which makes one per process.

  Attributes:
    labels: the language codes, sorted; one column each.
    column_of: language code -> column.
    row_of_ngram: n-gram -> row of `window_log_probs` and `script_bits`.
    window_log_probs: [n_ngrams + 1, n_labels] float32: for the row's n-gram
      and each of its suffixes that is an n-gram, log(p(n-gram | language) +
      SMOOTHING) * EVIDENCE_SCALE, summed. Row 0 (no n-gram) is zeros.
    script_bits: per row, bit j set if the row's n-gram ends in a character
      of language j's main scripts.
    characters: the normalisation table for `str.translate`.
  """

  def __init__(self):
    self.labels = profile_languages()
    self.column_of = {code: column for column, code in enumerate(self.labels)}
    self.row_of_ngram, probs = _ngram_probabilities(_load_profiles(),
                                                    self.labels)
    log_probs = np.log(probs + SMOOTHING) * EVIDENCE_SCALE
    log_probs[0] = 0.0
    self.window_log_probs = (
        log_probs + log_probs[_suffix_rows(self.row_of_ngram, 1)] +
        log_probs[_suffix_rows(self.row_of_ngram, 2)]).astype(np.float32)
    self.script_bits = _script_bits(self.row_of_ngram, probs)
    self.characters = _character_table()

  def normalize(self, text: str) -> str:
    """The text as langdetect reads it, words separated by single spaces.

    URLs and e-mail addresses are dropped, Latin letters are dropped from text
    mostly in another script, characters are folded as langdetect folds them,
    and all-capital words are lower-cased (their n-grams would otherwise be
    rare in every profile).
    """
    text = Detector.URL_RE.sub(" ", text[:MAX_TEXT_LENGTH])
    text = Detector.MAIL_RE.sub(" ", text)
    if not text.isascii():
      if _COMBINING_MARK_RE.search(text):
        text = unicodedata.normalize("NFC", text)
      if (_NON_LATIN_RE.search(text) and _LATIN_RE.search(text) and
          2 * len(_LATIN_RE.findall(text)) < len(_NON_LATIN_RE.findall(text))):
        text = _LATIN_RE.sub("", text)
    words = text.translate(self.characters).split()
    return " ".join(w.lower() if len(w) > 1 and w.isupper() else w
                    for w in words)

  def window_rows(self, text: str) -> list[int]:
    """Per position, the row of the longest n-gram ending there.

    Positions are the characters of the normalised text and the space after
    it; the row is 0 where no n-gram ending there is known.
    """
    padded = f"  {self.normalize(text)} "
    get = self.row_of_ngram.get
    return [get(padded[i:i + 3]) or get(padded[i + 1:i + 3]) or
            get(padded[i + 2]) or 0 for i in range(len(padded) - 2)]

  def log_likelihoods(self, text: str) -> np.ndarray | None:
    """Per label, the log-likelihood of `text` (float64).

    Languages whose main scripts do not occur in the text get -inf, unless
    none occurs (the profiles alone would let Korean, with its Hanja, win
    over Chinese on a caption without a single Hangul syllable). None if no
    n-gram of the text is in a profile.
    """
    rows = self.window_rows(text)
    if not any(rows):
      return None
    log_likelihood = np.add.reduce(
        np.take(self.window_log_probs, rows, axis=0), axis=0, dtype=np.float64)
    scripts = functools.reduce(operator.or_,
                               map(self.script_bits.__getitem__, rows))
    return log_likelihood + _ruled_out(scripts, len(self.labels))

  def best_label(self, text: str) -> LanguagePrediction | None:
    """The most probable language of `text` and its posterior probability.

    Ties go to the first label. None if no n-gram of the text is in a profile.
    """
    log_likelihood = self.log_likelihoods(text)
    if log_likelihood is None:
      return None
    best = int(log_likelihood.argmax())
    return LanguagePrediction(self.labels[best], math.exp(
        log_likelihood[best] - np.logaddexp.reduce(log_likelihood)))


class _Once:
  """A value built on first use, once per process, under a lock."""

  def __init__(self, build):
    self._build = build
    self._value = None
    self._lock = threading.Lock()

  def get(self):
    if self._value is None:
      with self._lock:
        if self._value is None:
          self._value = self._build()
    return self._value


def _load_langdetect_factory() -> detector_factory.DetectorFactory:
  factory = detector_factory.DetectorFactory()
  factory.load_profile(detector_factory.PROFILES_DIRECTORY)
  return factory


_FAST_MODEL = _Once(FastModel)
_LANGDETECT_FACTORY = _Once(_load_langdetect_factory)


def fast_model() -> FastModel:
  """The process-wide `FastModel`, built on first use (about half a second)."""
  return _FAST_MODEL.get()


def _best_label(scores: dict[str, float]) -> LanguagePrediction:
  """The highest-scoring label; ties go to the alphabetically first code."""
  lang = min(scores, key=lambda code: (-scores[code], code))
  return LanguagePrediction(lang, scores[lang])


@functools.cache
def cascade_languages() -> tuple[str, ...]:
  """The codes the cascade can output: the profiles' and lingua's groups'."""
  return tuple(sorted(set(profile_languages()) |
                      langid_groups.output_codes()))


def _refined(scores: dict[str, float], fast_scores: dict[str, float],
             group_mass: float) -> dict[str, float]:
  """Splits `group_mass` between a group's languages.

  `scores` are lingua's probabilities over the group's languages it has a
  model for, `fast_scores` the fast pass's posteriors within the group. The
  group's languages lingua has no model for (ne, gl) keep the fast pass's
  share; lingua splits the rest.
  """
  unknown = {code: p for code, p in fast_scores.items() if code not in scores}
  known_mass = group_mass - sum(unknown.values())
  return {**unknown, **{code: known_mass * p for code, p in scores.items()}}


def cascade_label(text: str) -> LanguagePrediction | None:
  """The cascade's language of `text` and its probability.

  The fast pass's posterior decides alone when a single language holds all
  but CANDIDATE_MIN_POSTERIOR of it and that language is in no confusable
  group. Otherwise the candidates (languages with at least that posterior,
  their groups, and Maori for text in the Maori alphabet only) share the
  candidates' total posterior as lingua splits it between them. None if the
  fast pass finds no n-gram it knows, or if the text has Quechua's letter
  sequences: no model knows Quechua, so it is not tagged as another language.
  """
  model = fast_model()
  log_likelihood = model.log_likelihoods(text)
  if log_likelihood is None:
    return None
  posterior = np.exp(log_likelihood - np.logaddexp.reduce(log_likelihood))
  if langid_groups.is_quechua_like(
      text, model.labels[int(posterior.argmax())]):
    return None
  candidates = set()
  for column in np.flatnonzero(posterior >= CANDIDATE_MIN_POSTERIOR):
    code = model.labels[column]
    candidates |= langid_groups.group_of(code) or {code}
  if langid_groups.is_maori_candidate(text):
    candidates.add(langid_groups.MAORI)
  column_of = model.column_of
  fast_scores = {code: float(posterior[column_of[code]])
                 for code in sorted(candidates) if code in column_of}
  if len(candidates) > 1:
    scores = langid_groups.confidences(text, candidates)
    if any(scores.values()):
      return _best_label(_refined(scores, fast_scores,
                                  sum(fast_scores.values())))
  return _best_label(fast_scores)


class LanguageIdentifier:
  """Tags text with a language code, or `und` when unsure.

  Attributes:
    backend: "cascade" (the fast pass, then lingua within a confusable
      group), "fast" (naive Bayes alone) or "langdetect" (reference).
    min_score: predictions scoring below this come out as `und`.
    seed: the langdetect backend's random seed (the fast backend has none).
  """

  def __init__(self, backend: str = DEFAULT_BACKEND,
               min_score: float = DEFAULT_MIN_SCORE, seed: int = 0):
    if backend not in BACKENDS:
      raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not 0.0 <= min_score <= 1.0:
      raise ValueError(f"min_score must be in [0, 1], got {min_score}")
    self.backend = backend
    self.min_score = min_score
    self.seed = seed

  def __getstate__(self) -> dict[str, Any]:
    return {"backend": self.backend, "min_score": self.min_score,
            "seed": self.seed}

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__init__(**state)

  def __repr__(self) -> str:
    return (f"LanguageIdentifier(backend={self.backend!r}, "
            f"min_score={self.min_score}, seed={self.seed})")

  @property
  def languages(self) -> tuple[str, ...]:
    """The language codes it can output besides `und`, sorted."""
    if self.backend == CASCADE_BACKEND:
      return cascade_languages()
    return profile_languages()

  def check_outputs(self, codes: Iterable[str] | None) -> None:
    """Raises ValueError naming the codes it never outputs (`und` aside)."""
    never = sorted(set(codes or ()) - set(self.languages) -
                   {records.UNDETERMINED_LANG})
    if never:
      raise ValueError(
          f"the {self.backend} language identifier never outputs "
          f"{', '.join(never)}; it outputs {records.UNDETERMINED_LANG} and "
          f"{' '.join(self.languages)}")

  def load(self) -> None:
    """Loads the models most captions need now rather than on demand.

    The fast pass's profiles and, for the cascade, lingua's models of the
    confusable groups and Maori (`langid_groups.preload`). Workers call it at
    set-up, so that the cost of their first captions does not depend on
    which of those languages they hold. lingua's models of other languages
    the fast pass makes candidates (Czech next to Slovak, say) still load on
    first use, 0.2 to 1 s each: all 55 would take about 13 s of CPU and 1.1
    GB per process, more than most builds ever ask for.
    """
    if self.backend == LANGDETECT_BACKEND:
      _LANGDETECT_FACTORY.get()
      return
    fast_model()
    if self.backend == CASCADE_BACKEND:
      langid_groups.preload()

  def identify(self, text: str) -> LanguagePrediction:
    """The language of `text` and its posterior probability.

    `und` with the best language's score when that is below `min_score`, and
    `und` with score 0 when no character n-gram of the text is in a profile
    (or, for the cascade, when the text looks like Quechua).
    """
    if self.backend == LANGDETECT_BACKEND:
      best = self._identify_langdetect(text)
    elif self.backend == CASCADE_BACKEND:
      best = cascade_label(text)
    else:
      best = fast_model().best_label(text)
    if best is None:
      return LanguagePrediction(records.UNDETERMINED_LANG, 0.0)
    if best.score < self.min_score:
      return LanguagePrediction(records.UNDETERMINED_LANG, best.score)
    return best

  def identify_batch(self, texts: Sequence[str]) -> list[LanguagePrediction]:
    """`identify` for each text."""
    return [self.identify(t) for t in texts]

  def _identify_langdetect(self, text: str) -> LanguagePrediction | None:
    """langdetect's best language, None if it finds no n-gram it knows."""
    detector = _LANGDETECT_FACTORY.get().create()
    detector.seed = self.seed
    detector.append(text)
    try:
      candidates = detector.get_probabilities()
    except LangDetectException:
      return None
    scores: dict[str, float] = {}
    for candidate in candidates:
      code = to_xm3600_code(candidate.lang)
      scores[code] = scores.get(code, 0.0) + candidate.prob
    if not scores:
      return None
    return _best_label(scores)
