"""Training configurations: one file per experiment with `get_config()`.

`base_config()` holds every key of the schema with its default; each config
file starts from it and sets what differs. Any key can be overridden on the
command line (`--config.model.text.vocab_size=1000`); keys that default to
None are typed placeholders so that such overrides work. `with_defaults`
gives a saved config the keys added since it was saved.

A config path is a file, `trainer/configs/siglip_b16.py`, or a file and an
argument for its `get_config`, `trainer/configs/released.py:so400m14_384`
(ml_collections' `config_flags` convention, which the trainer uses);
`load_python_config` reads both for the other commands.
"""

from collections.abc import Mapping
import copy
import importlib.util
import os
import pathlib
from typing import Any

import ml_collections
from ml_collections import config_dict

from dataformat import files
from dataformat import records
from trainer import input_pipeline
from trainer import optimizers


# Keys whose values are paths (local or URIs); saved runs hold them resolved.
PATH_KEYS = ("data.train_dir", "evals.xm3600.data_dir", "evals.xm3600.vocab",
             "evals.xm3600.image_tower", "evals.xm3600.image_tower_config",
             "evals.zeroshot.data_dir", "evals.zeroshot.classes",
             "evals.zeroshot.vocab", "evals.zeroshot.image_tower",
             "evals.zeroshot.image_tower_config", "init.checkpoint")


def _tower(variant: str | None, **fields) -> ml_collections.ConfigDict:
  # dtype and remat are listed so that the command line can override them.
  return ml_collections.ConfigDict(
      dict(variant=variant, dtype="float32", remat=False, **fields))


def image_tower(variant: str | None = None,
                **fields) -> ml_collections.ConfigDict:
  """A ViT config (`trainer.models.vit.Model` fields)."""
  return _tower(variant, **fields)


def text_tower(variant: str | None = None, *, vocab_size: int,
               **fields) -> ml_collections.ConfigDict:
  """A text tower config (`trainer.models.text.Model` fields)."""
  fields.setdefault("bottleneck_dim", config_dict.placeholder(int))
  return _tower(variant, vocab_size=vocab_size, **fields)


