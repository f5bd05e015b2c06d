"""What an evaluation scores: the model, its vocabulary and image tower.

Shared by the evaluators (`eval.xm3600`, `eval.zeroshot`): their commands
take the flags of `add_model_arguments` and read them with `load_model`;
their periodic evaluators choose through `periodic_choice`. The vocabulary
follows the rule of `eval.vocabulary_choice`.

Checkpoints: a training workdir (its newest step) or one step directory
`workdir/checkpoints/<step>`, whose architecture and preprocessing come from
the run's `config.json`; or a big_vision `.npz` (`--config` then names a
training config file for them, and `--vocab` the vocabulary).

Images are preprocessed by `trainer.input_pipeline.decode_image` at
config.data.image_size in the training image mode ("resize",
"resize_bilinear" or "center_crop"; "random_crop" training evaluates with
"center_crop"). Token ids are padded or sticky-truncated to
config.data.text_len as in training.

SigLiT checkpoints (`config.model.image is None`) were trained on image
embeddings that `pipelines.embed` precomputed with a frozen tower. Their
images are encoded as in training: preprocessed as `pipelines.embed` did
(`trainer.input_pipeline.decode_image` at the image size and mode of those
embeddings), through that tower, then the model's own image head (if any)
and L2 normalisation. The tower is `--image_tower` (our workdir or step
directory, or a big_vision `.npz` with `--image_tower_config`), by default
the one the LiT dataset's manifest (config.data.train_dir) names: the step
it records, which must still have the recorded sha256. The image size and
mode come from that manifest whenever it names a tower (otherwise the
tower's config.data.image_size and image mode, as `pipelines.embed` takes
them by default). The report records the tower.
"""

import argparse
from collections.abc import Callable
import dataclasses
import os
from typing import Any

import ml_collections

from dataformat import files
from eval import encoding
from eval import vocabulary_choice
from pipelines import embed
from vocabularies import vocabulary as vocabulary_lib
from trainer import checkpoints
from trainer import input_pipeline
from trainer import model_loader

Params = Any
TOWER_FROM_MANIFEST = "manifest"
TOWER_FROM_FLAG = "--image_tower"


# Image tower of SigLiT models ---------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageTower:
  """The frozen tower whose embeddings a SigLiT model was trained on.

  Attributes:
    spec: the tower; `spec.checkpoint` is the path read.
    params: its parameters, fitted to `spec.image_size`.
    image_mode: the preprocessing the training embeddings were made with.
    source: TOWER_FROM_MANIFEST or TOWER_FROM_FLAG.
    expected_sha256: the checkpoint's sha256 in the LiT dataset's manifest,
      "" when no manifest gives one.
  """

  spec: model_loader.TowerSpec
  params: Params
  image_mode: str
  source: str
  expected_sha256: str

  def to_json(self) -> dict[str, Any]:
    spec = self.spec
    return {"kind": spec.kind,
            "checkpoint": files.resolve(spec.checkpoint),
            "sha256": spec.sha256, "step": spec.step,
            "image_size": spec.image_size, "image_mode": self.image_mode,
            "embedding_dim": spec.embedding_dim, "source": self.source,
            "verified_against_manifest": spec.sha256 == self.expected_sha256}


def _manifest_tower(data_config: ml_collections.ConfigDict
                    ) -> tuple[str, model_loader.TowerSpec, str] | None:
  """(manifest path, tower, image mode) the LiT dataset names, or None.

  Raises:
    MissingManifestError: if the config's training dataset has no manifest
      (`eval.vocabulary_choice`).
  """
  found = vocabulary_choice.training_manifest(data_config)
  if found is None or found[1].tower is None:
    return None
  path, manifest = found
  try:
    return (path, *embed.manifest_tower(manifest))
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e


