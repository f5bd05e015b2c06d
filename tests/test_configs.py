"""Tests for trainer/configs: every config builds, initialises and overrides."""

import math

from absl import flags
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import pytest

from eval import encoding
from trainer import configs
from trainer import input_pipeline
from trainer import optimizers
from trainer.configs import demo_siglit
from trainer.configs import demo_tiny
from trainer.configs import msiglip_b16
from trainer.configs import siglip_b16
from trainer.configs import siglit
from trainer.models import two_towers

CONFIGS = {
    "demo_tiny": demo_tiny,
    "demo_siglit": demo_siglit,
    "siglip_b16": siglip_b16,
    "msiglip_b16": msiglip_b16,
    "siglit": siglit,
}

SCHEMA = (
    "seed", "batch_size", "total_steps", "loss",
    "data.train_dir", "data.split", "data.vocab_name", "data.text_len",
    "data.image_size", "data.image_mode", "data.shuffle_seed",
    "data.num_workers",
    "data.lang_weights", "data.lowercase",
    "model.image", "model.text", "model.out_dim", "model.temperature_init",
    "model.bias_init",
    "optim.name", "optim.lr", "optim.b1", "optim.b2", "optim.eps",
    "optim.weight_decay", "optim.clip_norm", "optim.schedule",
    "optim.warmup_steps", "optim.lr_mults", "optim.frozen", "optim.pretrained",
    "log_every", "checkpoint_every", "keep_checkpoints", "eval_every",
    "evals.xm3600.data_dir", "evals.xm3600.vocab", "evals.xm3600.batch_size",
    "init.checkpoint", "init.load",
    "distributed.initialize",
)


def count(tree) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def abstract_inputs(config):
  """Shapes of one example batch as the trainer feeds them."""
  if config.model.image is None:
    # A precomputed embedding the size of the text embedding.
    images = jax.ShapeDtypeStruct((2, config.model.out_dim[1]), jnp.float32)
  else:
    size = config.data.image_size
    images = jax.ShapeDtypeStruct((2, size, size, 3), jnp.float32)
  texts = jax.ShapeDtypeStruct((2, config.data.text_len), jnp.int32)
  return images, texts


def abstract_params(config):
  model = two_towers.build_model(config.model)
  variables = jax.eval_shape(model.init, jax.random.key(0),
                             *abstract_inputs(config))
  return model, variables["params"]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_builds_initialises_and_makes_an_optimizer(name):
  config = CONFIGS[name].get_config()
  for key in SCHEMA:
    node = config
    for part in key.split("."):
      assert part in node, f"{name} lacks {key}"
      node = node[part]
  model, params = abstract_params(config)
  zimg, ztxt, extras = jax.eval_shape(
      model.apply, {"params": params}, *abstract_inputs(config))
  assert zimg.shape == ztxt.shape and zimg.shape[0] == 2
  assert extras["t"].shape == extras["b"].shape == ()
  tx, lr = optimizers.make_optimizer(config.optim, params, config.total_steps)
  jax.eval_shape(tx.init, params)
  assert float(lr(config.optim.warmup_steps)) == pytest.approx(config.optim.lr)


def test_siglip_b16_sizes():
  config = siglip_b16.get_config()
  _, params = abstract_params(config)
  # ViT-B/16 at 224 px with the MAP head and no image head.
  assert count(params["img"]) == 92_884_224
  # 32k x 768 table, 16 x 768 position embeddings, 12 blocks, 768-d head.
  assert params["txt"]["pos_embedding"].shape == (1, 16, 768)
  assert count(params["txt"]) == 110_234_880
  assert config.optim.b2 == 0.95 and config.optim.clip_norm == 1.0


def test_msiglip_b16_bottleneck_versus_a_full_250k_table():
  config = msiglip_b16.get_config()
  _, params = abstract_params(config)
  embed = params["txt"]["embed_bottleneck"]
  assert embed["embedding"].shape == (250_000, 96)
  assert embed["kernel"].shape == (96, 768)
  assert count(embed) == 250_000 * 96 + 96 * 768 == 24_073_728
  assert params["txt"]["pos_embedding"].shape == (1, 64, 768)

  config.model.text.bottleneck_dim = None
  _, full = abstract_params(config)
  assert count(full["txt"]["Embed_0"]) == 250_000 * 768 == 192_000_000
  assert count(full) - count(params) == 192_000_000 - 24_073_728


