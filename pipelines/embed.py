"""Precomputes frozen image-tower embeddings: a dataset -> a LiT dataset.

  python -m pipelines.embed --dataset data/ --checkpoint WORKDIR \\
      --output lit_data/ [--batch_size N] [Beam options]
  python -m pipelines.embed --dataset data/ --checkpoint siglip.npz \\
      --model_config trainer/configs/siglip_b16.py --output lit_data/
  python -m pipelines.embed --dataset data/ \\
      --checkpoint webli_en_so400m_384_58765454.npz \\
      --model_config trainer/configs/released.py:so400m14_384 \\
      --output lit_data/

LiT-style training (SigLiT) locks the image tower, so running it at every
step would waste most of the compute; its outputs are computed once here. The
pipeline is a chain of named transforms:

  ReadShards    the source's shard files, spread over workers, -> records
  Preprocess    decode and resize each image with the trainer's own function
                (`trainer.input_pipeline.decode_image`), drop the image bytes
  Embed         Beam's RunInference with `frozen_tower.JaxImageTowerHandler`:
                batches of --batch_size, one jitted program per worker
  WriteShards   the records with `image/embedding` and every text field, in
                shards by key hash, sorted by key (as `build_dataset`)
  Finalize      check that every record of the source was written, write
                rejected.jsonl (empty), stats.png, manifest.json, COMPLETED

The manifest is a dataset manifest (`pipelines.verify` checks it) with two
more sections: "tower" (kind, checkpoint, its sha256, architecture, image
size and mode, embedding size and dtype, and `normalized: false`, since the
tower's raw output is stored) and "source_dataset" (path, manifest sha256,
record count).

Every tower call has the shape [--batch_size, S, S, 3], and a record's
embedding does not depend on the other records of its batch, so reruns and
runs with any number of workers write byte-identical shards. (Another
--batch_size compiles another program, whose results may differ in the last
bits: about 1e-6 on CPU.) Runners and Beam options work as for
`build_dataset`: the local FnApiRunner by default, and every other option
passes through (DataflowRunner with GPU workers: README.md).
"""

import argparse
from collections.abc import Sequence
import dataclasses
import logging
import sys
from typing import Any

import apache_beam as beam
from apache_beam.ml.inference.base import KeyedModelHandler
from apache_beam.ml.inference.base import RunInference
from apache_beam.options.pipeline_options import StandardOptions
from apache_beam.options.pipeline_options import WorkerOptions
import numpy as np

from dataformat import cli
from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import records
from dataformat import shards
from pipelines import beam_options
from pipelines import build_dataset
from pipelines import frozen_tower
from pipelines import pipeline_command
from trainer import input_pipeline
from trainer import model_loader

METRICS_NAMESPACE = "embed"
DEFAULT_BATCH_SIZE = 32
PROGRESS_EVERY = 1000
# Crops must be the same at every run: no random crop.
IMAGE_MODES = (input_pipeline.RESIZE, input_pipeline.RESIZE_BILINEAR,
               input_pipeline.CENTER_CROP)
_LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SourceDataset:
  """What the embedding pipeline reads: a complete dataset with images."""

  path: str
  split: str
  shard_paths: list[str]
  num_records: int
  vocabularies: list[manifest_lib.VocabularyEntry]
  manifest_sha256: str

  def manifest_entry(self) -> manifest_lib.SourceDataset:
    """The LiT manifest's record of this dataset."""
    return manifest_lib.SourceDataset(
        path=self.path, manifest_sha256=self.manifest_sha256,
        records=self.num_records)


def open_source_dataset(path: str) -> SourceDataset:
  """The complete, image-carrying dataset at `path`.

  Raises:
    ValueError: if `path` is missing, incomplete, not a dataset, or already
      a LiT dataset.
  """
  shards.check_complete(path)
  manifest_path = files.join(path, shards.MANIFEST)
  if not files.exists(manifest_path):
    raise ValueError(f"dataset {path} has no {shards.MANIFEST}")
  manifest = manifest_lib.read(manifest_path)
  if manifest.tower is not None:
    raise ValueError(f"dataset {path} is already a LiT dataset (image "
                     "embeddings, no images)")
  return SourceDataset(
      path=path, split=manifest.split,
      shard_paths=[files.join(path, s.file) for s in manifest.shards],
      num_records=manifest.counts.kept,
      vocabularies=manifest.vocabularies,
      manifest_sha256=files.sha256(manifest_path))


