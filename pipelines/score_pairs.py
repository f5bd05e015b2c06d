"""The build's Score stage: kept pairs scored by a frozen two-tower model, then
cut by `score_filter`'s rules.

`ScoreAndFilter` preprocesses each kept example's stored image and caption
as the model reads them, scores the pairs under RunInference
(`pair_scorer.PairScorerHandler`, one model per worker), stores the score in
the record, and, where a cut-off is asked for, computes it per language (a
side input) and rejects the pairs below it. Importing this module loads JAX
and the model code: `pipelines.build_dataset` imports it only when a build
scores.
"""

from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler
from apache_beam.ml.inference.base import RunInference
import numpy as np

from dataformat import records
from dataformat import shards as shards_lib
from pipelines import pair_scorer
from pipelines.reasons import Reason
from pipelines.score_filter import NUM_QUANTILES
from pipelines.score_filter import ScoreFilterConfig
from pipelines.score_filter import cutoff_from_quantiles
from pipelines.score_filter import score_bin
from pipelines.score_filter import score_reject_reason


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
