"""Builds a training dataset from raw web image-text pairs, as a Beam pipeline.

  python -m pipelines.build_dataset --input 'corpus/*.tar' --output data/ \\
      --vocab vocabs/en32k --vocab vocabs/multi250k [options] [Beam options]

The pipeline is a chain of named transforms:

  Read          input files -> raw examples (and damaged-file reports)
  Process       decode and validate, filter, tag the language, tokenize,
                resize and re-encode (`process.process_batch`, in batches)
  Deduplicate   group kept examples by stored-pixel hash: block-listed
                images and all but the smallest key of each hash are dropped
  WriteShards   group by shard (stable hash of the key), sort by key, write
                ArrayRecord shards and the rejected examples of each shard
  Finalize      check read == kept + rejected, write rejected.jsonl,
                stats.png, manifest.json, and COMPLETED last

The output depends only on the input and the options: reruns, and runs with
any number of workers, give byte-identical directories. Without `--runner`
(or with `--runner DirectRunner`) it runs on Beam's local FnApiRunner, which
needs no download; `--direct_num_workers N --direct_running_mode
multi_processing` spreads the work over N processes. Every other Beam option
passes through, e.g. to run on Dataflow (see README.md).
"""

import argparse
import collections
from collections.abc import Iterable, Sequence
import dataclasses
import logging
import sys
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import WorkerOptions

from dataformat import files
from dataformat import records
from pipelines import beam_options
from pipelines import blocklist
from pipelines import filters
from pipelines import langid
from pipelines import pipeline_command
from pipelines import process
from pipelines import sinks
from pipelines.readers import beam_read
from pipelines.readers import dispatch
from pipelines.readers.common import RawExample
from pipelines.reasons import Reason
from pipelines.reasons import Rejection
from tokenizers.vocabulary import Vocabulary

METRICS_NAMESPACE = "build_dataset"
DEFAULT_NUM_SHARDS = 16
DEFAULT_SPLIT = "train"
# Examples per `process_batch` call: enough to share the language
# identifier's and tokenizers' per-call work, small enough to bound memory.
BATCH_SIZE = 32
PROGRESS_EVERY = 1000
_REJECTED_TAG = "rejected"

_LOG = logging.getLogger(__name__)


class KeptExample(NamedTuple):
  """A processed example on its way to deduplication and its shard."""

  key: str
  source: str
  image_sha256: str
  lang: str
  caption_chars: int
  original_height: int
  original_width: int
  record: bytes


class ShardResult(NamedTuple):
  """What writing one shard produced."""

  index: int
  info: sinks.ShardInfo
  rejected: dict[str, int]
  stats: sinks.DatasetStats


def kept_example(record: records.Record) -> KeptExample:
  """The serialised record with the fields the later stages group by."""
  return KeptExample(
      key=record.key, source=record.source, image_sha256=record.image_sha256,
      lang=record.lang, caption_chars=len(record.text),
      original_height=record.image_original_height,
      original_width=record.image_original_width,
      record=records.serialize_record(record))


def set_level_rejections(image_sha256: str, keys: Iterable[str],
                         blocklisted: bool) -> list[tuple[str, Reason, str]]:
  """The examples sharing one decoded image that must go, and why.

  A block-listed image drops every example that has it. Otherwise the example
  with the smallest key keeps the image and the others are duplicates. Keys
  are unique in well-formed input; a key seen twice is never a duplicate of
  itself.

  Returns:
    (key, reason, detail) for each dropped example, sorted by key.
  """
  keys = sorted(keys)
  if blocklisted:
    return [(k, Reason.BLOCKLISTED_IMAGE, f"pixel sha256 {image_sha256}")
            for k in keys]
  return [(k, Reason.DUPLICATE_IMAGE, f"duplicate of {keys[0]}")
          for k in keys[1:] if k != keys[0]]


