"""Caption encoding throughput of trained vocabularies.

    python -m benchmarks.tokenizer_bench [--num_examples N] [--repeats R]
        [--vocab PATH ...]

Generates the demo corpus, trains an `en32k` and a `multi250k` vocabulary on
it at the largest sizes the corpus supports (asking SentencePiece for the
preset's size and retrying at the size it names), or loads the vocabularies
given with --vocab (e.g. the released T5 c4_en / mc4 models), then encodes
the corpus's captions that the dataset pipeline keeps (truncated to 64
tokens, as it stores them) three ways:

- `encode`, one caption per call;
- `encode_batch` on a 1-thread pool;
- `encode_batch` on a 2-thread pool.

Each repeat runs the three ways back to back, so that load from other work
on the machine falls on all of them alike. Reports the median captions/s
over the repeats, and each way's speed-up over `encode`.
"""

import argparse
from collections.abc import Callable, Mapping, Sequence
import dataclasses
import statistics
import sys
import tempfile
import time

from demo import corpus as demo_corpus
from pipelines import filters
from pipelines.captions import decode_caption
from pipelines.readers import dispatch
from pipelines.reasons import Rejection
from vocabularies import train_vocab
from vocabularies.vocabulary import Vocabulary

MAX_LEN = 64
_THREAD_COUNTS = (1, 2)


@dataclasses.dataclass(frozen=True)
class Measurement:
  vocabulary: str
  vocab_size: int
  method: str
  captions_per_second: float
  speedup: float


def kept_captions(corpus_dir: str) -> list[str]:
  """The corpus's clean captions that the dataset pipeline's filters keep."""
  config = filters.FilterConfig()
  texts = []
  for path in dispatch.match_input_files(f"{corpus_dir}/*.tar"):
    for example in dispatch.read_examples(path):
      try:
        text = decode_caption(example.caption)
      except Rejection:
        continue
      if filters.caption_reject_reason(text, config) is None:
        texts.append(text)
  return texts


def train_largest(corpus_dir: str, preset: train_vocab.Preset,
                  output_dir: str) -> None:
  """Trains `preset` at its size, or at the largest the corpus supports."""

  def options(vocab_size: int) -> train_vocab.TrainingOptions:
    return train_vocab.TrainingOptions(
        input_patterns=(f"{corpus_dir}/*.tar",), output_dir=output_dir,
        preset=preset, vocab_size=vocab_size, name=preset.name)

  try:
    train_vocab.train_vocabulary(options(preset.vocab_size))
  except train_vocab.VocabularyTrainingError as e:
    if e.supported_size is None or e.supported_size >= preset.vocab_size:
      raise
    train_vocab.train_vocabulary(options(e.supported_size))


def median_rates(runs: Mapping[str, Callable[[], object]], count: int,
                 repeats: int) -> dict[str, float]:
  """Median items per second of each run (each handles `count` items).

  The runs are interleaved: every repeat times each of them once.
  """
  rates = {name: [] for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      start = time.perf_counter()
      run()
      rates[name].append(count / (time.perf_counter() - start))
  return {name: statistics.median(values) for name, values in rates.items()}


def measure(vocab_path: str, label: str, texts: Sequence[str],
            repeats: int) -> list[Measurement]:
  """Encoding throughput of the vocabulary at `vocab_path`, three ways."""
  single = Vocabulary.load(vocab_path)
  runs = {"encode (one at a time)":
              lambda: [single.encode(t, MAX_LEN) for t in texts]}
  for threads in _THREAD_COUNTS:
    batched = Vocabulary.load(vocab_path, num_threads=threads)
    runs[f"encode_batch ({threads} thread{'s' if threads > 1 else ''})"] = (
        lambda v=batched: v.encode_batch(texts, MAX_LEN))
  rates = median_rates(runs, len(texts), repeats)
  baseline = next(iter(rates.values()))
  return [Measurement(label, single.size, name, rate, rate / baseline)
          for name, rate in rates.items()]


def main(argv: Sequence[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m benchmarks.tokenizer_bench", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--num_examples", type=int, default=2000,
                      help="demo corpus size (default: %(default)s)")
  parser.add_argument("--repeats", type=int, default=15,
                      help="timed runs per method; the median is reported "
                           "(default: %(default)s)")
  parser.add_argument("--vocab", action="append", default=[], metavar="PATH",
                      help="benchmark this vocabulary directory or .model "
                           "file instead of training on the demo corpus "
                           "(repeatable)")
  args = parser.parse_args(argv)
  results = []
  with tempfile.TemporaryDirectory() as work:
    corpus_dir = f"{work}/corpus"
    demo_corpus.generate_corpus(corpus_dir, num_examples=args.num_examples,
                                seed=0)
    texts = kept_captions(corpus_dir)
    print(f"{len(texts)} kept captions from {args.num_examples} examples",
          file=sys.stderr)
    vocab_paths = {path: path for path in args.vocab}
    if not vocab_paths:
      for preset in train_vocab.PRESETS.values():
        vocab_paths[preset.name] = f"{work}/{preset.name}"
        train_largest(corpus_dir, preset, vocab_paths[preset.name])
    for label, path in vocab_paths.items():
      results.extend(measure(path, label, texts, args.repeats))
  print(f"| vocabulary | size | method | captions/s (median of "
        f"{args.repeats}) | vs encode |")
  print("|---|---:|---|---:|---:|")
  for m in results:
    print(f"| {m.vocabulary} | {m.vocab_size} | {m.method} | "
          f"{m.captions_per_second:,.0f} | {m.speedup:.2f}x |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