def _recorded_checkpoint(spec: model_loader.TowerSpec,
                         manifest_path: str) -> str:
  """The checkpoint path of the step the manifest records.

  A workdir's newest step may have moved on since the embeddings were made.

  Raises:
    ValueError: if the checkpoint is gone.
  """
  if spec.kind == model_loader.BIG_VISION:
    if not files.exists(spec.checkpoint):
      raise ValueError(f"the image tower {spec.checkpoint} that "
                       f"{manifest_path} names does not exist; pass "
                       "--image_tower")
    return spec.checkpoint
  try:
    workdir, step_dir = model_loader.find_step(spec.checkpoint)
    if spec.step is None or files.basename(step_dir) == str(spec.step):
      return spec.checkpoint
    step_dir = checkpoints.step_dir(workdir, spec.step)
    model_loader.find_step(step_dir)
  except ValueError as e:
    raise ValueError(f"the image tower that {manifest_path} names: {e}; "
                     "pass --image_tower") from e
  return step_dir


def choose_image_tower(config: ml_collections.ConfigDict, *,
                       tower_path: str | os.PathLike[str] | None = None,
                       tower_config_file: str | None = None,
                       progress: Callable[[str], None] | None = None
                       ) -> ImageTower:
  """The frozen tower a model without image tower is evaluated with.

  Args:
    config: the model's training config; config.data.train_dir is the LiT
      dataset, whose manifest names the tower and the image preprocessing.
    tower_path: our workdir or step directory, or a big_vision `.npz`;
      None: the checkpoint (and step) the manifest names.
    tower_config_file: the architecture of an `.npz` tower: a training
      config file or a run's config.json.
    progress: warned when `tower_path` is not the checkpoint the manifest
      names, or the manifest is gone.

  Raises:
    ValueError: if no tower is given or named, it cannot be loaded, or the
      one the manifest names no longer has the sha256 recorded there.
  """
  try:
    named = _manifest_tower(config.data)
  except vocabulary_choice.MissingManifestError as e:
    if tower_path is None:
      raise ValueError(f"{e}: it names the model's frozen image tower; pass "
                       "--image_tower") from None
    named = None
    if progress is not None:
      progress(f"warning: --image_tower {os.fspath(tower_path)} is not "
               f"checked against the training embeddings: {e}")
  if tower_path is None:
    if tower_config_file is not None:
      raise ValueError("--image_tower_config describes an .npz "
                       "--image_tower; give both")
    if named is None:
      raise ValueError(
          "the model has no image tower and no LiT dataset manifest "
          "(config.data.train_dir) names the tower of its embeddings: pass "
          "it with --image_tower")
    manifest_path, spec, image_mode = named
    spec = dataclasses.replace(
        spec, checkpoint=_recorded_checkpoint(spec, manifest_path))
    sha256 = model_loader.checkpoint_sha256(spec.checkpoint)
    if sha256 != spec.sha256:
      raise ValueError(
          f"the image tower {spec.checkpoint} has sha256 {sha256[:12]}..., "
          f"but {manifest_path} says the training embeddings were made by "
          f"one of sha256 {spec.sha256[:12]}...: another tower; pass the "
          "one that made them with --image_tower")
    return ImageTower(spec, model_loader.load_tower_params(spec), image_mode,
                      TOWER_FROM_MANIFEST, spec.sha256)

  tower_path = os.fspath(tower_path)
  is_npz = model_loader.checkpoint_kind(tower_path) == model_loader.BIG_VISION
  if is_npz and tower_config_file is None:
    raise ValueError(f"--image_tower {tower_path} is a big_vision .npz: "
                     "give its architecture with --image_tower_config")
  if not is_npz and tower_config_file is not None:
    raise ValueError("--image_tower_config is for .npz towers; checkpoints "
                     "of our trainer carry their config")
  model_config = (model_loader.load_config_file(tower_config_file)
                  if tower_config_file else None)
  image_size, expected = None, ""
  image_mode = embed.tower_image_mode(tower_path, tower_config_file)
  if named is not None:
    _, named_spec, image_mode = named
    image_size, expected = named_spec.image_size, named_spec.sha256
  spec = model_loader.describe_tower(tower_path, model_config, image_size)
  if expected and spec.sha256 != expected and progress is not None:
    progress(f"warning: --image_tower {tower_path} has sha256 "
             f"{spec.sha256[:12]}..., not the {expected[:12]}... of the "
             f"tower that made the training embeddings ({named[0]})")
  return ImageTower(spec, model_loader.load_tower_params(spec), image_mode,
                    TOWER_FROM_FLAG, expected)


