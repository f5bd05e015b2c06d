"""Trains a SentencePiece vocabulary on the captions of raw web pairs.

    python -m vocabularies.train_vocab --input 'corpus/*.tar' --output vocab/en \
        --preset en32k [--vocab_size N] [Beam options]

A Beam pipeline reads the examples (`pipelines.readers`), cleans their
captions and drops those the dataset pipeline would reject for their length,
with its default thresholds (`pipelines.captions`, `pipelines.filters`),
identifies their language (`pipelines.langid`), keeps English only for
`en32k`, samples them language-balanced (`vocabularies.sampling`) and writes the
sample to a sample directory (`--sample_dir`, or a temporary one under Beam's
`--temp_location` or on local disk). SentencePiece then trains in this
process on the sorted sample, and `OUTPUT/<name>.model` and
`OUTPUT/vocab.json` are written through the file layer (`dataformat.files`,
so gs:// outputs work).

The model is a function of the corpus and the options: the sample is chosen
by hashes, sorted before training, and SentencePiece runs with a fixed number
of threads (its result depends on it) and a fixed seed.
"""

import argparse
from collections.abc import Iterable, Iterator, Mapping, Sequence
import contextlib
import dataclasses
import io
import json
import re
import sys
import tempfile
import uuid

# The pipelines package quiets Beam's import-time notices: it must load first.
import pipelines  # pylint: disable=unused-import,g-bad-import-order
import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import WorkerOptions
import sentencepiece

from dataformat import cli
from dataformat import files
from pipelines import beam_options
from pipelines import captions
from pipelines import filters
from pipelines import langid
from pipelines.readers import beam_read
from pipelines.readers import dispatch
from pipelines.readers.common import RawExample
from pipelines import pipeline_command
from pipelines.reasons import Rejection
from vocabularies import sampling
from vocabularies import vocabulary

MODEL_TYPE = "unigram"
NORMALIZATION = "nmt_nfkc"
SAMPLE_PREFIX = "sample"
SUMMARY_FILE = "summary.json"
# SentencePiece's result depends on its thread count, so it is an option with
# a fixed default rather than the machine's core count.
DEFAULT_TRAINING_THREADS = 4
_LANGID_BATCH_SIZE = 256
_METRICS_NAMESPACE = "train_vocab"
_REJECTED = "rejected"


@dataclasses.dataclass(frozen=True)
class Preset:
  """A vocabulary recipe.

  Attributes:
    name: the preset's name, also the vocabulary's default name.
    vocab_size: the number of pieces.
    character_coverage: the fraction of characters covered by pieces of their
      own; the rarest others become unk (or bytes, with byte fallback).
    byte_fallback: whether uncovered characters are spelled as UTF-8 bytes.
    languages: the languages whose captions it trains on; None for all.
  """

  name: str
  vocab_size: int
  character_coverage: float
  byte_fallback: bool
  languages: tuple[str, ...] | None


PRESETS = {
    preset.name: preset for preset in (
        Preset("en32k", 32_000, 0.9995, byte_fallback=False,
               languages=("en",)),
        Preset("multi250k", 250_000, 0.99999, byte_fallback=True,
               languages=None),
    )
}


