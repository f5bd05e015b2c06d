"""Per-example filters: pure predicates that return a reason code or None.

Each predicate looks at one property of an already decoded example and
returns a `Verdict`: None to keep it, or the `Reason` and a human-readable
detail to reject it. The thresholds live in `FilterConfig`, whose field names
are also the command-line flags of `pipelines.build_dataset`.

Set-level decisions (block-list and duplicate images) are not made here: they
need all examples at once and happen after every per-example check passed.
"""

from collections.abc import Iterable
import dataclasses
import math
import re

from pipelines import lang_codes
from pipelines.reasons import Reason

Verdict = tuple[Reason, str] | None

# Scripts written without spaces between words, and how many characters make
# one word on average: Chinese words are 1.5-2 characters and Japanese
# morphemes about 2; Thai, Lao, Khmer and Myanmar words are about 4 code
# points (letters plus vowel and tone marks).
_CJK = (
    "\u2e80-\u2fdf"  # CJK and Kangxi radicals.
    "\u3000-\u303f"  # CJK symbols and punctuation.
    "\u3040-\u30ff"  # Hiragana, Katakana.
    "\u31f0-\u31ff"  # Katakana phonetic extensions.
    "\u3400-\u4dbf"  # CJK Extension A.
    "\u4e00-\u9fff"  # CJK Unified Ideographs.
    "\uf900-\ufaff"  # CJK Compatibility Ideographs.
    "\uff66-\uff9f"  # Halfwidth Katakana.
    "\U00020000-\U0003134f"  # CJK Extensions B-G.
)
_SOUTHEAST_ASIAN = (
    "\u0e00-\u0e7f"  # Thai.
    "\u0e80-\u0eff"  # Lao.
    "\u1000-\u109f"  # Myanmar.
    "\u1780-\u17ff"  # Khmer.
)
_CJK_CHARS_PER_WORD = 2
_SOUTHEAST_ASIAN_CHARS_PER_WORD = 4
_WORD_RE = re.compile(
    f"(?P<cjk>[{_CJK}]+)|(?P<sea>[{_SOUTHEAST_ASIAN}]+)"
    f"|[^\\s{_CJK}{_SOUTHEAST_ASIAN}]+")


def count_words(text: str) -> int:
  """Counts the words of `text`, also in scripts written without spaces.

  Text is split at whitespace. Inside the pieces, a run of characters from a
  script written without spaces counts as ceil(run length / average word
  length) words: 2 characters per word for Han, kana and CJK punctuation, 4
  code points per word for Thai, Lao, Khmer and Myanmar. Every other run of
  non-space characters is one word. So "a cat" has 2 words, "東京タワーの夜景"
  (8 characters) 4, and "iPhone手机" 2.
  """
  words = 0
  for match in _WORD_RE.finditer(text):
    if match.group("cjk"):
      words += math.ceil(len(match.group("cjk")) / _CJK_CHARS_PER_WORD)
    elif match.group("sea"):
      words += math.ceil(
          len(match.group("sea")) / _SOUTHEAST_ASIAN_CHARS_PER_WORD)
    else:
      words += 1
  return words


