"""Language-balanced sampling: weights, rates and draws against the formula."""

import collections

import apache_beam as beam
from apache_beam.testing import util as beam_testing
import pytest

from vocabularies import sampling

COUNTS = {"en": 20_000, "de": 2_000, "sw": 200}


def _synthetic_corpus(counts):
  return [(lang, f"{lang} caption number {i}")
          for lang, n in counts.items() for i in range(n)]


def test_weights_follow_power_law():
  weights = sampling.language_weights(COUNTS, alpha=0.3)
  total = 20_000**0.3 + 2_000**0.3 + 200**0.3
  assert weights == pytest.approx(
      {lang: n**0.3 / total for lang, n in COUNTS.items()})
  assert sum(weights.values()) == pytest.approx(1.0)


def test_alpha_zero_is_uniform_and_one_is_the_corpus_mix():
  assert sampling.language_weights(COUNTS, alpha=0.0) == pytest.approx(
      {"en": 1 / 3, "de": 1 / 3, "sw": 1 / 3})
  n = sum(COUNTS.values())
  assert sampling.language_weights(COUNTS, alpha=1.0) == pytest.approx(
      {lang: c / n for lang, c in COUNTS.items()})


def test_languages_without_captions_get_no_weight():
  assert sampling.language_weights({"en": 5, "fr": 0}) == {"en": 1.0}
  assert sampling.language_weights({}) == {}


def test_rates_give_the_weights_times_the_capped_sample_size():
  cap = 5_000
  rates = sampling.sampling_rates(COUNTS, alpha=0.3, max_sentences=cap)
  weights = sampling.language_weights(COUNTS, alpha=0.3)
  for lang, n in COUNTS.items():
    assert rates[lang] * n == pytest.approx(weights[lang] * cap)
  assert rates["en"] < 1 < rates["sw"]


def test_sample_is_as_large_as_the_corpus_below_the_cap():
  rates = sampling.sampling_rates(COUNTS, alpha=0.3, max_sentences=10**9)
  expected_size = sum(rates[lang] * n for lang, n in COUNTS.items())
  assert expected_size == pytest.approx(sum(COUNTS.values()))


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0, 2.75])
def test_copies_realise_the_rate(rate):
  texts = [f"caption {i}" for i in range(20_000)]
  copies = [sampling.sample_copies(t, rate, seed=0) for t in texts]
  assert set(copies) <= {int(rate), int(rate) + 1}
  assert sum(copies) / len(texts) == pytest.approx(rate, abs=0.01)


def test_copies_depend_on_text_and_seed_only():
  texts = [f"caption {i}" for i in range(1_000)]
  first = [sampling.sample_copies(t, 0.5, seed=7) for t in texts]
  assert first == [sampling.sample_copies(t, 0.5, seed=7) for t in texts]
  assert first != [sampling.sample_copies(t, 0.5, seed=8) for t in texts]


def test_unit_hash_in_unit_interval():
  values = [sampling.unit_hash(str(i), seed=-3) for i in range(1_000)]
  assert all(0.0 <= v < 1.0 for v in values)
  assert 0.45 < sum(values) / len(values) < 0.55


def test_realised_language_mix_matches_formula():
  cap = 5_000
  rates = sampling.sampling_rates(COUNTS, alpha=0.3, max_sentences=cap)
  sampled = collections.Counter()
  for lang, text in _synthetic_corpus(COUNTS):
    sampled[lang] += sampling.sample_copies(text, rates[lang], seed=0)
  weights = sampling.language_weights(COUNTS, alpha=0.3)
  for lang in COUNTS:
    assert sampled[lang] == pytest.approx(weights[lang] * cap, rel=0.05)


@pytest.mark.parametrize("call", [
    lambda: sampling.language_weights(COUNTS, alpha=-0.1),
    lambda: sampling.language_weights({"en": -1}),
    lambda: sampling.sampling_rates(COUNTS, 0.3, max_sentences=0),
    lambda: sampling.LanguageBalancedSample(alpha=-1.0),
])
def test_bad_options_rejected(call):
  with pytest.raises(ValueError):
    call()


def test_beam_transform_matches_pure_functions():
  counts = {"en": 300, "fi": 30, "mi": 3}
  corpus = _synthetic_corpus(counts)
  rates = sampling.sampling_rates(counts, alpha=0.3, max_sentences=200)
  expected = [c for c in corpus
              for _ in range(sampling.sample_copies(c[1], rates[c[0]], 5))]
  with beam.Pipeline() as pipeline:
    sampled = (
        pipeline
        | beam.Create(corpus)
        | sampling.LanguageBalancedSample(alpha=0.3, max_sentences=200,
                                          seed=5))
    beam_testing.assert_that(sampled, beam_testing.equal_to(expected))


def test_beam_transform_on_empty_input_is_empty():
  with beam.Pipeline() as pipeline:
    sampled = (pipeline | beam.Create([], reshuffle=False)
               | sampling.LanguageBalancedSample())
    beam_testing.assert_that(sampled, beam_testing.is_empty())
