"""Language-balanced sampling of captions for vocabulary training.

As in mT5, a sentence of the sample comes from language L with probability

    p(L) = n_L^alpha / sum_K n_K^alpha,

where n_L is the number of captions of language L in the corpus; alpha < 1
flattens the distribution towards rare languages (alpha = 0 is uniform,
alpha = 1 keeps the corpus mix). The sample holds S = min(max_sentences, N)
sentences in expectation, N being the corpus size, so every caption of L is
expected to appear r_L = p(L) * S / n_L times: rare languages are up-sampled
(r_L > 1, captions repeated) and frequent ones down-sampled (r_L < 1), which
is sampling with replacement without materialising the draws.

Each caption appears floor(r_L) times, plus once more if a hash of the seed
and its text falls below the fraction of r_L. The hash makes the sample a
function of the corpus, alpha, the cap and the seed only, independent of file
order, sharding and the runner. Identical captions get identical decisions.
"""

from collections.abc import Mapping
import hashlib
import math

import apache_beam as beam

DEFAULT_ALPHA = 0.3
# The sample-size cap: SentencePiece's own advice for large vocabularies is a
# few million to ten million sentences.
DEFAULT_MAX_SENTENCES = 10_000_000
_UNIT_HASH_BYTES = 8


def _check_alpha(alpha: float) -> None:
  if not alpha >= 0:
    raise ValueError(f"alpha must be non-negative, got {alpha}")


def _check_max_sentences(max_sentences: int) -> None:
  if max_sentences <= 0:
    raise ValueError(f"max_sentences must be positive, got {max_sentences}")


def language_weights(counts: Mapping[str, int],
                     alpha: float = DEFAULT_ALPHA) -> dict[str, float]:
  """p(L) proportional to counts[L] ** alpha, over languages with captions.

  Languages with no captions get no weight; no captions at all give {}.

  Raises:
    ValueError: if alpha or a count is negative.
  """
  _check_alpha(alpha)
  if any(n < 0 for n in counts.values()):
    raise ValueError(f"caption counts must be non-negative, got {counts}")
  powered = {lang: n**alpha for lang, n in sorted(counts.items()) if n > 0}
  total = sum(powered.values())
  return {lang: value / total for lang, value in powered.items()}


def sampling_rates(counts: Mapping[str, int], alpha: float,
                   max_sentences: int) -> dict[str, float]:
  """How many times each caption of each language appears in the sample.

  Args:
    counts: captions per language in the corpus.
    alpha: the exponent of `language_weights`.
    max_sentences: the cap S on the expected sample size; the sample is as
      large as the corpus when that is smaller.

  Returns:
    r_L = p(L) * min(max_sentences, N) / n_L for every language with
    captions: the expected number of copies of each of its captions.
  """
  _check_max_sentences(max_sentences)
  weights = language_weights(counts, alpha)
  sample_size = min(max_sentences, sum(counts.values()))
  return {lang: w * sample_size / counts[lang] for lang, w in weights.items()}


def unit_hash(text: str, seed: int) -> float:
  """A number in [0, 1) that depends on `text` and `seed` only."""
  digest = hashlib.blake2b(
      text.encode("utf-8"), digest_size=_UNIT_HASH_BYTES,
      key=seed.to_bytes(8, "little", signed=True)).digest()
  return int.from_bytes(digest, "little") / 2.0**(8 * _UNIT_HASH_BYTES)


def sample_copies(text: str, rate: float, seed: int) -> int:
  """How many copies of caption `text` go into the sample at `rate`."""
  whole = math.floor(rate)
  return whole + int(unit_hash(text, seed) < rate - whole)


class _EmitCopies(beam.DoFn):
  """(lang, text) -> that pair `sample_copies` times."""

  def __init__(self, seed: int):
    self._seed = seed

  def process(self, caption: tuple[str, str], rates: Mapping[str, float]):
    lang, text = caption
    copies = sample_copies(text, rates[lang], self._seed)
    beam.metrics.Metrics.counter("sampling", "sampled").inc(copies)
    for _ in range(copies):
      yield caption


class LanguageBalancedSample(beam.PTransform):
  """Samples (lang, text) captions with p(L) proportional to n_L^alpha.

  Input and output are PCollections of (lang, text) pairs; the output holds
  each caption `sample_copies` times (about min(max_sentences, N) pairs).
  """

  def __init__(self, alpha: float = DEFAULT_ALPHA,
               max_sentences: int = DEFAULT_MAX_SENTENCES, seed: int = 0):
    super().__init__()
    # Bad options fail here, at pipeline construction, not on a worker.
    _check_alpha(alpha)
    _check_max_sentences(max_sentences)
    self._alpha = alpha
    self._max_sentences = max_sentences
    self._seed = seed

  def expand(self, captions):
    rates = (
        captions
        | "Languages" >> beam.Map(lambda caption: caption[0])
        | "CountPerLanguage" >> beam.combiners.Count.PerElement()
        | "ToDict" >> beam.combiners.ToDict()
        | "Rates" >> beam.Map(sampling_rates, self._alpha,
                              self._max_sentences))
    return captions | "EmitCopies" >> beam.ParDo(
        _EmitCopies(self._seed), rates=beam.pvalue.AsSingleton(rates))
