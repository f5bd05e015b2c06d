"""Builds a training dataset from raw web image-text pairs, as a Beam pipeline.

  python -m pipelines.build_dataset --input 'corpus/*.tar' --output data/ \\
      --vocab vocabs/en32k --vocab vocabs/multi250k [options] [Beam options]

The pipeline is a chain of named transforms:

  Read          input files -> raw examples (and damaged-file reports)
  Process       decode and validate, filter, tag the language, reject
                near-duplicates of block-listed eval images, tokenize,
                resize and re-encode (`process.process_batch`, in batches)
  Score         (with --score_model) score each pair with a frozen
                two-tower model, store score/<name>, and reject pairs below
                the cut-off, absolute or per-language quantile
                (`score_pairs`, with `score_filter`'s rules)
  Spill         (on the local runner) write each kept record to a local
                file and pass on its reference, so that the runner's
                in-memory shuffle does not copy it (`spill`)
  Deduplicate   group kept examples by stored-pixel hash: block-listed
                images and all but the smallest key of each hash are dropped
  WriteShards   group by shard (stable hash of the key), read spilled
                records back, sort by key, write ArrayRecord shards and the
                rejected examples of each shard
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
import logging
import os
import secrets
import sys
import tempfile
from typing import Any, NamedTuple, TYPE_CHECKING

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import WorkerOptions

from dataformat import cli
from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import records
from dataformat import shards as shards_lib
from pipelines import beam_options
from pipelines import blocklist
from pipelines import filters
from pipelines import image_signature
from pipelines import langid
from pipelines import near_duplicates
from pipelines import pipeline_command
from pipelines import process
from pipelines import score_filter
from pipelines import sinks
from pipelines import spill
from pipelines.readers import beam_read
from pipelines.readers import dispatch
from pipelines.readers.common import RawExample
from pipelines.reasons import Reason
from pipelines.reasons import Rejection
from vocabularies.vocabulary import Vocabulary

if TYPE_CHECKING:
  # The scoring modules load JAX and the model code (about 2 s of every
  # process's start): they are imported where a build scores, not here.
  from pipelines import pair_scorer

METRICS_NAMESPACE = "build_dataset"
DEFAULT_NUM_SHARDS = 16
DEFAULT_SPLIT = "train"
# Examples per `process_batch` call: enough to share the language
# identifier's and tokenizers' per-call work, small enough to bound memory.
BATCH_SIZE = 32
PROGRESS_EVERY = 1000
_REJECTED_TAG = "rejected"
SCORE_SECTION = "image_text_score"

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
  record: bytes  # b"" while the record waits in a spill file.
  url: str = ""
  score: float | None = None
  spilled: spill.SpillRef | None = None


class ShardResult(NamedTuple):
  """What writing one shard produced."""

  index: int
  info: shards_lib.ShardInfo
  rejected: dict[str, int]
  stats: sinks.DatasetStats


def kept_example(record: records.Record) -> KeptExample:
  """The serialised record with the fields the later stages group by."""
  return KeptExample(
      key=record.key, source=record.source, image_sha256=record.image_sha256,
      lang=record.lang, caption_chars=len(record.text),
      original_height=record.image_original_height,
      original_width=record.image_original_width,
      record=records.serialize_record(record), url=record.source_url)


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
    kept: Iterable[KeptExample], rejected: Iterable[shards_lib.RejectedExample],
    dropped: Iterable[tuple[str, str, str]],
) -> tuple[list[KeptExample], list[shards_lib.RejectedExample]]:
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
      rejected.append(shards_lib.RejectedExample(
          example.key, example.source, str(reason), detail, example.url))
    else:
      written.append(example)
  written.sort(key=lambda e: (e.key, e.record))
  return written, rejected


class _ProcessFn(beam.DoFn):
  """Batches of raw examples -> KeptExamples, and (shard, RejectedExample)s."""

  def __init__(self, config: process.ProcessConfig,
               identifier: langid.LanguageIdentifier,
               vocabularies: Sequence[Vocabulary], num_shards: int,
               eval_filter: near_duplicates.EvalImageFilter | None):
    self._config = config
    self._identifier = identifier
    self._vocabularies = list(vocabularies)
    self._num_shards = num_shards
    self._eval_filter = eval_filter
    self._processed = beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                   "processed")
    self._passed = beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                "passed_example_checks")
    self._rejected = {r: beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                      f"rejected_{r}")
                      for r in Reason}
    self._count = 0

  def setup(self):
    self._identifier.load()

  def process(self, batch: list[RawExample]):
    results = process.process_batch(batch, self._config, self._identifier,
                                    self._vocabularies, self._eval_filter)
    for raw, result in zip(batch, results):
      self._processed.inc()
      if isinstance(result, Rejection):
        self._rejected[result.reason].inc()
        yield beam.pvalue.TaggedOutput(_REJECTED_TAG, (
            shards_lib.shard_index(raw.key, self._num_shards),
            shards_lib.RejectedExample(raw.key, raw.source, str(result.reason),
                                       result.detail,
                                       process.source_url(raw))))
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
      yield shards_lib.shard_index(key, self._num_shards), (key, reason, detail)


class _SpillFn(beam.DoFn):
  """KeptExample -> the same, its record moved to its bundle's spill file."""

  def __init__(self, spill_dir: str):
    self._spill_dir = spill_dir
    self._writer = None
    self._spilled = beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                 "spilled")

  def start_bundle(self):
    self._writer = spill.SpillWriter(self._spill_dir)

  def process(self, example: KeptExample):
    self._spilled.inc()
    yield example._replace(record=b"",
                           spilled=self._writer.write(example.record))

  def finish_bundle(self):
    self._writer.close()