@dataclasses.dataclass(frozen=True)
class TrainingOptions:
  """Everything a vocabulary depends on besides the corpus."""

  input_patterns: tuple[str, ...]
  output_dir: str
  preset: Preset
  vocab_size: int
  name: str
  lowercase: bool = vocabulary.DEFAULT_LOWERCASE
  alpha: float = sampling.DEFAULT_ALPHA
  max_sentences: int = sampling.DEFAULT_MAX_SENTENCES
  seed: int = 0
  num_threads: int = DEFAULT_TRAINING_THREADS
  sample_dir: str | None = None

  def __post_init__(self):
    if self.vocab_size < 1:
      raise ValueError(f"--vocab_size must be positive, got {self.vocab_size}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name):
      raise ValueError(f"--name must be letters, digits, '_', '.' or '-', "
                       f"got {self.name!r}")
    if self.num_threads < 1:
      raise ValueError(
          f"--num_threads must be positive, got {self.num_threads}")
    if not self.alpha >= 0:
      raise ValueError(f"--alpha must be non-negative, got {self.alpha}")
    if self.max_sentences < 1:
      raise ValueError(
          f"--max_sentences must be positive, got {self.max_sentences}")


class VocabularyTrainingError(ValueError):
  """The corpus cannot give the requested vocabulary.

  Attributes:
    supported_size: the largest (or, if the request was too small, the
      smallest) vocabulary size the corpus supports, when known.
  """

  def __init__(self, message: str, supported_size: int | None = None):
    super().__init__(message)
    self.supported_size = supported_size


def _progress(message: str) -> None:
  print(f"train_vocab: {message}", file=sys.stderr, flush=True)


# The Beam pipeline.


class _CleanCaption(beam.DoFn):
  """RawExample -> its clean caption, or its rejection reason (tagged)."""

  def __init__(self):
    self._config = filters.FilterConfig()

  def process(self, example: RawExample):
    try:
      text = captions.decode_caption(example.caption)
    except Rejection as rejection:
      reason = rejection.reason
    else:
      verdict = filters.caption_reject_reason(text, self._config)
      if verdict is None:
        yield text
        return
      reason, _ = verdict
    beam.metrics.Metrics.counter(_METRICS_NAMESPACE,
                                 f"rejected_{reason}").inc()
    yield beam.pvalue.TaggedOutput(_REJECTED, str(reason))


class _IdentifyLanguages(beam.DoFn):
  """A batch of captions -> (lang, caption) pairs."""

  def __init__(self):
    self._identifier = langid.LanguageIdentifier()

  def process(self, texts: list[str]):
    predictions = self._identifier.identify_batch(texts)
    for text, prediction in zip(texts, predictions):
      yield prediction.lang, text


def _count_per_key(pcoll, label: str):
  """A singleton side input: {element: count}."""
  return beam.pvalue.AsSingleton(
      pcoll
      | f"{label}Count" >> beam.combiners.Count.PerElement()
      | f"{label}ToDict" >> beam.combiners.ToDict())


def _summary_json(_, corpus: Mapping[str, int], sample: Mapping[str, int],
                  rejected: Mapping[str, int]) -> str:
  return json.dumps({"corpus_languages": corpus, "sample_languages": sample,
                     "rejected": rejected}, sort_keys=True)


def build_sample_pipeline(pipeline: beam.Pipeline, options: TrainingOptions,
                          sample_dir: str) -> None:
  """Adds read -> clean -> identify -> sample -> write to `pipeline`."""
  examples = pipeline | "Read" >> beam_read.ReadRawExamples(
      list(options.input_patterns))
  cleaned = examples.examples | "Clean" >> beam.ParDo(
      _CleanCaption()).with_outputs(_REJECTED, main="captions")
  tagged = (
      cleaned.captions
      | "Batch" >> beam.BatchElements(min_batch_size=_LANGID_BATCH_SIZE,
                                      max_batch_size=_LANGID_BATCH_SIZE)
      | "Identify" >> beam.ParDo(_IdentifyLanguages()))
  kept = tagged
  if options.preset.languages is not None:
    languages = frozenset(options.preset.languages)
    kept = tagged | "KeepLanguages" >> beam.Filter(
        lambda caption: caption[0] in languages)
  lowercase = options.lowercase
  prepared = kept | "PrepareText" >> beam.Map(
      lambda caption: (caption[0],
                       vocabulary.prepare_text(caption[1], lowercase)))
  sampled = prepared | "Sample" >> sampling.LanguageBalancedSample(
      options.alpha, options.max_sentences, options.seed)
  _ = (sampled
       | "Texts" >> beam.Values()
       | "WriteSample" >> beam.io.WriteToText(
           FileSystems.join(sample_dir, SAMPLE_PREFIX),
           file_name_suffix=".txt"))
  _ = (pipeline
       | "SummaryTrigger" >> beam.Create([None])
       | "Summary" >> beam.Map(
           _summary_json,
           corpus=_count_per_key(tagged | "CorpusLangs" >> beam.Keys(),
                                 "Corpus"),
           sample=_count_per_key(sampled | "SampleLangs" >> beam.Keys(),
                                 "Sample"),
           rejected=_count_per_key(cleaned[_REJECTED], "Rejected"))
       | "WriteSummary" >> beam.io.WriteToText(
           FileSystems.join(sample_dir, SUMMARY_FILE), num_shards=1,
           shard_name_template=""))


def _delete_sample_files(sample_dir: str) -> None:
  paths = [m.path for result in FileSystems.match(
      [FileSystems.join(sample_dir, "*")]) for m in result.metadata_list]
  if paths:
    FileSystems.delete(paths)


@contextlib.contextmanager
def sample_location(options: TrainingOptions,
                    pipeline_options: PipelineOptions) -> Iterator[str]:
  """The directory the sample goes to, emptied first.

  `options.sample_dir` is kept afterwards; otherwise a fresh directory under
  Beam's --temp_location (where Dataflow workers can write), or a local
  temporary one, is deleted on exit.
  """
  if options.sample_dir:
    _delete_sample_files(options.sample_dir)
    yield options.sample_dir
    return
  temp_location = pipeline_options.view_as(GoogleCloudOptions).temp_location
  if not temp_location:
    with tempfile.TemporaryDirectory(prefix="train_vocab-") as local:
      yield local
    return
  remote = FileSystems.join(temp_location, f"train_vocab-{uuid.uuid4().hex}")
  try:
    yield remote
  finally:
    _delete_sample_files(remote)


def write_sample(options: TrainingOptions, sample_dir: str,
                 pipeline_options: PipelineOptions
                 ) -> pipeline_command.Launched | None:
  """Runs the sampling pipeline, writing the sample to `sample_dir`.

  Returns:
    None once the sample is written; for a dry run, what was done instead.
  """
  pipeline = beam.Pipeline(runner=beam_options.runner_for(pipeline_options),
                           options=pipeline_options)
  build_sample_pipeline(pipeline, options, sample_dir)
  result = pipeline_command.run_pipeline(pipeline, pipeline_options,
                                         options.output_dir)
  return result if isinstance(result, pipeline_command.Launched) else None


def read_sample(sample_dir: str) -> tuple[list[str], dict]:
  """The sample's sentences, sorted, and the pipeline's summary."""
  summary = files.read_json(files.join(sample_dir, SUMMARY_FILE))
  sentences = []
  for path in files.glob(files.join(sample_dir, f"{SAMPLE_PREFIX}*.txt")):
    sentences.extend(
        line for line in files.read_text(path).split("\n") if line)
  sentences.sort()
  return sentences, summary


# SentencePiece training.

_TOO_LARGE_RE = re.compile(
    r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL_RE = re.compile(
    r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def sentencepiece_options(options: TrainingOptions) -> dict:
  """The SentencePiece trainer options, T5's special ids included."""
  preset = options.preset
  return {
      "model_type": MODEL_TYPE,
      "vocab_size": options.vocab_size,
      "character_coverage": preset.character_coverage,
      "byte_fallback": preset.byte_fallback,
      "normalization_rule_name": NORMALIZATION,
      "pad_id": vocabulary.PAD_PIECE_ID,
      "eos_id": vocabulary.EOS_ID,
      "unk_id": vocabulary.UNK_ID,
      "bos_id": vocabulary.BOS_ID,
      "num_threads": options.num_threads,
      # The sample is already capped: train on all of it, in its order.
      "input_sentence_size": 0,
      "shuffle_input_sentence": False,
  }


def train_sentencepiece(sentences: Iterable[str],
                        options: TrainingOptions) -> bytes:
  """Trains the model on `sentences`; returns the serialised model.

  Raises:
    VocabularyTrainingError: if the corpus supports no vocabulary of
      `options.vocab_size` pieces; the message names the size it supports.
  """
  model = io.BytesIO()
  sentencepiece.SetRandomGeneratorSeed(options.seed)
  try:
    sentencepiece.SentencePieceTrainer.Train(
        sentence_iterator=iter(sentences), model_writer=model,
        minloglevel=1, **sentencepiece_options(options))
  except RuntimeError as e:
    if match := _TOO_LARGE_RE.search(str(e)):
      largest = int(match.group(2))
      raise VocabularyTrainingError(
          f"corpus too small for --vocab_size {options.vocab_size}; the "
          f"largest size it supports is {largest}", largest) from None
    if match := _TOO_SMALL_RE.search(str(e)):
      smallest = int(match.group(2))
      raise VocabularyTrainingError(
          f"--vocab_size {options.vocab_size} is too small for the "
          f"characters of the corpus; the smallest size it supports is "
          f"{smallest}", smallest) from None
    raise
  return model.getvalue()


# The vocabulary directory.


def language_mix(counts: Mapping[str, int]) -> dict[str, dict[str, float]]:
  """{lang: {"count": n, "fraction": n / total}}, by language code."""
  total = sum(counts.values())
  return {lang: {"count": n, "fraction": round(n / total, 6)}
          for lang, n in sorted(counts.items())}


def make_card(options: TrainingOptions, model_proto: bytes,
              summary: Mapping) -> vocabulary.VocabularyCard:
  """The `vocab.json` of a freshly trained model."""
  trained = vocabulary.Vocabulary(model_proto, options.name,
                                  lowercase=options.lowercase)
  sample_counts = summary["sample_languages"]
  return vocabulary.VocabularyCard(
      name=options.name,
      model_file=options.name + vocabulary.MODEL_SUFFIX,
      size=trained.size,
      sha256=trained.sha256,
      lowercase=options.lowercase,
      normalization=NORMALIZATION,
      preset=options.preset.name,
      special_ids={"pad": vocabulary.PAD_PIECE_ID, "eos": vocabulary.EOS_ID,
                   "unk": vocabulary.UNK_ID, "bos": vocabulary.BOS_ID},
      training={
          **sentencepiece_options(options),
          "languages": (list(options.preset.languages)
                        if options.preset.languages else "all"),
          "alpha": options.alpha,
          "max_sentences": options.max_sentences,
          "seed": options.seed,
          "sentencepiece_version": sentencepiece.__version__,
      },
      sample={
          "size": sum(sample_counts.values()),
          "languages": language_mix(sample_counts),
          "corpus_captions": sum(summary["corpus_languages"].values()),
          "corpus_languages": dict(sorted(
              summary["corpus_languages"].items())),
          "rejected_captions": dict(sorted(summary["rejected"].items())),
      },
      input=[files.resolve(p) for p in options.input_patterns],
  )


def _check_sample(sentences: Sequence[str], summary: Mapping,
                  options: TrainingOptions) -> None:
  if sentences:
    return
  corpus = summary["corpus_languages"]
  if not corpus:
    rejected = ", ".join(f"{reason} {n}"
                         for reason, n in sorted(summary["rejected"].items()))
    raise VocabularyTrainingError(
        "the input has no usable captions"
        + (f" (rejected: {rejected})" if rejected else ""))
  found = ", ".join(f"{lang} {n}" for lang, n in sorted(
      corpus.items(), key=lambda kv: (-kv[1], kv[0])))
  raise VocabularyTrainingError(
      f"the input has no captions in {', '.join(options.preset.languages)} "
      f"for preset {options.preset.name} (found: {found})")


def train_vocabulary(
    options: TrainingOptions, beam_args: Sequence[str] = ()
) -> vocabulary.VocabularyCard | pipeline_command.Launched:
  """Samples the corpus, trains the model and writes the vocabulary directory.

  Returns:
    The written vocabulary's card; for a dry run of the sampling pipeline
    (`--dry_run True` on a remote runner), what was done instead.

  Raises:
    ValueError: for a flag in `beam_args` that Beam does not know or a
      template location, if no input file matches, or if a matched file has
      an unknown format.
    VocabularyTrainingError: if the input has no usable captions or cannot
      give a vocabulary of the requested size.
  """
  pipeline_options = beam_options.from_flags(beam_args,
                                             save_main_session=False)
  if pipeline_options.view_as(GoogleCloudOptions).template_location:
    raise ValueError("--template_location: the vocabulary is trained here "
                     "after the sampling job has run, so train_vocab cannot "
                     "be staged as a template")
  beam_options.quiet_workers(pipeline_options.view_as(WorkerOptions))
  dispatch.match_input_files(list(options.input_patterns))
  with sample_location(options, pipeline_options) as sample_dir:
    _progress(f"sampling captions of {' '.join(options.input_patterns)} "
              f"(preset {options.preset.name}, alpha {options.alpha}) "
              f"into {sample_dir}")
    launched = write_sample(options, sample_dir, pipeline_options)
    if launched is not None:
      return launched
    sentences, summary = read_sample(sample_dir)
    _progress(f"sample of {len(sentences)} sentences from "
              f"{sum(summary['corpus_languages'].values())} captions "
              f"({sum(summary['rejected'].values())} rejected); languages: "
              f"{len(summary['sample_languages'])}")
    _check_sample(sentences, summary, options)
    _progress(f"training a {MODEL_TYPE} model of {options.vocab_size} "
              f"pieces ({options.num_threads} threads)")
    model_proto = train_sentencepiece(sentences, options)
  card = make_card(options, model_proto, summary)
  files.write_bytes(files.join(options.output_dir, card.model_file),
                    model_proto)
  files.write_text(files.join(options.output_dir, vocabulary.VOCAB_JSON),
                   card.to_json())
  _progress(f"wrote {options.output_dir}: {card.model_file} "
            f"({card.size} pieces, sha256 {card.sha256[:16]}...)")
  return card


# The command line.


def _parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog="python -m vocabularies.train_vocab",
      description=(
          "Train a SentencePiece (unigram) vocabulary on the captions of raw "
          "image-text pairs and write a vocabulary directory (<name>.model + "
          "vocab.json). Flags not listed here are Beam pipeline options "
          "(e.g. --runner DataflowRunner --project P --region R "
          "--temp_location gs://...); the default runner is local."))
  parser.add_argument(
      "--input", required=True, nargs="+", metavar="GLOB",
      help="input files (webdataset .tar, .parquet, .tfrecord, .jsonl; "
           "local or gs://); several globs may follow")
  parser.add_argument(
      "--output", required=True, metavar="DIR",
      help="the vocabulary directory to write (local or gs://)")
  parser.add_argument(
      "--preset", required=True, choices=sorted(PRESETS),
      help="en32k: English captions only, 32,000 pieces, character coverage "
           "0.9995; multi250k: all languages sampled with p(L) ~ n_L^alpha, "
           "250,000 pieces, character coverage 0.99999, byte fallback")
  parser.add_argument(
      "--languages", metavar="CODES",
      help="comma-separated language codes whose captions it trains on "
           "(e.g. en,mi; nb, tl, iw are read as no, fil, he), or 'all' "
           "(default: the preset's: en for en32k, all for multi250k)")
  parser.add_argument(
      "--vocab_size", type=int, metavar="N",
      help="number of pieces, overriding the preset's (for small corpora)")
  parser.add_argument(
      "--name",
      help="the vocabulary's name, used in dataset records as tokens/<name> "
           "(default: the preset's name, whatever --vocab_size)")
  parser.add_argument(
      "--lowercase", action=argparse.BooleanOptionalAction,
      default=vocabulary.DEFAULT_LOWERCASE,
      help="lowercase captions before training and encoding, as big_vision's "
           "SigLIP does (default: on)")
  parser.add_argument(
      "--alpha", type=float, default=sampling.DEFAULT_ALPHA,
      help="language-balancing exponent: p(L) ~ n_L^alpha "
           "(default: %(default)s, as mT5)")
  parser.add_argument(
      "--max_sentences", type=int, default=sampling.DEFAULT_MAX_SENTENCES,
      metavar="N",
      help="cap on the (expected) number of sampled sentences "
           "(default: %(default)s)")
  parser.add_argument(
      "--seed", type=int, default=0,
      help="seed of the sampling hash and of SentencePiece (default: 0)")
  parser.add_argument(
      "--num_threads", type=int, default=DEFAULT_TRAINING_THREADS,
      help="SentencePiece training threads; the model depends on it, so keep "
           "it fixed for reproducible vocabularies (default: %(default)s)")
  parser.add_argument(
      "--sample_dir", metavar="DIR",
      help="write the training sample (sample-*.txt, summary.json) here and "
           "keep it (default: a temporary directory under Beam's "
           "--temp_location, or a local one, deleted afterwards)")
  return parser


def parse_args(
    argv: Sequence[str] | None) -> tuple[TrainingOptions, list[str]]:
  """The training options and the Beam pipeline arguments of `argv`.

  Raises:
    ValueError: for option values out of range.
  """
  args, beam_args = _parser().parse_known_args(argv)
  preset = PRESETS[args.preset]
  if args.languages is not None:
    languages = filters.parse_languages(args.languages)
    langid.LanguageIdentifier().check_outputs(languages)
    preset = dataclasses.replace(preset, languages=(
        None if languages is None else tuple(sorted(languages))))
  options = TrainingOptions(
      input_patterns=tuple(args.input),
      output_dir=args.output,
      preset=preset,
      vocab_size=preset.vocab_size if args.vocab_size is None
      else args.vocab_size,
      name=args.name or preset.name,
      lowercase=args.lowercase,
      alpha=args.alpha,
      max_sentences=args.max_sentences,
      seed=args.seed,
      num_threads=args.num_threads,
      sample_dir=args.sample_dir,
  )
  return options, beam_args


def main(argv: Sequence[str] | None = None) -> int:
  try:
    options, beam_args = parse_args(argv)
    result = train_vocabulary(options, beam_args)
  except ValueError as e:
    return cli.fail(e)
  if isinstance(result, pipeline_command.Launched):
    print(result.summary)
  return 0


if __name__ == "__main__":
  sys.exit(main())