def test_siglit_trains_only_the_text_side():
  config = siglit.get_config()
  assert config.model.image is None
  _, params = abstract_params(config)
  assert "img" not in params  # No image head unless out_dim[0] is set.
  assert set(params) == {"txt", "t", "b"}


def test_demo_tiny_is_small_enough_for_a_cpu():
  config = demo_tiny.get_config()
  config.model.text.vocab_size = 1000
  model, params = abstract_params(config)
  assert config.data.image_size == 64 and config.batch_size <= 128
  assert count(params) < 2_000_000
  zimg, _, _ = jax.eval_shape(model.apply, {"params": params},
                              *abstract_inputs(config))
  assert zimg.shape == (2, 96)


def test_demo_siglit_fits_demo_tiny_image_tower():
  """demo_siglit learns demo_tiny's text tower on its image tower's outputs."""
  tiny, lit = demo_tiny.get_config(), demo_siglit.get_config()
  assert lit.model.text == tiny.model.text
  assert (lit.data.vocab_name, lit.data.text_len) == (
      tiny.data.vocab_name, tiny.data.text_len)
  tiny_model, tiny_params = abstract_params(tiny)
  zimg, _, _ = jax.eval_shape(tiny_model.apply, {"params": tiny_params},
                              *abstract_inputs(tiny))
  _, lit_params = abstract_params(lit)
  assert set(lit_params) == {"txt", "t", "b"}
  # The stored embedding is the tower's raw output, its size the text's.
  assert lit.model.out_dim[1] == zimg.shape[-1] == tiny.model.image.width


def test_command_line_overrides(tmp_path, monkeypatch):
  argv = [
      "train", f"--config={demo_tiny.__file__}",
      "--config.model.text.vocab_size=1000",
      "--config.model.text.bottleneck_dim=16",
      f"--config.data.train_dir={tmp_path}",
      "--config.model.image.dtype=bfloat16",
      "--config.optim.warmup_steps=5",
  ]
  monkeypatch.setattr("sys.argv", argv)  # config_flags reads overrides there.
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", flag_values=flag_values)
  flag_values(argv)
  config = flag_values.config
  assert config.model.text.vocab_size == 1000
  assert config.model.text.bottleneck_dim == 16
  assert config.data.train_dir == str(tmp_path)
  assert config.model.image.dtype == "bfloat16"
  assert config.optim.warmup_steps == 5
  _, params = abstract_params(config)
  assert params["txt"]["embed_bottleneck"]["embedding"].shape == (1000, 16)


def test_defaults_keep_the_readers_behaviour():
  config = configs.base_config()
  assert config.data.image_mode == input_pipeline.RESIZE
  assert config.evals.xm3600.vocab is None
  assert config.evals.xm3600.batch_size == encoding.DEFAULT_BATCH_SIZE


def test_a_saved_config_gets_the_keys_it_lacks():
  saved = {"seed": 3, "data": {"train_dir": "/x", "image_size": 64},
           "model": {"image": None, "out_dim": [None, 8]},
           "evals": {"xm3600": {"data_dir": "/xm", "langs": [], "every": 2}}}
  config = configs.with_defaults(saved)
  assert (config.seed, config.data.train_dir, config.data.image_size) == (
      3, "/x", 64)
  assert config.model.image is None and list(config.model.out_dim) == [None, 8]
  assert config.data.image_mode == input_pipeline.RESIZE
  assert config.evals.xm3600.to_dict() == {
      "module": "eval.xm3600", "data_dir": "/xm", "langs": [], "every": 2,
      "vocab": None, "batch_size": encoding.DEFAULT_BATCH_SIZE,
      "image_tower": None, "image_tower_config": None}
  assert config.optim.to_dict() == optimizers.default_config().to_dict()


def test_path_keys_name_string_keys_of_the_schema():
  config = configs.base_config()
  for key in configs.PATH_KEYS:
    *parents, leaf = key.split(".")
    node = config
    for parent in parents:
      node = node[parent]
    assert leaf in node and node.get_type(leaf) is str, key