def unspilled(kept: Iterable[KeptExample]) -> list[KeptExample]:
  """`kept`, with the records of spilled examples read back."""
  kept = list(kept)
  records = iter(spill.read([e.spilled for e in kept
                             if e.spilled is not None]))
  return [e._replace(record=next(records), spilled=None)
          if e.spilled is not None else e for e in kept]


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
    written, rejected = split_shard(unspilled(grouped["kept"]),
                                    grouped["rejected"], grouped["dropped"])
    info = shards_lib.write_array_record(
        files.join(self._output_dir, shards_lib.shard_name(
            self._split, index, self._num_shards)),
        (e.record for e in written))
    shards_lib.write_rejected_part(
        files.join(self._output_dir,
                   shards_lib.rejected_part_name(index, self._num_shards)),
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
  """Checks the counts and writes rejected.jsonl, stats, manifest, COMPLETED.

  `manifest_fields` are the `Manifest` fields the pipeline adds: its
  vocabularies and options (and a LiT dataset's tower and source dataset).
  With scoring, the side inputs `score_cutoffs` ({lang: cut-off}) and
  `score_histogram` (((lang, bin), count)s) complete its image_text_score,
  which `manifest_fields` starts. The spill directory, if any, goes before
  COMPLETED is written.
  """

  def __init__(self, output_dir: str, split: str, num_shards: int,
               input_file_count: int, manifest_fields: dict[str, Any],
               spill_dir: str | None = None):
    self._output_dir = output_dir
    self._split = split
    self._num_shards = num_shards
    self._input_file_count = input_file_count
    self._manifest_fields = manifest_fields
    self._spill_dir = spill_dir

  def process(self, unused_element, shards, read, file_errors,
              score_cutoffs=None, score_histogram=None):
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
    join = lambda name: files.join(self._output_dir, name)
    rejected_sha256 = files.concatenate(
        [join(shards_lib.rejected_part_name(i, self._num_shards))
         for i in range(self._num_shards)], join(shards_lib.REJECTED))
    shards_lib.remove_rejected_parts(self._output_dir)
    scores = None
    manifest_fields = dict(self._manifest_fields)
    if score_histogram is not None:
      scores = score_filter.ScoreSummary.from_counts(score_histogram,
                                                     score_cutoffs)
      manifest_fields[SCORE_SECTION] = {**manifest_fields[SCORE_SECTION],
                                        **scores.to_json()}
    sinks.plot_stats(stats, join(shards_lib.STATS_PLOT),
                     f"{self._split}: {kept} examples", rejected, scores)
    manifest = manifest_lib.Manifest(
        schema_version=records.SCHEMA_VERSION,
        split=self._split,
        counts=manifest_lib.Counts(
            read=read, kept=kept, rejected=sinks.rejected_counts(rejected)),
        shards=[s.info for s in shards],
        rejected_file=manifest_lib.RejectedFile(
            file=shards_lib.REJECTED, count=sum(rejected.values()),
            sha256=rejected_sha256),
        stats_plot=shards_lib.STATS_PLOT,
        languages=stats.language_histogram(),
        input_files=manifest_lib.InputFiles(
            count=self._input_file_count,
            corrupt=[manifest_lib.CorruptInput(file=e.source, error=e.message)
                     for e in sorted(file_errors)]),
        **manifest_fields)
    manifest_lib.write(join(shards_lib.MANIFEST), manifest)
    if self._spill_dir is not None:
      files.rmtree(self._spill_dir)
    shards_lib.write_completed(self._output_dir)
    yield manifest


class BuildDataset(beam.PTransform):
  """The whole build, from a pipeline's start to the finished directory."""

  def __init__(self, *, inputs: Sequence[str], output_dir: str,
               config: process.ProcessConfig,
               identifier: langid.LanguageIdentifier,
               vocabularies: Sequence[Vocabulary],
               blocklist_file: blocklist.BlocklistFile | None,
               near_duplicates_match: image_signature.MatchConfig | None,
               num_shards: int, split: str,
               manifest_fields: dict[str, Any],
               scoring: tuple["pair_scorer.ScorerSpec",
                              score_filter.ScoreFilterConfig] | None = None,
               spill_dir: str | None = None):
    """The build's inputs, outputs and checks.

    Args:
      blocklist_file: the block-listed images, in a file the workers read;
        None without a block-list.
      near_duplicates_match: when an image is a near-copy of a block-listed
        one; None to reject only exact copies.
      spill_dir: a local directory that every worker can write and read,
        where kept records wait for their shard (`pipelines.spill`); None
        to send them through the runner's shuffle.
    """
    super().__init__()
    self._inputs = dispatch.match_input_files(inputs)
    self._output_dir = output_dir
    self._config = config
    self._identifier = identifier
    self._vocabularies = list(vocabularies)
    self._blocklist_file = blocklist_file
    self._eval_filter = None
    if blocklist_file is not None and near_duplicates_match is not None:
      self._eval_filter = near_duplicates.EvalImageFilter(
          None, near_duplicates_match, blocklist_file)
    self._num_shards = num_shards
    self._split = split
    self._manifest_fields = manifest_fields
    self._scoring = scoring
    self._spill_dir = spill_dir

  def expand(self, pbegin):
    n = self._num_shards
    read = pbegin | "Read" >> beam_read.ReadRawExamples(self._inputs)
    examples = read[beam_read.EXAMPLES_TAG]
    processed = (
        examples
        | "Batch" >> beam.BatchElements(min_batch_size=BATCH_SIZE,
                                        max_batch_size=BATCH_SIZE)
        | "Process" >> beam.ParDo(_ProcessFn(
            self._config, self._identifier, self._vocabularies, n,
            self._eval_filter)).with_outputs(_REJECTED_TAG, main="kept"))
    kept = processed.kept
    rejected = processed[_REJECTED_TAG]
    score_side_inputs = {}
    if self._scoring is not None:
      from pipelines import score_pairs  # pylint: disable=g-import-not-at-top
      scored = kept | "Score" >> score_pairs.ScoreAndFilter(
          *self._scoring, n, _REJECTED_TAG, METRICS_NAMESPACE)
      kept = scored.kept
      rejected = ((rejected, scored.rejected)
                  | "AllRejected" >> beam.Flatten())
      score_side_inputs = {
          "score_cutoffs": beam.pvalue.AsDict(scored.cutoffs),
          "score_histogram": beam.pvalue.AsList(scored.histogram)}
    if self._spill_dir is not None:
      kept = kept | "Spill" >> beam.ParDo(_SpillFn(self._spill_dir))
    dropped = (
        {
            "keys": kept | "KeyByImageHash" >> beam.Map(
                lambda e: (e.image_sha256, e.key)),
            # The hashes come from the block-list file, read by a worker:
            # in the job graph they would grow with the block-list.
            "blocked": (pbegin
                        | "Blocklist" >> beam.Create(
                            [self._blocklist_file] if self._blocklist_file
                            else [])
                        | "KeyBlocked" >> beam.FlatMap(
                            lambda f: ((h, True)
                                       for h in f.blocked_hashes()))),
        }
        | "GroupByImageHash" >> beam.CoGroupByKey()
        | "Deduplicate" >> beam.ParDo(_SetLevelRejectionsFn(n)))
    shards = (
        {
            "kept": kept | "KeyByShard" >> beam.Map(
                lambda e: (shards_lib.shard_index(e.key, n), e)),
            "rejected": rejected,
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
                       self._manifest_fields, self._spill_dir),
            shards=beam.pvalue.AsList(shards),
            read=beam.pvalue.AsSingleton(
                examples | "CountRead" >> beam.combiners.Count.Globally()),
            file_errors=beam.pvalue.AsList(read[beam_read.FILE_ERRORS_TAG]),
            **score_side_inputs))


