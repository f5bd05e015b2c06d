r"""A tiny SigLIP that trains on the demo corpus on a 2-core CPU in minutes.

64 x 64 images in 8 x 8 patches (64 tokens) through a 4-layer, 96-wide ViT,
48 text tokens through a 2-layer, 96-wide text transformer. Multilingual, as
the demo corpus is (half English, the rest over the other 35 XM3600
languages): it reads the tokens of the `multi250k` vocabulary the demo trains
on that corpus (about 2,100 pieces, most captions under 48 tokens; the table
holds 4,096 ids). Another vocabulary: --config.data.vocab_name=NAME and
--config.model.text.vocab_size=N.

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
  config.total_steps = 1_000
  config.loss = "chunked_sigmoid"

  config.data.vocab_name = "multi250k"
  config.data.text_len = 48
  config.data.image_size = 64

  config.model.image = configs.image_tower(
      patch_size=8, width=WIDTH, depth=4, mlp_dim=4 * WIDTH, num_heads=4,
      pool_type="map", posemb="learn")
  config.model.text = configs.text_tower(
      width=WIDTH, depth=2, mlp_dim=4 * WIDTH, num_heads=4, vocab_size=4_096)
  config.model.out_dim = (None, WIDTH)

  config.optim.lr = 1e-3
  config.optim.warmup_steps = 30
  config.optim.schedule = "cosine"

  config.log_every = 50
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  return config
