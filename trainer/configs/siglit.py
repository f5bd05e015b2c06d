r"""SigLiT: a text tower trained against a frozen, precomputed image tower.

The image tower ran once (`python -m pipelines.embed`) and the dataset
carries its embeddings, so the model's image side has no tower
(`model.image = None`): the 768-d embeddings of a B/16 image tower go
straight to the loss, or through a trainable linear head when
`model.out_dim[0]` is set. Only the B text tower, its head, t and b train,
with weight decay on the (randomly initialised) text kernels only. Batch 32k
is enough for the sigmoid loss.

  python -m trainer.train --config trainer/configs/siglit.py \
      --workdir DIR --config.data.train_dir=LIT_DATASET
"""

import ml_collections

from dataformat import records
from trainer import configs


def get_config() -> ml_collections.ConfigDict:
  """The SigLiT config."""
  config = configs.base_config()
  config.batch_size = 32_768
  config.total_steps = 100_000
  config.loss = "chunked_sigmoid"

  config.data.vocab_name = "en32k"
  config.data.text_len = 16
  config.data.image_field = records.IMAGE_EMBEDDING

  config.model.image = None
  config.model.text = configs.text_tower("B", vocab_size=32_000)
  config.model.out_dim = (None, 768)

  config.optim.name = "adamw"
  config.optim.lr = 1e-3
  config.optim.b2 = 0.95
  config.optim.weight_decay = 1e-4
  config.optim.warmup_steps = 5_000
  return config