def _parser() -> argparse.ArgumentParser:
  defaults = process.ProcessConfig()
  thresholds = filters.FilterConfig()
  parser = cli.ArgumentParser(
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
                  help="images to exclude with their near-duplicates, e.g. "
                  "eval images: a block-list file made at this --image_size "
                  "(python -m pipelines.blocklist) or a directory of images; "
                  "repeatable")
  match = image_signature.MatchConfig()
  io.add_argument("--near_duplicate_radius", type=int, default=match.radius,
                  metavar="BITS",
                  help="images whose 64-bit DCT hash is within this many bits "
                  "of a block-listed image's (and whose colours agree) are "
                  "rejected as near_duplicate_of_eval; -1 turns this off, "
                  "keeping the exact check")
  io.add_argument("--near_duplicate_max_colour_distance", type=int,
                  default=match.max_colour_distance, metavar="D",
                  help="the largest colour difference |dY|+|dCb|+|dCr| "
                  "(8-bit units) of any cell of a 6x6 grid between a "
                  "near-duplicate and its eval image")
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
  score = parser.add_argument_group(
      "image-text score",
      "Score each pair that passed the checks above with a frozen two-tower "
      "model (cosine similarity of its image and text embeddings, in [-1, "
      "1]), store it as score/<name>, and optionally reject low-scoring "
      "pairs as low_image_text_score.")
  score.add_argument("--score_model", metavar="PATH",
                     help="the model: a workdir of python -m trainer.train "
                     "(its newest step) or a step directory "
                     "workdir/checkpoints/<step>, or a big_vision .npz (then "
                     "also --score_model_config)")
  score.add_argument("--score_model_config", metavar="PATH",
                     help="for an .npz model: a training config file (e.g. "
                     "trainer/configs/siglip_b16.py; a released "
                     "checkpoint's preset: trainer/configs/released.py:NAME) "
                     "or a run's config.json giving its architecture, image "
                     "size and vocabulary name")
  score.add_argument("--score_vocab", metavar="DIR",
                     help="the model's vocabulary (directory or "
                     "SentencePiece .model); default: the --vocab named by "
                     "the model's config.data.vocab_name")
  score.add_argument("--score_name", metavar="NAME",
                     help="the score's name, stored as score/NAME (e.g. "
                     "siglip_demo); required with --score_model")
  cut = score.add_mutually_exclusive_group()
  cut.add_argument("--min_score", type=float, metavar="S",
                   help="reject pairs scoring below S, in every language")
  cut.add_argument("--score_keep_fraction", type=float, metavar="F",
                   help="keep the best-scoring fraction F of each language "
                   "(the cut-off is each language's approximate (1 - F) "
                   "quantile, so no language is starved by another's "
                   "scores); without this and --min_score pairs are only "
                   "scored")
  score.add_argument("--score_batch_size", type=int,
                     default=score_filter.DEFAULT_BATCH_SIZE, metavar="N",
                     help="pairs per model call (every call has this shape; "
                     "the model compiles once per worker)")
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