def manifest_tower(manifest: manifest_lib.Manifest
                   ) -> tuple[model_loader.TowerSpec, str]:
  """(tower, image mode) that made a LiT dataset, from its manifest.

  Raises:
    ValueError: if the manifest names no tower.
  """
  if manifest.tower is None:
    raise ValueError("the manifest has no 'tower' section: not a LiT "
                     "dataset")
  return (model_loader.TowerSpec.from_description(manifest.tower),
          manifest.tower.image_mode)


def tower_image_mode(checkpoint: str, config_file: str | None = None) -> str:
  """The image mode a tower's embeddings are made with unless one is given.

  That of the tower's training config (`data.image_mode`; a random crop
  becomes the central one), so that a released checkpoint's preset gives
  big_vision's preprocessing. Takes the arguments of `model_loader.describe`.

  Raises:
    ValueError: as `model_loader.describe`.
  """
  config, _ = model_loader.describe(checkpoint, config_file)
  return input_pipeline.deterministic_image_mode(config.data.image_mode)


def strip_image(record: records.Record) -> records.Record:
  """`record` without its image bytes; its other fields stay."""
  return dataclasses.replace(record, image_encoded=b"", image_height=0,
                             image_width=0)


class _PreprocessFn(beam.DoFn):
  """Serialised record -> (record without image, float32 image [S, S, 3])."""

  def __init__(self, image_size: int, image_mode: str):
    self._image_size = image_size
    self._image_mode = image_mode

  def process(self, data: bytes):
    record = records.parse_record(data)
    if not record.image_encoded:
      raise ValueError(f"record {record.key!r} has no image")
    try:
      image = input_pipeline.decode_image(record.image_encoded,
                                          self._image_size, self._image_mode)
    except (OSError, ValueError) as e:
      raise ValueError(f"record {record.key!r}: cannot decode its image: "
                       f"{e}") from None
    yield strip_image(record), image


class _ToKeptFn(beam.DoFn):
  """(record, prediction) -> (shard, KeptExample) of the LiT record."""

  def __init__(self, num_shards: int):
    self._num_shards = num_shards
    self._embedded = beam.metrics.Metrics.counter(METRICS_NAMESPACE,
                                                  "embedded")
    self._count = 0

  def process(self, element):
    record, prediction = element
    lit = dataclasses.replace(
        record, image_embedding=np.asarray(prediction.inference, np.float32))
    self._embedded.inc()
    self._count += 1
    if self._count % PROGRESS_EVERY == 0:
      _LOG.info("embedded %d images in this worker", self._count)
    yield (shards.shard_index(record.key, self._num_shards),
           build_dataset.kept_example(lit))


def _check_read(read: int, expected: int, dataset: str) -> int:
  if read != expected:
    raise RuntimeError(f"read {read} records from {dataset}, its manifest "
                       f"says {expected}")
  return read


class EmbedDataset(beam.PTransform):
  """The whole embedding run, from a pipeline's start to the LiT dataset."""

  def __init__(self, *, source: SourceDataset, output_dir: str,
               spec: model_loader.TowerSpec, batch_size: int, image_mode: str,
               num_shards: int, split: str, manifest_fields: dict[str, Any]):
    super().__init__()
    self._source = source
    self._output_dir = output_dir
    self._spec = spec
    self._batch_size = batch_size
    self._image_mode = image_mode
    self._num_shards = num_shards
    self._split = split
    self._manifest_fields = manifest_fields

  def expand(self, pbegin):
    n = self._num_shards
    handler = KeyedModelHandler(
        frozen_tower.JaxImageTowerHandler(self._spec, self._batch_size))
    serialized = (
        pbegin
        | "ListShards" >> beam.Create(self._source.shard_paths)
        | "SpreadShards" >> beam.Reshuffle()
        | "ReadShards" >> beam.FlatMap(shards.iter_array_record))
    kept = (
        serialized
        | "Preprocess" >> beam.ParDo(_PreprocessFn(self._spec.image_size,
                                                   self._image_mode))
        | "Embed" >> RunInference(handler)
        | "ToLitRecords" >> beam.ParDo(_ToKeptFn(n)))
    written = (
        {
            "kept": kept,
            "rejected": pbegin | "NoRejected" >> beam.Create([]),
            "dropped": pbegin | "NoDropped" >> beam.Create([]),
            "all": (pbegin
                    | "ShardIndices" >> beam.Create(range(n))
                    | "KeyShardIndices" >> beam.Map(lambda i: (i, None))),
        }
        | "GroupByShard" >> beam.CoGroupByKey()
        | "WriteShards" >> beam.ParDo(build_dataset.WriteShardFn(
            self._output_dir, self._split, n)))
    read = (
        serialized
        | "CountRead" >> beam.combiners.Count.Globally()
        | "CheckRead" >> beam.Map(_check_read, self._source.num_records,
                                  self._source.path))
    return (
        pbegin
        | "FinalizeTrigger" >> beam.Create([None])
        | "Finalize" >> beam.ParDo(
            build_dataset.FinalizeFn(
                self._output_dir, self._split, n,
                len(self._source.shard_paths), self._manifest_fields),
            shards=beam.pvalue.AsList(written),
            read=beam.pvalue.AsSingleton(read),
            file_errors=beam.pvalue.AsList(
                pbegin | "NoFileErrors" >> beam.Create([]))))


