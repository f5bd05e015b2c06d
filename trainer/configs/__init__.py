"""Training configurations: one file per experiment with `get_config()`.

`base_config()` holds every key of the schema with its default; each config
file starts from it and sets what differs. Any key can be overridden on the
command line (`--config.model.text.vocab_size=1000`); keys that default to
None are typed placeholders so that such overrides work.
"""

import ml_collections
from ml_collections import config_dict

from pipelines import records
from trainer import optimizers


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
      image_field=records.IMAGE_ENCODED,  # Or IMAGE_EMBEDDING (SigLiT).
      shuffle_seed=0,
      num_workers=0,  # Grain prefetch processes; 0 reads in-process.
      lang_weights=config_dict.placeholder(dict),  # lang -> sampling weight.
      lowercase=False,
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
          data_dir=config_dict.placeholder(str),
          langs=(),  # Empty: all 36 languages.
          every=0,
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