# Preprocessing and encoding -----------------------------------------------


def eval_image_mode(data_config: ml_collections.ConfigDict) -> str:
  """The deterministic image preprocessing matching the training mode."""
  return input_pipeline.deterministic_image_mode(data_config.image_mode)


def image_preprocessing(config: ml_collections.ConfigDict,
                        image_tower: ImageTower | None) -> tuple[int, str]:
  """(image size, mode) images are decoded at for the model.

  Those of training, or for a SigLiT model those its frozen tower's
  embeddings were made with.
  """
  if image_tower is None:
    return int(config.data.image_size), eval_image_mode(config.data)
  return image_tower.spec.image_size, image_tower.image_mode


def model_encoder(config: ml_collections.ConfigDict,
                  image_tower: ImageTower | None, batch_size: int,
                  progress: Callable[[str], None] | None = None
                  ) -> encoding.Encoder:
  """The encoder of the model `config` describes.

  A SigLiT model (no image tower) needs `image_tower`, the frozen tower of
  its training embeddings (`choose_image_tower`); other models none.

  Raises:
    ValueError: for a missing or superfluous tower, or a bad batch size.
  """
  if image_tower is None:
    return encoding.Encoder(config, batch_size=batch_size, progress=progress)
  return encoding.Encoder(
      config, tower=image_tower.spec.module(), tower_params=image_tower.params,
      tower_embedding_dim=image_tower.spec.embedding_dim,
      tower_name=image_tower.spec.checkpoint, batch_size=batch_size,
      progress=progress)


# Choosing: flags and periodic evaluators ----------------------------------


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
  """The flags that choose the model, its vocabulary and a SigLiT tower
  (read by `load_model`)."""
  parser.add_argument("--checkpoint", required=True, metavar="PATH",
                      help="a training workdir (its newest checkpoint is "
                      "used), a step directory WORKDIR/checkpoints/STEP, or "
                      "a big_vision .npz (then give --config and --vocab); "
                      "SigLiT checkpoints (no image tower) also need the "
                      "frozen tower of their training embeddings: see "
                      "--image_tower")
  parser.add_argument("--config", metavar="FILE",
                      help="with a big_vision .npz checkpoint: a training "
                      "config file giving its architecture, image size, "
                      "text length and vocabulary name; a released "
                      "checkpoint's preset is trainer/configs/released.py:"
                      "NAME (e.g. released.py:so400m16_i18n_256)")
  parser.add_argument("--image_tower", metavar="PATH",
                      help="for a SigLiT checkpoint only: the frozen image "
                      "tower whose precomputed embeddings it was trained "
                      "on, as a training workdir, step directory or "
                      "big_vision .npz (then also --image_tower_config); "
                      "images go through it, then the checkpoint's image "
                      "head. Default: the tower (and step) named in "
                      "manifest.json of the training dataset "
                      "(config.data.train_dir), which must still have the "
                      "sha256 recorded there. Images are preprocessed at "
                      "that manifest's image size and mode, as "
                      "python -m pipelines.embed did")
  parser.add_argument("--image_tower_config", metavar="FILE",
                      help="with an .npz --image_tower: a training config "
                      "file or a run's config.json whose model.image, "
                      "model.out_dim and data.image_size describe the "
                      "tower (as pipelines.embed --model_config)")
  parser.add_argument("--vocab", metavar="PATH",
                      help="the vocabulary: a directory with vocab.json or "
                      "a SentencePiece .model file (a release's c4_en or "
                      "mc4 model); default: found by name "
                      "and sha256 from the training dataset manifest near "
                      "the dataset and the workdir")
  parser.add_argument("--lowercase", nargs="?", metavar="MODE",
                      const=vocabulary_lib.LOWERCASE_UNICODE,
                      choices=vocabulary_lib.LOWERCASE_MODES,
                      help="lowercase texts (captions, prompts) before "
                      "tokenising: none, ascii (A-Z only, as big_vision's "
                      "tokenize) or unicode (the default MODE); default: "
                      "config.data.lowercase if set, else as the "
                      "vocabulary's card says")
  parser.add_argument("--no-lowercase", dest="lowercase",
                      action="store_const",
                      const=vocabulary_lib.LOWERCASE_NONE,
                      help="same as --lowercase none")