@dataclasses.dataclass(frozen=True)
class FilterConfig:
  """Thresholds of the per-example filters.

  Attributes:
    min_image_side: images whose shorter side (in pixels, as decoded) is
      smaller are rejected as IMAGE_TOO_SMALL.
    max_aspect_ratio: images whose longer side is more than this many times
      their shorter side are rejected as EXTREME_ASPECT_RATIO.
    min_caption_chars: captions with fewer characters (Unicode code points,
      after cleaning) are rejected as CAPTION_TOO_SHORT.
    max_caption_chars: captions with more characters are CAPTION_TOO_LONG.
    min_caption_words: captions with fewer words (see `count_words`) are
      CAPTION_TOO_SHORT.
    max_caption_words: captions with more words are CAPTION_TOO_LONG.
    languages: the language codes to keep (`und` included), or None to keep
      every language; others are rejected as LANGUAGE_NOT_ALLOWED.
  """

  min_image_side: int = 32
  max_aspect_ratio: float = 3.0
  min_caption_chars: int = 2
  max_caption_chars: int = 512
  min_caption_words: int = 1
  max_caption_words: int = 128
  languages: frozenset[str] | None = None

  def __post_init__(self):
    if self.min_image_side < 1:
      raise ValueError(
          f"min_image_side must be at least 1, got {self.min_image_side}")
    if not self.max_aspect_ratio >= 1.0:
      raise ValueError(
          f"max_aspect_ratio must be at least 1, got {self.max_aspect_ratio}")
    for unit in ("chars", "words"):
      low = getattr(self, f"min_caption_{unit}")
      high = getattr(self, f"max_caption_{unit}")
      if not 0 <= low <= high:
        raise ValueError(
            f"caption {unit} limits must satisfy 0 <= min_caption_{unit} <= "
            f"max_caption_{unit}, got {low} and {high}")
    if self.languages is not None:
      if not self.languages:
        raise ValueError("languages must not be empty (None keeps all)")
      object.__setattr__(self, "languages", frozenset(self.languages))

  def to_json(self) -> dict:
    """The thresholds as a JSON-ready dict (languages sorted, or null)."""
    fields = dataclasses.asdict(self)
    if self.languages is not None:
      fields["languages"] = sorted(self.languages)
    return fields


def parse_languages(spec: str) -> frozenset[str] | None:
  """'en,de, fr' -> {'en', 'de', 'fr'}; 'all' or '' -> None (keep all).

  Codes are mapped to the project's (`lang_codes.canonical`: nb -> no, ...).
  """
  codes = {lang_codes.canonical(code) for code in spec.split(",")
           if code.strip()}
  if not codes or codes == {"all"}:
    return None
  return frozenset(codes)


def image_reject_reason(height: int, width: int,
                        config: FilterConfig) -> Verdict:
  """Checks a decoded image's size: IMAGE_TOO_SMALL, EXTREME_ASPECT_RATIO."""
  short, long = sorted((height, width))
  if short < config.min_image_side:
    return (Reason.IMAGE_TOO_SMALL,
            f"{width}x{height} px, shorter side {short} < "
            f"{config.min_image_side}")
  if long > config.max_aspect_ratio * short:
    return (Reason.EXTREME_ASPECT_RATIO,
            f"{width}x{height} px, aspect ratio {long / short:.2f} > "
            f"{config.max_aspect_ratio:g}")
  return None


def caption_reject_reason(text: str, config: FilterConfig) -> Verdict:
  """Checks a clean caption's length: CAPTION_TOO_SHORT, CAPTION_TOO_LONG."""
  chars = len(text)
  if chars < config.min_caption_chars:
    return (Reason.CAPTION_TOO_SHORT,
            f"{chars} characters < {config.min_caption_chars}")
  if chars > config.max_caption_chars:
    return (Reason.CAPTION_TOO_LONG,
            f"{chars} characters > {config.max_caption_chars}")
  words = count_words(text)
  if words < config.min_caption_words:
    return (Reason.CAPTION_TOO_SHORT,
            f"{words} words < {config.min_caption_words}")
  if words > config.max_caption_words:
    return (Reason.CAPTION_TOO_LONG,
            f"{words} words > {config.max_caption_words}")
  return None


def language_reject_reason(lang: str, score: float,
                           config: FilterConfig) -> Verdict:
  """Checks an identified language against the allow-list."""
  if config.languages is None or lang in config.languages:
    return None
  return (Reason.LANGUAGE_NOT_ALLOWED,
          f"{lang} (score {score:.2f}) not in {_list(config.languages)}")


def _list(codes: Iterable[str]) -> str:
  return ",".join(sorted(codes))