def _scoring_from_args(
    args: argparse.Namespace, vocabularies: Sequence[Vocabulary],
    runner: str | None
) -> tuple["pair_scorer.ScorerSpec", score_filter.ScoreFilterConfig] | None:
  """The model and cut-off the score flags ask for, or None without them.

  Raises:
    ValueError: for score flags without --score_model, or bad ones.
  """
  if args.score_model is None:
    given = [flag for flag, value in (
        ("--score_model_config", args.score_model_config),
        ("--score_vocab", args.score_vocab),
        ("--score_name", args.score_name),
        ("--min_score", args.min_score),
        ("--score_keep_fraction", args.score_keep_fraction))
             if value is not None]
    if given:
      raise ValueError(f"{', '.join(given)} needs --score_model")
    return None
  if not args.score_name:
    raise ValueError("--score_name is required with --score_model")
  from pipelines import pair_scorer  # pylint: disable=g-import-not-at-top,redefined-outer-name
  config = score_filter.ScoreFilterConfig(
      name=args.score_name, min_score=args.min_score,
      keep_fraction=args.score_keep_fraction,
      batch_size=args.score_batch_size)
  checkpoint = files.resolve(args.score_model)
  beam_options.check_workers_can_read(checkpoint, runner, "--score_model",
                                      "--score_model_config")
  try:
    spec = pair_scorer.describe_scorer(
        checkpoint,
        files.resolve(args.score_model_config) if args.score_model_config
        else None,
        vocabularies, args.score_vocab)
  except ValueError as e:
    # The loader speaks of "a config file": say which flags are meant.
    raise ValueError(f"--score_model (--score_model_config): {e}") from None
  # Workers load the model again; one that does not fit fails here, before
  # any worker starts.
  pair_scorer.load_params(spec)
  return spec, config