@dataclasses.dataclass(frozen=True)
class Model:
  """A model to evaluate, with the vocabulary and tower it needs.

  Attributes:
    config: the training config (architecture, preprocessing, dataset).
    params: the parameter tree (`trainer.models.two_towers` layout).
    checkpoint: where `params` come from.
    vocabulary: the vocabulary captions and prompts are tokenised with.
    image_tower: the frozen tower of a SigLiT model; None for others.
  """

  config: ml_collections.ConfigDict
  params: Params
  checkpoint: model_loader.Provenance
  vocabulary: vocabulary_choice.VocabularyChoice
  image_tower: ImageTower | None

  def to_json(self) -> dict[str, Any]:
    """What a report records of it: checkpoint, image tower, vocabulary."""
    checkpoint = self.checkpoint
    return {
        "checkpoint": {"path": checkpoint.path, "kind": checkpoint.kind,
                       "step": checkpoint.step},
        **({} if self.image_tower is None else
           {"image_tower": self.image_tower.to_json()}),
        "vocabulary": self.vocabulary.to_json(),
    }


def load_model(args: argparse.Namespace,
               progress: Callable[[str], None] | None = None) -> Model:
  """The model, vocabulary and SigLiT image tower the flags of
  `add_model_arguments` choose.

  Raises:
    ValueError: for a bad checkpoint, vocabulary or tower, or a tower given
      for a model with its own image tower.
  """
  config, params, checkpoint = model_loader.load(args.checkpoint,
                                                 args.config)
  choice = vocabulary_choice.choose_vocabulary(
      config, vocab_path=args.vocab, workdir=checkpoint.workdir,
      lowercase=args.lowercase, progress=progress)
  image_tower = None
  if config.model.image is None:
    image_tower = choose_image_tower(
        config, tower_path=args.image_tower,
        tower_config_file=args.image_tower_config, progress=progress)
  elif args.image_tower or args.image_tower_config:
    raise ValueError("--image_tower and --image_tower_config are for "
                     f"SigLiT checkpoints; {checkpoint.path} has its own "
                     "image tower")
  return Model(config, params, checkpoint, choice, image_tower)


def periodic_choice(config: ml_collections.ConfigDict,
                    eval_config: ml_collections.ConfigDict,
                    workdir: str | os.PathLike[str]
                    ) -> tuple[vocabulary_lib.Vocabulary, ImageTower | None]:
  """The vocabulary and SigLiT image tower of a periodic evaluator.

  `eval_config` is its config.evals entry: `vocab`, `image_tower` and
  `image_tower_config` when set, else the rules find them. Warnings are
  printed.

  Raises:
    ValueError: if no vocabulary or (for a SigLiT model) tower is found.
  """
  choice = vocabulary_choice.choose_vocabulary(
      config, vocab_path=eval_config.vocab, workdir=workdir, progress=print)
  image_tower = None
  if config.model.image is None:
    image_tower = choose_image_tower(
        config, tower_path=eval_config.image_tower,
        tower_config_file=eval_config.image_tower_config, progress=print)
  return choice.vocabulary, image_tower