def split_shard(
    kept: Iterable[KeptExample], rejected: Iterable[sinks.RejectedExample],
    dropped: Iterable[tuple[str, str, str]],
) -> tuple[list[KeptExample], list[sinks.RejectedExample]]:
  """Applies set-level drops to one shard's examples.

  Args:
    kept: the examples that passed the per-example checks.
    rejected: the examples that failed them.
    dropped: (key, reason, detail) of kept examples to reject after all.

  Returns:
    The examples to write, sorted by key (then record bytes, so that even
    repeated keys have one order), and all rejected examples.
  """
  dropped = {key: (reason, detail) for key, reason, detail in dropped}
  written, rejected = [], list(rejected)
  for example in kept:
    if example.key in dropped:
      reason, detail = dropped[example.key]
      rejected.append(sinks.RejectedExample(example.key, example.source,
                                            str(reason), detail))
    else:
      written.append(example)
  written.sort(key=lambda e: (e.key, e.record))
  return written, rejected


class _ProcessFn(beam.DoFn):
  """Batches of raw examples -> KeptExamples, and (shard, RejectedExample)s."""

  def __init__(self, config: process.ProcessConfig,
               identifier: langid.LanguageIdentifier,
               vocabularies: Sequence[Vocabulary], num_shards: int):
    self._config = config
    self._identifier = identifier
    self._vocabularies = list(vocabularies)
    self._num_shards = num_shards
    self._processed = beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                   "processed")
    self._passed = beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                "passed_example_checks")
    self._rejected = {r: beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                      f"rejected_{r}")
                      for r in Reason}
    self._count = 0

  def setup(self):
    # Loads the language model now rather than on the first example.
    self._identifier.identify("warm up")

  def process(self, batch: list[RawExample]):
    results = process.process_batch(batch, self._config, self._identifier,
                                    self._vocabularies)
    for raw, result in zip(batch, results):
      self._processed.inc()
      if isinstance(result, Rejection):
        self._rejected[result.reason].inc()
        yield beam.pvalue.TaggedOutput(_REJECTED_TAG, (
            sinks.shard_index(raw.key, self._num_shards),
            sinks.RejectedExample(raw.key, raw.source, str(result.reason),
                                  result.detail)))
      else:
        self._passed.inc()
        yield kept_example(result)
    before, self._count = self._count, self._count + len(batch)
    if before // PROGRESS_EVERY != self._count // PROGRESS_EVERY:
      _LOG.info("processed %d examples in this worker", self._count)


class _SetLevelRejectionsFn(beam.DoFn):
  """(image hash, {keys, blocked}) -> (shard, (key, reason, detail))s."""

  def __init__(self, num_shards: int):
    self._num_shards = num_shards
    self._rejected = {r: beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                      f"rejected_{r}")
                      for r in (Reason.BLOCKLISTED_IMAGE,
                                Reason.DUPLICATE_IMAGE)}

  def process(self, element):
    image_sha256, grouped = element
    keys = list(grouped["keys"])
    if not keys:
      return
    for key, reason, detail in set_level_rejections(
        image_sha256, keys, bool(list(grouped["blocked"]))):
      self._rejected[reason].inc()
      yield sinks.shard_index(key, self._num_shards), (key, reason, detail)


class WriteShardFn(beam.DoFn):
  """(shard, grouped examples) -> ShardResult, writing the shard's files."""

  def __init__(self, output_dir: str, split: str, num_shards: int):
    self._output_dir = output_dir
    self._split = split
    self._num_shards = num_shards
    self._kept = beam.metrics.Metrics.counter(METRICS_NAMESPACE, "kept")
    self._shards = beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                "shards_written")

  def process(self, element):
    index, grouped = element
    written, rejected = split_shard(grouped["kept"], grouped["rejected"],
                                    grouped["dropped"])
    info = sinks.write_array_record(
        FileSystems.join(self._output_dir, sinks.shard_name(
            self._split, index, self._num_shards)),
        (e.record for e in written))
    sinks.write_rejected_part(
        FileSystems.join(self._output_dir,
                         sinks.rejected_part_name(index, self._num_shards)),
        rejected)
    stats = sinks.DatasetStats()
    for e in written:
      stats.add(e.lang, e.caption_chars, e.original_height, e.original_width)
    self._kept.inc(info.count)
    self._shards.inc()
    yield ShardResult(index, info,
                      dict(collections.Counter(r.reason for r in rejected)),
                      stats)


