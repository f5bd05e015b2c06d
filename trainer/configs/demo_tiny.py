r"""A tiny SigLIP that trains on the demo corpus on a 2-core CPU in minutes.

64 x 64 images in 8 x 8 patches (64 tokens) through a 4-layer, 96-wide ViT,
16 text tokens through a 2-layer, 96-wide text transformer. The embedding
table holds 32k ids, enough for any demo vocabulary; a smaller vocabulary may
shrink it with --config.model.text.vocab_size=N.

  python -m trainer.train --config trainer/configs/demo_tiny.py \
      --workdir DIR --config.data.train_dir=DATASET
"""

import ml_collections

from trainer import configs

WIDTH = 96


def get_config() -> ml_collections.ConfigDict:
  """The CPU demo config."""
  config = configs.base_config()
  config.batch_size = 64
  config.total_steps = 300
  config.loss = "chunked_sigmoid"

  config.data.vocab_name = "en32k"
  config.data.text_len = 16
  config.data.image_size = 64

  config.model.image = configs.image_tower(
      patch_size=8, width=WIDTH, depth=4, mlp_dim=4 * WIDTH, num_heads=4,
      pool_type="map", posemb="learn")
  config.model.text = configs.text_tower(
      width=WIDTH, depth=2, mlp_dim=4 * WIDTH, num_heads=4, vocab_size=32_000)
  config.model.out_dim = (None, WIDTH)

  config.optim.lr = 1e-3
  config.optim.warmup_steps = 30
  config.optim.schedule = "cosine"

  config.log_every = 10
  config.checkpoint_every = 100
  config.keep_checkpoints = 2
  return config