def _parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog="python -m pipelines.embed",
      description="Precompute a frozen image tower's embeddings of a "
      "dataset's images with Apache Beam (RunInference, JAX) and write a LiT "
      "dataset: the text fields and tokens of every record plus "
      "image/embedding, with a manifest naming the tower. Flags not listed "
      "here are Beam pipeline options (e.g. --runner, --direct_num_workers, "
      "--direct_running_mode, --project, --region, --temp_location, "
      "--setup_file, --dataflow_service_options, --machine_type).",
      allow_abbrev=False,
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--dataset", required=True, metavar="DIR",
                      help="a complete dataset directory with images (from "
                      "python -m pipelines.build_dataset), local or gs://")
  parser.add_argument("--checkpoint", required=True, metavar="PATH",
                      help="the image tower: a workdir of python -m "
                      "trainer.train (its newest step) or one step "
                      "directory workdir/checkpoints/<step>, or a big_vision "
                      ".npz (then also --model_config)")
  parser.add_argument("--output", required=True, metavar="DIR",
                      help="the LiT dataset directory to write (local or "
                      "gs://)")
  parser.add_argument("--model_config", metavar="PATH",
                      help="for an .npz checkpoint: a training config file "
                      "(e.g. trainer/configs/siglip_b16.py; a released "
                      "checkpoint's preset: trainer/configs/released.py:"
                      "NAME) or a run's config.json, whose model.image, "
                      "model.out_dim and data.image_size describe the "
                      "tower")
  parser.add_argument("--batch_size", type=int, default=DEFAULT_BATCH_SIZE,
                      help="images per tower call; every call has this "
                      "shape (the last batch of a bundle is padded), so the "
                      "tower compiles once per worker")
  parser.add_argument("--image_size", type=int,
                      help="image side the tower sees; default: the tower "
                      "config's data.image_size (another size resamples "
                      "learned position embeddings)")
  parser.add_argument("--image_mode", choices=IMAGE_MODES,
                      help="'resize' squashes the whole image to a square "
                      "(this project's decoding and area resize); "
                      "'resize_bilinear' squashes it as big_vision does "
                      "(its released checkpoints' preprocessing); "
                      "'center_crop' takes the central square; default: the "
                      "tower config's data.image_mode (a random crop: "
                      "center_crop)")
  parser.add_argument("--num_shards", type=int,
                      help="number of output shards; default: as many as "
                      "the source dataset")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace the dataset in --output, completed or "
                      "left incomplete by an interrupted run")
  parser.add_argument("--no_wait", action="store_true",
                      help="with a remote runner (e.g. DataflowRunner), "
                      "return once the job is submitted instead of waiting "
                      "for it to finish; the summary names the job")
  parser.add_argument("--verbose", action="store_true",
                      help="log Beam's progress and show tracebacks")
  return parser