def _plural(n: int, noun: str) -> str:
  return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def summary(manifest: manifest_lib.Manifest, output_dir: str,
            seconds: float) -> str:
  """The human-readable report printed at the end of a build."""
  counts = manifest.counts
  read = counts.read
  inputs = _plural(manifest.input_files.count, "input file")
  lines = [
      f"read {read} examples from {inputs} in {seconds:.1f} s "
      f"({read / max(seconds, 1e-9):.1f} examples/s)",
      f"kept {counts.kept}, rejected {counts.rejected_total}:",
  ]
  lines += [f"  {reason:<22} {n}"
            for reason, n in counts.rejected.items() if n]
  for corrupt in manifest.input_files.corrupt:
    lines.append(f"damaged input file {corrupt.file}: {corrupt.error}")
  if manifest.image_text_score is not None:
    score = manifest.image_text_score
    cutoffs = [entry["cutoff"] for entry in score["languages"].values()
               if entry["cutoff"] is not None]
    scored = sum(entry["scored"] for entry in score["languages"].values())
    line = f"scored {scored} pairs as {score['field']}"
    if cutoffs:
      line += (f", cut-off {min(cutoffs):.4f} to {max(cutoffs):.4f} over "
               f"{_plural(len(cutoffs), 'language')}")
    lines.append(line)
  languages = ", ".join(f"{lang} {n}"
                        for lang, n in manifest.languages.items())
  lines.append(f"languages: {languages or '-'}")
  lines.append(f"wrote {len(manifest.shards)} shards, manifest, "
               f"{shards_lib.REJECTED} and {shards_lib.STATS_PLOT} to "
               f"{output_dir}")
  return "\n".join(lines)