def base_config() -> ml_collections.ConfigDict:
  """Every config key with its default; `model` towers are left to callers."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.batch_size = 32_768  # Global, over all hosts and devices.
  config.total_steps = 100_000
  config.loss = "chunked_sigmoid"  # Or "sigmoid", "softmax".

  config.data = ml_collections.ConfigDict(dict(
      train_dir=config_dict.placeholder(str),  # A dataset directory.
      split="train",
      vocab_name="en32k",  # Token ids come from record field tokens/<name>.
      text_len=16,
      image_size=224,
      # Or CENTER_CROP, or RANDOM_CROP (evaluated as CENTER_CROP), or
      # RESIZE_BILINEAR (big_vision's resize: the released checkpoints').
      image_mode=input_pipeline.RESIZE,
      image_field=records.IMAGE_ENCODED,  # Or IMAGE_EMBEDDING (SigLiT).
      shuffle_seed=0,
      num_workers=0,  # Grain prefetch processes; 0 reads in-process.
      lang_weights=config_dict.placeholder(dict),  # lang -> sampling weight.
      # How evaluation lowercases captions before tokenising: "none", "ascii"
      # (big_vision's) or "unicode"; None (or False in older runs): as the
      # vocabulary's card says (`vocabularies.vocabulary`).
      lowercase=config_dict.placeholder(str),
  ))

  config.model = ml_collections.ConfigDict(dict(
      image=None,  # An `image_tower(...)`, or None for precomputed embeddings.
      text=None,
      out_dim=(None, 768),  # (image, text) head sizes; None: no head.
      temperature_init=10.0,  # t = exp(t'), t' = log(10) at init.
      bias_init=-10.0,  # None: no bias.
  ))

  config.optim = optimizers.default_config()

  config.log_every = 100
  config.checkpoint_every = 1_000
  config.keep_checkpoints = 3
  config.eval_every = 0  # 0: no evaluation during training.
  config.evals = ml_collections.ConfigDict(dict(
      xm3600=ml_collections.ConfigDict(dict(
          # The module whose evaluator_from_config makes the evaluator.
          module="eval.xm3600",
          data_dir=config_dict.placeholder(str),
          langs=(),  # Empty: all 36 languages.
          every=0,
          # A vocabulary directory or .model; None: the one the training
          # dataset's manifest names (eval.vocabulary_choice finds it).
          vocab=config_dict.placeholder(str),
          batch_size=64,  # Images or captions per encoding step.
          # SigLiT runs: the frozen tower of the training embeddings (a
          # workdir, step directory or .npz); None: the one the LiT
          # dataset's manifest names. An .npz also needs its config file.
          image_tower=config_dict.placeholder(str),
          image_tower_config=config_dict.placeholder(str),
      )),
      # Zero-shot classification (eval.zeroshot; its module docstring has
      # the input layouts and file formats).
      zeroshot=ml_collections.ConfigDict(dict(
          module="eval.zeroshot",
          data_dir=config_dict.placeholder(str),  # Labelled images.
          # The class-name file; "{lang}" in it: one file per language.
          classes=config_dict.placeholder(str),
          # "clip", "short", "name" or a template file (may hold "{lang}").
          templates="short",
          # Empty: every language with a class file ("{lang}"), else en.
          langs=(),
          layout="auto",  # Or "folder", "tfrecord", "arrayrecord".
          split=config_dict.placeholder(str),
          image_field=config_dict.placeholder(str),
          label_field=config_dict.placeholder(str),
          every=0,
          # As evals.xm3600: None finds them from the training manifest.
          vocab=config_dict.placeholder(str),
          batch_size=64,
          image_tower=config_dict.placeholder(str),
          image_tower_config=config_dict.placeholder(str),
      )),
  ))

  config.init = ml_collections.ConfigDict(dict(
      checkpoint=config_dict.placeholder(str),  # Ours or a big_vision .npz.
      load=("img", "txt", "t", "b"),  # Top-level subtrees taken from it.
  ))

  config.distributed = ml_collections.ConfigDict(dict(
      initialize=False,  # Call jax.distributed.initialize (multi-host).
      coordinator_address=config_dict.placeholder(str),
      num_processes=config_dict.placeholder(int),
      process_id=config_dict.placeholder(int),
  ))
  return config


def with_defaults(saved: Mapping[str, Any]) -> ml_collections.ConfigDict:
  """A run's saved config, with every key it lacks at its default.

  Runs saved before a key was added to `base_config` read as if they had
  its default.
  """
  config = ml_collections.ConfigDict(saved)
  _add_missing(config, base_config())
  return config


def _add_missing(config: ml_collections.ConfigDict,
                 defaults: ml_collections.ConfigDict) -> None:
  for key, default in defaults.items():
    if key not in config:
      config[key] = default
    elif (isinstance(default, ml_collections.ConfigDict) and
          isinstance(config[key], ml_collections.ConfigDict)):
      _add_missing(config[key], default)


def with_resolved_paths(
    config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` whose paths (PATH_KEYS) are usable from anywhere.

  Local paths become absolute, URIs (`gs://...`) stay; a run's saved config
  must not depend on the directory it was started from.
  """
  resolved = copy.deepcopy(config)
  for key in PATH_KEYS:
    *parents, leaf = key.split(".")
    node = resolved
    for parent in parents:
      node = node.get(parent) if node is not None else None
    if node is not None and node.get(leaf):
      node[leaf] = files.resolve(node[leaf])
  return resolved


def split_config_path(path: str) -> tuple[str, str | None]:
  """(file, argument) of a config path `FILE.py` or `FILE.py:ARG`."""
  file, separator, argument = path.partition(":")
  return (file, argument) if separator else (path, None)


def load_python_config(path: str) -> ml_collections.ConfigDict:
  """`get_config()` of a local config file, or `get_config(ARG)` for `FILE:ARG`.

  Raises:
    ValueError: if the file is missing or does not give a config, as one
      line naming the path.
  """
  file, argument = split_config_path(path)
  if not os.path.isfile(file):
    raise ValueError(f"config file {file} does not exist")
  spec = importlib.util.spec_from_file_location(
      f"model_config_{pathlib.Path(file).stem}", file)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
    return (module.get_config() if argument is None else
            module.get_config(argument))
  except ValueError as e:
    raise ValueError(f"config file {path}: {e}") from e
  except Exception as e:  # pylint: disable=broad-except
    # Any error of the user's file, shown as one line.
    raise ValueError(f"cannot load config file {path}: "
                     f"{type(e).__name__}: {e}") from e