def parse_args(
    argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
  """This module's flags, and the rest (Beam's options)."""
  return _parser().parse_known_args(argv)


def embed(args: argparse.Namespace, beam_argv: Sequence[str]
          ) -> manifest_lib.Manifest | pipeline_command.Launched:
  """Runs the embedding described by parsed flags.

  Returns:
    The LiT dataset's manifest, or what was done instead where the runner
    did not run the pipeline to its end here: a dry run, a template, a job
    left running.

  Raises:
    ValueError: for bad options, inputs or checkpoints.
    FileExistsError: if --output holds a completed dataset, without
      --overwrite.
  """
  if args.batch_size < 1:
    raise ValueError(f"--batch_size must be positive, got {args.batch_size}")
  if args.num_shards is not None and args.num_shards < 1:
    raise ValueError(f"--num_shards must be positive, got {args.num_shards}")
  if args.image_size is not None and args.image_size < 1:
    raise ValueError(f"--image_size must be positive, got {args.image_size}")
  options = beam_options.from_flags(beam_argv)
  runner = options.view_as(StandardOptions).runner
  beam_options.check_workers_can_read(args.checkpoint, runner,
                                      "--checkpoint", "--model_config")
  if not args.verbose:
    beam_options.quiet_workers(options.view_as(WorkerOptions))
  # The manifest records where its inputs are, usable from anywhere.
  dataset, checkpoint = (files.resolve(args.dataset),
                         files.resolve(args.checkpoint))
  model_config_file = (files.resolve(args.model_config)
                       if args.model_config else None)
  source = open_source_dataset(dataset)
  model_config = (model_loader.load_config_file(model_config_file)
                  if model_config_file else None)
  spec = model_loader.describe_tower(checkpoint, model_config,
                                     args.image_size)
  image_mode = args.image_mode or tower_image_mode(checkpoint,
                                                   model_config_file)
  # Workers load the tower again; a checkpoint that does not fit fails here,
  # before any worker starts.
  model_loader.load_tower_params(spec)
  num_shards = args.num_shards or len(source.shard_paths)
  shards.prepare_output_dir(args.output, args.overwrite)
  _LOG.info("embedding %d images of %s with the %s tower %s",
            source.num_records, dataset, spec.kind, checkpoint)
  manifest_fields = {
      "vocabularies": source.vocabularies,
      "options": {
          "dataset": dataset,
          "checkpoint": checkpoint,
          "model_config": model_config_file,
          "batch_size": args.batch_size,
          "num_shards": num_shards,
      },
      "tower": manifest_lib.Tower.from_description(
          spec, image_mode=image_mode),
      "source_dataset": source.manifest_entry(),
  }
  pipeline = beam.Pipeline(runner=beam_options.runner_for(options),
                           options=options)
  _ = pipeline | "EmbedDataset" >> EmbedDataset(
      source=source, output_dir=args.output, spec=spec,
      batch_size=args.batch_size, image_mode=image_mode,
      num_shards=num_shards, split=source.split,
      manifest_fields=manifest_fields)
  result = pipeline_command.run_pipeline(pipeline, options, args.output,
                                        wait=not args.no_wait)
  if isinstance(result, pipeline_command.Launched):
    return result
  return manifest_lib.read(files.join(args.output, shards.MANIFEST))


def summary(manifest: manifest_lib.Manifest, output_dir: str,
            seconds: float) -> str:
  """The human-readable report printed at the end of a run."""
  tower = manifest.tower
  kept = manifest.counts.kept
  step = f"step {tower.step}, " if tower.step is not None else ""
  return "\n".join([
      f"embedded {kept} images of {manifest.source_dataset.path} in "
      f"{seconds:.1f} s ({kept / max(seconds, 1e-9):.1f} images/s)",
      f"tower: {tower.kind} checkpoint {tower.checkpoint} ({step}"
      f"sha256 {tower.sha256[:12]}...), {tower.image_size} px "
      f"{tower.image_mode}, {tower.embedding_dim}-d {tower.dtype} "
      f"{'L2-normalised' if tower.normalized else 'raw'} features",
      f"wrote {len(manifest.shards)} shards and the manifest to "
      f"{output_dir}",
  ])


def main(argv: Sequence[str] | None = None) -> int:
  args, beam_argv = parse_args(argv)
  return pipeline_command.run(
      "embed", _LOG, args.verbose, lambda: embed(args, beam_argv),
      lambda manifest, seconds: summary(manifest, args.output, seconds))


if __name__ == "__main__":
  # Run the imported module, not __main__: Beam workers unpickle this
  # module's DoFns by their importable names.
  from pipelines import embed  # pylint: disable=g-import-not-at-top
  sys.exit(embed.main())
