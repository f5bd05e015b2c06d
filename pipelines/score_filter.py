"""Image-text score filtering: score each kept pair, cut off per language.

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
to the manifest and stats.png.
"""

from collections.abc import Iterable, Mapping, Sequence
import dataclasses
import math
import re
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler
from apache_beam.ml.inference.base import RunInference
import numpy as np

from dataformat import records
from dataformat import shards as shards_lib
from pipelines import pair_scorer
from pipelines.filters import Verdict
from pipelines.reasons import Reason

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
  batch_size: int = pair_scorer.DEFAULT_BATCH_SIZE

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


class _PreprocessFn(beam.DoFn):
  """Kept example -> (kept example, preprocessed pair)."""

  def __init__(self, spec: pair_scorer.ScorerSpec):
    self._spec = spec

  def process(self, example):
    record = records.parse_record(example.record)
    yield example, pair_scorer.preprocess(self._spec, record.image_encoded,
                                          record.text)


def _with_score(element, name: str):
  """(kept example, prediction) -> the example, its score in the record."""
  example, prediction = element
  # The score the filter compares is the one stored: a float32.
  score = float(np.float32(prediction.inference))
  record = records.parse_record(example.record)
  record.scores[name] = score
  return example._replace(record=records.serialize_record(record),
                          score=score)


class _FilterFn(beam.DoFn):
  """Scored examples -> kept ones, and (shard, RejectedExample)s."""

  def __init__(self, num_shards: int, rejected_tag: str,
               metrics_namespace: str):
    self._num_shards = num_shards
    self._rejected_tag = rejected_tag
    self._rejected = beam.metrics.Metrics.counter(
        metrics_namespace, f"rejected_{Reason.LOW_IMAGE_TEXT_SCORE}")

  def process(self, example, cutoffs):
    verdict = score_reject_reason(example.score, example.lang,
                                  cutoffs[example.lang])
    if verdict is None:
      yield example
      return
    self._rejected.inc()
    reason, detail = verdict
    yield beam.pvalue.TaggedOutput(self._rejected_tag, (
        shards_lib.shard_index(example.key, self._num_shards),
        shards_lib.RejectedExample(example.key, example.source, str(reason),
                                   detail, example.url)))


class ScoreResult(NamedTuple):
  """What `ScoreAndFilter` gives: PCollections."""

  kept: Any  # Kept examples with their score.
  rejected: Any  # (shard, RejectedExample) of low-scoring ones.
  cutoffs: Any  # (lang, cut-off), for languages with one.
  histogram: Any  # ((lang, bin), count).


class ScoreAndFilter(beam.PTransform):
  """Kept examples -> `ScoreResult`: scored, and cut where asked."""

  def __init__(self, spec: pair_scorer.ScorerSpec, config: ScoreFilterConfig,
               num_shards: int, rejected_tag: str, metrics_namespace: str):
    super().__init__()
    self._spec = spec
    self._config = config
    self._num_shards = num_shards
    self._rejected_tag = rejected_tag
    self._metrics_namespace = metrics_namespace

  def expand(self, kept):
    config = self._config
    handler = KeyedModelHandler(pair_scorer.PairScorerHandler(
        self._spec, config.batch_size))
    scored = (
        kept
        | "PreprocessPairs" >> beam.ParDo(_PreprocessFn(self._spec))
        | "ScorePairs" >> RunInference(handler)
        | "StoreScores" >> beam.Map(_with_score, config.name))
    histogram = (
        scored
        | "ScoreBins" >> beam.Map(lambda e: (e.lang, score_bin(e.score)))
        | "CountScoreBins" >> beam.combiners.Count.PerElement())
    pipeline = kept.pipeline
    if not config.filters:
      return ScoreResult(
          scored, pipeline | "NoLowScores" >> beam.Create([]),
          pipeline | "NoCutoffs" >> beam.Create([]), histogram)
    if config.keep_fraction is not None:
      fraction = config.keep_fraction
      cutoffs = (
          scored
          | "LangScores" >> beam.Map(lambda e: (e.lang, e.score))
          | "ScoreQuantiles" >> beam.ApproximateQuantiles.PerKey(
              NUM_QUANTILES)
          | "Cutoffs" >> beam.MapTuple(
              lambda lang, q: (lang, cutoff_from_quantiles(q, fraction))))
    else:
      min_score = config.min_score
      cutoffs = (
          scored
          | "Langs" >> beam.Map(lambda e: e.lang)
          | "DistinctLangs" >> beam.Distinct()
          | "Cutoffs" >> beam.Map(lambda lang: (lang, min_score)))
    filtered = scored | "FilterByScore" >> beam.ParDo(
        _FilterFn(self._num_shards, self._rejected_tag,
                  self._metrics_namespace),
        cutoffs=beam.pvalue.AsDict(cutoffs)).with_outputs(
            self._rejected_tag, main="kept")
    return ScoreResult(filtered.kept, filtered[self._rejected_tag], cutoffs,
                       histogram)