class FinalizeFn(beam.DoFn):
  """Checks the counts and writes rejected.jsonl, stats, manifest, COMPLETED."""

  def __init__(self, output_dir: str, split: str, num_shards: int,
               input_file_count: int, manifest_fields: dict[str, Any]):
    self._output_dir = output_dir
    self._split = split
    self._num_shards = num_shards
    self._input_file_count = input_file_count
    self._manifest_fields = manifest_fields

  def process(self, unused_element, shards, read, file_errors):
    shards = sorted(shards, key=lambda s: s.index)
    if [s.index for s in shards] != list(range(self._num_shards)):
      raise RuntimeError(f"expected {self._num_shards} shards, got indices "
                         f"{[s.index for s in shards]}")
    kept = sum(s.info.count for s in shards)
    rejected = collections.Counter()
    stats = sinks.DatasetStats()
    for shard in shards:
      rejected.update(shard.rejected)
      stats.merge(shard.stats)
    if read != kept + sum(rejected.values()):
      raise RuntimeError(
          f"examples lost: read {read} != kept {kept} + rejected "
          f"{sum(rejected.values())} ({dict(rejected)})")
    join = lambda name: FileSystems.join(self._output_dir, name)
    sinks.concatenate(
        [join(sinks.rejected_part_name(i, self._num_shards))
         for i in range(self._num_shards)], join(sinks.REJECTED))
    sinks.remove_rejected_parts(self._output_dir)
    sinks.plot_stats(stats, join(sinks.STATS_PLOT),
                     f"{self._split}: {kept} examples")
    manifest = {
        "schema_version": records.SCHEMA_VERSION,
        "split": self._split,
        "counts": {"read": read, "kept": kept,
                   "rejected": sinks.rejected_counts(rejected)},
        "shards": [dataclasses.asdict(s.info) for s in shards],
        "rejected_file": {"file": sinks.REJECTED,
                          "count": sum(rejected.values()),
                          "sha256": sinks.file_sha256(join(sinks.REJECTED))},
        "stats_plot": sinks.STATS_PLOT,
        "languages": stats.language_histogram(),
        **self._manifest_fields,
        "input_files": {
            "count": self._input_file_count,
            "corrupt": [{"file": e.source, "error": e.message}
                        for e in sorted(file_errors)],
        },
    }
    sinks.write_json(join(sinks.MANIFEST), manifest)
    sinks.write_completed(self._output_dir)
    yield manifest


class BuildDataset(beam.PTransform):
  """The whole build, from a pipeline's start to the finished directory."""

  def __init__(self, *, inputs: Sequence[str], output_dir: str,
               config: process.ProcessConfig,
               identifier: langid.LanguageIdentifier,
               vocabularies: Sequence[Vocabulary],
               blocked_hashes: Iterable[str], num_shards: int, split: str,
               manifest_fields: dict[str, Any]):
    super().__init__()
    self._inputs = dispatch.match_input_files(inputs)
    self._output_dir = output_dir
    self._config = config
    self._identifier = identifier
    self._vocabularies = list(vocabularies)
    self._blocked_hashes = sorted(blocked_hashes)
    self._num_shards = num_shards
    self._split = split
    self._manifest_fields = manifest_fields

  def expand(self, pbegin):
    n = self._num_shards
    read = pbegin | "Read" >> beam_read.ReadRawExamples(self._inputs)
    examples = read[beam_read.EXAMPLES_TAG]
    processed = (
        examples
        | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE,
                                        max_batch_size=BATCH_SIZE)
        | "Process" >> beam.ParDo(_ProcessFn(
            self._config, self._identifier, self._vocabularies,
            n)).with_outputs(_REJECTED_TAG, main="kept"))
    kept = processed.kept
    dropped = (
        {
            "keys": kept | "KeyByImageHash" >> beam.Map(
                lambda e: (e.image_sha256, e.key)),
            "blocked": (pbegin
                        | "Blocklist" >> beam.Create(self._blocked_hashes)
                        | "KeyBlocked" >> beam.Map(lambda h: (h, True))),
        }
        | "GroupByImageHash" >> beam.CoGroupByKey()
        | "Deduplicate" >> beam.ParDo(_SetLevelRejectionsFn(n)))
    shards = (
        {
            "kept": kept | "KeyByShard" >> beam.Map(
                lambda e: (sinks.shard_index(e.key, n), e)),
            "rejected": processed[_REJECTED_TAG],
            "dropped": dropped,
            "all": (pbegin
                    | "ShardIndices" >> beam.Create(range(n))
                    | "KeyShardIndices" >> beam.Map(lambda i: (i, None))),
        }
        | "GroupByShard" >> beam.CoGroupByKey()
        | "WriteShards" >> beam.ParDo(
            WriteShardFn(self._output_dir, self._split, n)))
    return (
        pbegin
        | "FinalizeTrigger" >> beam.Create([None])
        | "Finalize" >> beam.ParDo(
            FinalizeFn(self._output_dir, self._split, n, len(self._inputs),
                       self._manifest_fields),
            shards=beam.pvalue.AsList(shards),
            read=beam.pvalue.AsSingleton(
                examples | "CountRead" >> beam.combiners.Count.Globally()),
            file_errors=beam.pvalue.AsList(read[beam_read.FILE_ERRORS_TAG])))