class BuildResult(NamedTuple):
  """A finished build: its manifest, and the Beam counters of this module."""

  manifest: manifest_lib.Manifest
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
  match = None
  if args.near_duplicate_radius != -1:
    match = image_signature.MatchConfig(
        args.near_duplicate_radius, args.near_duplicate_max_colour_distance)
  options = beam_options.from_flags(beam_argv)
  # Fails before the block-lists are loaded, which may take minutes.
  worker_dir = (beam_options.worker_files_dir(options, "--blocklist")
                if args.blocklist else None)
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
  scoring = _scoring_from_args(args, vocabularies,
                               options.view_as(StandardOptions).runner)
  entries = blocklist.load_blocklists(args.blocklist,
                                      image_size=config.image_size,
                                      max_pixels=config.max_image_pixels)
  blocked = {e.sha256 for e in entries}
  near_duplicate_options = None
  if entries and match is not None:
    near_duplicate_options = {
        **match.to_json(), "eval_images": len(entries),
        "signatures": sum(len(e.signatures) for e in entries)}
  shards_lib.prepare_output_dir(args.output, args.overwrite)
  spill_dir = spill_dir_for(args.output, options)
  _LOG.info("building %s from %s", args.output,
            _plural(len(input_files), "input file"))
  manifest_fields = {
      "vocabularies": [manifest_lib.VocabularyEntry(v.name, v.size, v.sha256)
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
                        "sha256": blocklist.blocklist_sha256(blocked),
                        "near_duplicates": near_duplicate_options},
      },
  }
  if scoring is not None:
    spec, score_config = scoring
    manifest_fields[SCORE_SECTION] = {**score_config.to_json(),
                                      "model": spec.to_json()}
  blocklist_file = None
  if entries:
    blocklist_file = blocklist.write_for_workers(entries, config.image_size,
                                                 worker_dir)
    _LOG.info("wrote the block-list for the workers to %s",
              blocklist_file.path)
  job_ended = False
  try:
    pipeline = beam.Pipeline(runner=beam_options.runner_for(options),
                             options=options)
    _ = pipeline | "BuildDataset" >> BuildDataset(
        inputs=inputs, output_dir=args.output, config=config,
        identifier=identifier, vocabularies=vocabularies,
        blocklist_file=blocklist_file, near_duplicates_match=match,
        num_shards=args.num_shards, split=args.split,
        manifest_fields=manifest_fields, scoring=scoring,
        spill_dir=spill_dir)
    result = pipeline_command.run_pipeline(pipeline, options, args.output,
                                          wait=not args.no_wait)
    job_ended = not isinstance(result, pipeline_command.Launched)
  finally:
    if spill_dir is not None:
      files.rmtree(spill_dir)
    if blocklist_file is not None:
      _remove_worker_files(worker_dir, options, job_ended)
  if isinstance(result, pipeline_command.Launched):
    return result
  return BuildResult(
      manifest_lib.read(files.join(args.output, shards_lib.MANIFEST)),
      _counters(result))


def spill_dir_for(output_dir: str, options: PipelineOptions) -> str | None:
  """Where kept records wait for their shard (`pipelines.spill`).

  Only on the local runner, whose workers share this machine's disk: in the
  local output directory, which has room for them, or else (gs:// output)
  in a new directory in the local temporary directory. None for a remote
  runner, whose shuffle carries the records.
  """
  if not beam_options.is_local(options):
    return None
  if files.is_uri(output_dir):
    return os.path.join(tempfile.gettempdir(),
                        f"build-spill-{secrets.token_hex(8)}")
  return os.path.join(files.resolve(output_dir), shards_lib.SPILL_DIR)


def _remove_worker_files(directory: str, options: PipelineOptions,
                         job_ended: bool) -> None:
  """Removes the files written for the job's workers, unless a job may read
  them still.

  It may when left running (--no_wait), when launched later (a template, a
  dry run's translated job), and when remote and its end was not seen here
  (waiting for it failed or was interrupted).
  """
  if job_ended or beam_options.is_local(options):
    files.rmtree(directory)
  else:
    _LOG.info("left %s for the job's workers: delete it when no job needs "
              "it", directory)


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
