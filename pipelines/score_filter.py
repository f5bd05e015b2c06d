"""Image-text score filtering: the cut-off rules and what they report.

A frozen two-tower model (`pipelines.pair_scorer`) scores every pair that
passed the per-example checks; the score is stored in the record as
`score/<name>`. Then, where a cut-off is asked for, pairs scoring below it
are rejected as LOW_IMAGE_TEXT_SCORE, with the score and cut-off in the
detail. The cut-off is either

  absolute     --min_score S: the same S for every language
  per language --score_keep_fraction F: each language keeps its best F,
               the cut-off its (1 - F) quantile of scores

A global fraction would starve the languages a model scores low (fewer
training pairs, weaker text tower): per language, each keeps F of its own
pairs. In Beam this takes two passes: score, then compute the per-language
quantiles (`beam.ApproximateQuantiles.PerKey`, `NUM_QUANTILES` of them) and
give them to the filter as a side input. Below its buffer size (about 30,000
scores per language) the quantile sketch is exact, so the cut-offs, like the
rest of the build, do not depend on the runner or worker count; above it they
are within 1 / (NUM_QUANTILES - 1) of the asked rank.

The score histogram per language (bins of `SCORE_BIN`) and the cut-offs go
to the manifest and stats.png. The Beam stage that applies these rules is
`pipelines.score_pairs`; this module needs neither the model nor JAX, so
that a build without scoring does not load them.
"""

from collections.abc import Iterable, Mapping, Sequence
import dataclasses
import math
import re
from typing import Any, NamedTuple

from dataformat import records
from pipelines.filters import Verdict
from pipelines.reasons import Reason

# Pairs per model call.
DEFAULT_BATCH_SIZE = 64
# Quantiles per language: cut-offs are placed to 0.1% of the language's pairs.
NUM_QUANTILES = 1001
SCORE_BIN = 0.05
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclasses.dataclass(frozen=True)
class ScoreFilterConfig:
  """How pairs are scored and cut.

  Attributes:
    name: the score's name: records get `score/<name>`.
    min_score: reject pairs scoring below this, in every language.
    keep_fraction: keep this fraction of each language's pairs, the best.
    batch_size: pairs per model call.
  At most one of min_score and keep_fraction; with neither, pairs are only
  scored.
  """

  name: str
  min_score: float | None = None
  keep_fraction: float | None = None
  batch_size: int = DEFAULT_BATCH_SIZE

  def __post_init__(self):
    if not _NAME_RE.match(self.name):
      raise ValueError(f"--score_name must be letters, digits, '_', '.' or "
                       f"'-', got {self.name!r}")
    if self.min_score is not None and self.keep_fraction is not None:
      raise ValueError("give --min_score or --score_keep_fraction, not both")
    if self.min_score is not None and not -1.0 <= self.min_score <= 1.0:
      raise ValueError(f"--min_score is a cosine similarity in [-1, 1], got "
                       f"{self.min_score}")
    if self.keep_fraction is not None and not 0.0 < self.keep_fraction <= 1.0:
      raise ValueError(f"--score_keep_fraction must be in (0, 1], got "
                       f"{self.keep_fraction}")
    if self.batch_size < 1:
      raise ValueError(f"--score_batch_size must be positive, got "
                       f"{self.batch_size}")

  @property
  def filters(self) -> bool:
    return self.min_score is not None or self.keep_fraction is not None

  def to_json(self) -> dict[str, Any]:
    return {"name": self.name, "field": records.score_field(self.name),
            "min_score": self.min_score, "keep_fraction": self.keep_fraction,
            "batch_size": self.batch_size}


def cutoff_from_quantiles(quantiles: Sequence[float],
                          keep_fraction: float) -> float:
  """The score that keeps `keep_fraction` of a language, from its quantiles.

  `quantiles` are [min, ..., max], evenly spaced in rank; the cut-off is the
  one at rank 1 - keep_fraction, so keeping scores >= it keeps about that
  fraction (more where scores tie).
  """
  index = round((1.0 - keep_fraction) * (len(quantiles) - 1))
  return float(quantiles[index])


_DETAIL_RE = re.compile(r"^score (\S+) < cut-off (\S+) for (\S+)$")


def score_reject_reason(score: float, lang: str, cutoff: float) -> Verdict:
  """LOW_IMAGE_TEXT_SCORE when `score` is below the language's cut-off."""
  if score >= cutoff:
    return None
  return (Reason.LOW_IMAGE_TEXT_SCORE,
          f"score {score:.4f} < cut-off {cutoff:.4f} for {lang}")


def parse_reject_detail(detail: str) -> tuple[float, float, str]:
  """(score, cut-off, language) from a LOW_IMAGE_TEXT_SCORE detail.

  Raises:
    ValueError: if `detail` is not one `score_reject_reason` wrote.
  """
  match = _DETAIL_RE.match(detail)
  if match is None:
    raise ValueError(f"not a {Reason.LOW_IMAGE_TEXT_SCORE} detail: "
                     f"{detail!r}")
  return float(match[1]), float(match[2]), match[3]


def score_bin(score: float) -> int:
  """The histogram bin of `score`: bin i holds [i, i + 1) * SCORE_BIN."""
  return math.floor(score / SCORE_BIN)


class ScoreSummary(NamedTuple):
  """The scores of a build: histogram and cut-off per language."""

  histogram: dict[str, dict[int, int]]
  cutoffs: dict[str, float]
  bin_width: float = SCORE_BIN

  @classmethod
  def from_counts(cls, counts: Iterable[tuple[tuple[str, int], int]],
                  cutoffs: Mapping[str, float]) -> "ScoreSummary":
    histogram: dict[str, dict[int, int]] = {}
    for (lang, bin_index), n in sorted(counts):
      histogram.setdefault(lang, {})[bin_index] = n
    # Languages with the most pairs first, as in the language histogram.
    histogram = dict(sorted(histogram.items(),
                            key=lambda kv: (-sum(kv[1].values()), kv[0])))
    return cls(histogram, dict(sorted(cutoffs.items())))

  def to_json(self) -> dict[str, Any]:
    """Per language: pairs scored, the cut-off, {bin start: count}."""
    return {
        "bin_width": self.bin_width,
        "languages": {
            lang: {"scored": sum(bins.values()),
                   "cutoff": self.cutoffs.get(lang),
                   "histogram": {f"{b * self.bin_width:.2f}": n
                                 for b, n in bins.items()}}
            for lang, bins in self.histogram.items()},
    }
