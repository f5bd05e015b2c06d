r"""mSigLIP B/16: multilingual pretraining with a bottlenecked token embedding.

SigLIP B/16 (`siglip_b16`) with the 250k multilingual vocabulary, 64 text
tokens, and the token embedding factorised as a 250k x 96 table and a
96 x 768 projection (24.07M parameters instead of 192M for a full table).

  python -m trainer.train --config trainer/configs/msiglip_b16.py \
      --workdir DIR --config.data.train_dir=DATASET
"""

import ml_collections

from trainer.configs import siglip_b16


def get_config() -> ml_collections.ConfigDict:
  """The mSigLIP B/16 config."""
  config = siglip_b16.get_config()
  config.data.vocab_name = "multi250k"
  config.data.text_len = 64
  config.model.text.vocab_size = 250_000
  config.model.text.bottleneck_dim = 96
  return config