def _parser() -> argparse.ArgumentParser:
  defaults = process.ProcessConfig()
  thresholds = filters.FilterConfig()
  parser = argparse.ArgumentParser(
      prog="python -m pipelines.build_dataset",
      description="Build a training dataset (ArrayRecord shards, manifest, "
      "rejected examples, stats) from raw image-text pairs with Apache Beam. "
      "Flags not listed here are Beam pipeline options (e.g. --runner, "
      "--direct_num_workers, --direct_running_mode, --project, --region, "
      "--temp_location, --setup_file).",
      epilog="Without --runner (or with --runner DirectRunner) the pipeline "
      "runs locally on Beam's FnApiRunner, with no download; add "
      "--direct_num_workers N --direct_running_mode multi_processing to use "
      "N processes. Outputs are byte-identical whatever the runner and "
      "worker count.",
      allow_abbrev=False,
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  io = parser.add_argument_group("input and output")
  io.add_argument("--input", action="append", required=True, metavar="GLOB",
                  default=argparse.SUPPRESS,
                  help="input files: webdataset .tar, .parquet, .tfrecord, "
                  ".jsonl (optionally .gz), local or gs://; repeatable")
  io.add_argument("--output", required=True, metavar="DIR",
                  default=argparse.SUPPRESS,
                  help="the dataset directory to write (local or gs://)")
  io.add_argument("--vocab", action="append", default=[], metavar="DIR",
                  help="a vocabulary directory (or SentencePiece .model) to "
                  "tokenize captions with, stored as tokens/<name>; "
                  "repeatable")
  io.add_argument("--num_shards", type=int, default=DEFAULT_NUM_SHARDS,
                  metavar="N",
                  help="number of ArrayRecord shards (choose so that a shard "
                  "fits in a worker's memory, e.g. <= 1 GB)")
  io.add_argument("--split", default=DEFAULT_SPLIT, metavar="NAME",
                  help="the split name in shard file names")
  io.add_argument("--overwrite", action="store_true",
                  help="replace the dataset in --output, completed or left "
                  "incomplete by an interrupted build")
  io.add_argument("--blocklist", action="append", default=[], metavar="PATH",
                  help="images to exclude, e.g. eval images: a file of "
                  "stored-pixel SHA-256 lines made at this --image_size "
                  "(python -m pipelines.blocklist) or a directory of images; "
                  "repeatable")
  image = parser.add_argument_group("images")
  image.add_argument("--image_size", type=int, default=defaults.image_size,
                     metavar="PX",
                     help="stored images' shorter side is downsized to this "
                     "many pixels (aspect kept, never upsampled)")
  image.add_argument("--jpeg_quality", type=int,
                     default=defaults.jpeg_quality, metavar="Q",
                     help="JPEG quality of the stored images")
  image.add_argument("--max_image_pixels", type=int,
                     default=defaults.max_image_pixels, metavar="N",
                     help="images with more pixels are rejected as "
                     "decompression bombs")
  image.add_argument("--min_image_side", type=int,
                     default=thresholds.min_image_side, metavar="PX",
                     help="reject images whose shorter side is smaller")
  image.add_argument("--max_aspect_ratio", type=float,
                     default=thresholds.max_aspect_ratio, metavar="R",
                     help="reject images whose longer side is more than this "
                     "many times the shorter")
  text = parser.add_argument_group("captions and languages")
  text.add_argument("--min_caption_chars", type=int,
                    default=thresholds.min_caption_chars, metavar="N",
                    help="reject captions with fewer characters")
  text.add_argument("--max_caption_chars", type=int,
                    default=thresholds.max_caption_chars, metavar="N",
                    help="reject captions with more characters")
  text.add_argument("--min_caption_words", type=int,
                    default=thresholds.min_caption_words, metavar="N",
                    help="reject captions with fewer words (scripts without "
                    "spaces count 2 Han/kana or 4 Thai/Lao/Khmer/Myanmar "
                    "characters as a word)")
  text.add_argument("--max_caption_words", type=int,
                    default=thresholds.max_caption_words, metavar="N",
                    help="reject captions with more words")
  text.add_argument("--max_tokens", type=int, default=defaults.max_tokens,
                    metavar="N",
                    help="stored token lists are cut to this length, EOS kept "
                    "last")
  text.add_argument("--languages", default="all", metavar="CODES",
                    help="comma-separated language codes to keep (e.g. "
                    "en,de,mi,und; nb, tl, iw are read as no, fil, he); "
                    "'all' keeps every language")
  text.add_argument("--langid_backend", choices=langid.BACKENDS,
                    default=langid.DEFAULT_BACKEND,
                    help="language identifier: 'cascade' (default: a fast "
                    "pass, then lingua within groups of look-alike "
                    "languages), 'fast' (the fast pass alone) or "
                    "'langdetect' (seeded reference); all deterministic")
  text.add_argument("--langid_min_score", type=float,
                    default=langid.DEFAULT_MIN_SCORE, metavar="S",
                    help="language predictions scoring lower become 'und'")
  parser.add_argument("--no_wait", action="store_true",
                      help="with a remote runner (e.g. DataflowRunner), "
                      "return once the job is submitted instead of waiting "
                      "for it to finish; the summary names the job")
  parser.add_argument("--verbose", action="store_true",
                      help="log Beam's progress and show tracebacks")
  return parser


def load_vocabularies(paths: Sequence[str]) -> list[Vocabulary]:
  """Loads vocabularies; their names (the record fields) must differ.

  Raises:
    ValueError: if a vocabulary cannot be loaded or two share a name.
  """
  vocabularies = [Vocabulary.load(p) for p in paths]
  names = [v.name for v in vocabularies]
  if len(set(names)) != len(names):
    raise ValueError(f"vocabulary names must differ, got {names}")
  return vocabularies


def _config_from_args(args: argparse.Namespace) -> process.ProcessConfig:
  return process.ProcessConfig(
      thresholds=filters.FilterConfig(
          min_image_side=args.min_image_side,
          max_aspect_ratio=args.max_aspect_ratio,
          min_caption_chars=args.min_caption_chars,
          max_caption_chars=args.max_caption_chars,
          min_caption_words=args.min_caption_words,
          max_caption_words=args.max_caption_words,
          languages=filters.parse_languages(args.languages)),
      image_size=args.image_size,
      jpeg_quality=args.jpeg_quality,
      max_image_pixels=args.max_image_pixels,
      max_tokens=args.max_tokens)


def _plural(n: int, noun: str) -> str:
  return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary(manifest: dict[str, Any], output_dir: str,
            seconds: float) -> str:
  """The human-readable report printed at the end of a build."""
  counts = manifest["counts"]
  read = counts["read"]
  inputs = _plural(manifest["input_files"]["count"], "input file")
  lines = [
      f"read {read} examples from {inputs} in {seconds:.1f} s "
      f"({read / max(seconds, 1e-9):.1f} examples/s)",
      f"kept {counts['kept']}, rejected "
      f"{sum(counts['rejected'].values())}:",
  ]
  lines += [f"  {reason:<22} {n}"
            for reason, n in counts["rejected"].items() if n]
  for corrupt in manifest["input_files"]["corrupt"]:
    lines.append(f"damaged input file {corrupt['file']}: {corrupt['error']}")
  languages = ", ".join(f"{lang} {n}"
                        for lang, n in manifest["languages"].items())
  lines.append(f"languages: {languages or '-'}")
  lines.append(f"wrote {len(manifest['shards'])} shards, manifest, "
               f"{sinks.REJECTED} and {sinks.STATS_PLOT} to {output_dir}")
  return "\n".join(lines)


class BuildResult(NamedTuple):
  """A finished build: its manifest, and the Beam counters of this module."""

  manifest: dict[str, Any]
  counters: dict[str, int]


def _counters(result: beam.runners.runner.PipelineResult) -> dict[str, int]:
  query = result.metrics().query(
      beam.metrics.MetricsFilter().with_namespace(METRICS_NAMESPACE))
  counters = collections.Counter()
  for counter in query["counters"]:
    counters[counter.key.metric.name] += counter.committed
  return dict(sorted(counters.items()))


def parse_args(
    argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
  """This module's flags, and the rest (Beam's options)."""
  return _parser().parse_known_args(argv)


def build(args: argparse.Namespace, beam_argv: Sequence[str]
          ) -> BuildResult | pipeline_command.Launched:
  """Runs the build described by parsed flags.

  Returns:
    The finished build, or what was done instead where the runner did not
    run it to its end here: a dry run, a template, a job left running.

  Raises:
    ValueError: for bad options or inputs.
    FileExistsError: if --output holds a completed dataset, without
      --overwrite.
  """
  if args.num_shards < 1:
    raise ValueError(f"--num_shards must be positive, got {args.num_shards}")
  if not args.split or not args.split.replace("_", "").isalnum():
    raise ValueError(f"--split must be letters, digits and '_', got "
                     f"{args.split!r}")
  options = beam_options.from_flags(beam_argv)
  if not args.verbose:
    beam_options.quiet_workers(options.view_as(WorkerOptions))
  config = _config_from_args(args)
  identifier = langid.LanguageIdentifier(args.langid_backend,
                                         args.langid_min_score)
  identifier.check_outputs(config.thresholds.languages)
  # Records and the manifest name their inputs usable from anywhere.
  inputs = [files.resolve(p) for p in args.input]
  input_files = dispatch.match_input_files(inputs)  # Fails early.
  vocabularies = load_vocabularies(args.vocab)
  blocked = blocklist.load_blocklists(args.blocklist,
                                      image_size=config.image_size,
                                      max_pixels=config.max_image_pixels)
  sinks.prepare_output_dir(args.output, args.overwrite)
  _LOG.info("building %s from %s", args.output,
            _plural(len(input_files), "input file"))
  manifest_fields = {
      "vocabularies": [{"name": v.name, "size": v.size, "sha256": v.sha256}
                       for v in vocabularies],
      "options": {
          "inputs": inputs,
          "num_shards": args.num_shards,
          **config.to_json(),
          "langid": {"backend": identifier.backend,
                     "min_score": identifier.min_score},
          "blocklist": {"sources": [files.resolve(p)
                                    for p in args.blocklist],
                        "hashes": len(blocked),
                        "sha256": blocklist.blocklist_sha256(blocked)},
      },
  }
  pipeline = beam.Pipeline(runner=beam_options.runner_for(options),
                           options=options)
  _ = pipeline | "BuildDataset" >> BuildDataset(
      inputs=inputs, output_dir=args.output, config=config,
      identifier=identifier, vocabularies=vocabularies,
      blocked_hashes=blocked, num_shards=args.num_shards, split=args.split,
      manifest_fields=manifest_fields)
  result = pipeline_command.run_pipeline(pipeline, options, args.output,
                                        wait=not args.no_wait)
  if isinstance(result, pipeline_command.Launched):
    return result
  return BuildResult(
      sinks.read_json(FileSystems.join(args.output, sinks.MANIFEST)),
      _counters(result))


def main(argv: Sequence[str] | None = None) -> int:
  args, beam_argv = parse_args(argv)
  return pipeline_command.run(
      "build_dataset", _LOG, args.verbose, lambda: build(args, beam_argv),
      lambda result, seconds: summary(result.manifest, args.output, seconds))


if __name__ == "__main__":
  # Run the imported module, not __main__: Beam workers unpickle this
  # module's DoFns and element types by their importable names.
  from pipelines import build_dataset  # pylint: disable=g-import-not-at-top
  sys.exit(build_dataset.main())
