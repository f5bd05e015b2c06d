r"""SigLIP B/16: English WebLI-style pretraining from scratch.

ViT-B/16 at 224 px with MAP pooling and no image head; a B text transformer
over 16 tokens (the SigLIP paper's B setting) of the 32k English vocabulary
with a 768-d head. The released big_vision B/16 checkpoints have the same
towers over 64 tokens: their presets are `released.py:b16_224` and the
others of `trainer/configs/released.py`. Sigmoid loss at batch 32k, chunked over
devices. Optimiser as in the SigLIP / SigLIP 2 recipe: Adam with beta2 0.95,
learning rate 1e-3, decoupled weight decay 1e-4, gradient clipping 1.0,
cosine decay after 20k warmup steps, 40B examples seen.

  python -m trainer.train --config trainer/configs/siglip_b16.py \
      --workdir DIR --config.data.train_dir=DATASET
"""

import ml_collections

from trainer import configs


def get_config() -> ml_collections.ConfigDict:
  """The SigLIP B/16 config."""
  config = configs.base_config()
  config.batch_size = 32_768
  config.total_steps = 40_000_000_000 // config.batch_size
  config.loss = "chunked_sigmoid"

  config.data.vocab_name = "en32k"
  config.data.text_len = 16
  config.data.image_size = 224

  config.model.image = configs.image_tower(
      "B/16", pool_type="map", posemb="learn")
  config.model.text = configs.text_tower("B", vocab_size=32_000)
  config.model.out_dim = (None, 768)

  config.optim.name = "adamw"
  config.optim.lr = 1e-3
  config.optim.b2 = 0.95
  config.optim.weight_decay = 1e-4
  config.optim.clip_norm = 1.0
  config.optim.schedule = "cosine"
  config.optim.warmup_steps = 20_000

  config.log_every = 100
  config.checkpoint_every = 5_000
  return config
