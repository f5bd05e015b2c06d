r"""SigLiT at demo size: a text tower against `demo_tiny`'s frozen image tower.

The demo chain trains `demo_tiny`, embeds its dataset with that run's image
tower (`python -m pipelines.embed`), then trains this config's text tower
(the size of `demo_tiny`'s) on the stored 96-d embeddings, with no image
decoding at all. No image head: the text tower learns to map into the frozen
image space, as LiT does.

  python -m trainer.train --config trainer/configs/demo_siglit.py \
      --workdir DIR --config.data.train_dir=LIT_DATASET
"""

import ml_collections

from dataformat import records
from trainer.configs import demo_tiny


def get_config() -> ml_collections.ConfigDict:
  """The CPU SigLiT demo config."""
  config = demo_tiny.get_config()
  config.total_steps = 600
  config.data.image_field = records.IMAGE_EMBEDDING
  config.model.image = None
  config.model.out_dim = (None, demo_tiny.WIDTH)
  config.optim.warmup_steps = 50
  return config
