r"""The released big_vision SigLIP checkpoints, one preset per release.

  python -m eval.xm3600 --data_dir xm3600/ --output reports/ \
      --checkpoint webli_i18n_so400m_16_256_78061115.npz \
      --config trainer/configs/released.py:so400m16_i18n_256 --vocab mc4.model

A preset is named after the file's argument (`released.py:NAME`, as
ml_collections' config_flags reads it), wherever a config file is taken:
`eval.xm3600 --config`, `pipelines.embed --model_config`,
`trainer.train --config` (fine-tuning from a release with
--config.init.checkpoint=FILE.npz).

The settings are those of big_vision's `SigLIP_demo.ipynb` and of its model
code (`models/vit.py`, `models/proj/image_text/{two_towers,
text_transformer}.py`): the image tower a ViT of the release's variant with
MAP pooling, learned position embeddings and no head; the text tower a
transformer of the text variant over a full vocab_size x width token table
(no bottleneck), pooled at its last token, with a linear head to the
embedding size (none for So400m/16-i18n, whose text features are used as
they are); t' and b initialised to log(10) and -10. Preprocessing as the
release's: `decode|resize(RES)|value_range(-1, 1)`
(`image_mode="resize_bilinear"`: TensorFlow's decoding and bilinear resize,
reproduced without TensorFlow), and `tokenize(max_len=TEXT_LEN,
model=c4_en|mc4, eos="sticky", pad_value=1)` with big_vision's ASCII-only
lowercasing (`data.lowercase="ascii"`).
"""

import dataclasses

import ml_collections

from trainer import configs
from trainer import input_pipeline
from vocabularies import vocabulary

TEMPERATURE_INIT = 10.0
BIAS_INIT = -10.0


@dataclasses.dataclass(frozen=True)
class Release:
  """One released checkpoint: its file and what it needs to run.

  Attributes:
    checkpoint: the file name under gs://big_vision/siglip/.
    image_variant: the ViT variant with its patch size ("So400m/14").
    image_size: the side of the square images it was trained at.
    text_variant: the text transformer's variant.
    text_len: tokens per caption.
    vocab_size: the SentencePiece model's size.
    vocab_name: big_vision's name of that model (c4_en: 32k English, mc4:
      250k multilingual).
    embedding_dim: the text head's output size; None: no text head.
  """

  checkpoint: str
  image_variant: str
  image_size: int
  text_variant: str
  text_len: int
  vocab_size: int
  vocab_name: str
  embedding_dim: int | None


_EN = dict(vocab_size=32_000, vocab_name="c4_en")
_I18N = dict(vocab_size=250_000, vocab_name="mc4")

RELEASES = {
    "b16_224": Release("webli_en_b16_224_63724782.npz", "B/16", 224, "B", 64,
                       embedding_dim=768, **_EN),
    "b16_256": Release("webli_en_b16_256_60500360.npz", "B/16", 256, "B", 64,
                       embedding_dim=768, **_EN),
    "b16_384": Release("webli_en_b16_384_68578854.npz", "B/16", 384, "B", 64,
                       embedding_dim=768, **_EN),
    "b16_512": Release("webli_en_b16_512_68580893.npz", "B/16", 512, "B", 64,
                       embedding_dim=768, **_EN),
    "l16_256": Release("webli_en_l16_256_60552751.npz", "L/16", 256, "L", 64,
                       embedding_dim=1024, **_EN),
    "l16_384": Release("webli_en_l16_384_63634585.npz", "L/16", 384, "L", 64,
                       embedding_dim=1024, **_EN),
    "so400m14_224": Release("webli_en_so400m_224_57633886.npz", "So400m/14",
                            224, "So400m", 16, embedding_dim=1152, **_EN),
    "so400m14_384": Release("webli_en_so400m_384_58765454.npz", "So400m/14",
                            384, "So400m", 64, embedding_dim=1152, **_EN),
    "b16_i18n_256": Release("webli_i18n_b16_256_66117334.npz", "B/16", 256,
                            "B", 64, embedding_dim=768, **_I18N),
    "so400m16_i18n_256": Release("webli_i18n_so400m_16_256_78061115.npz",
                                 "So400m/16", 256, "So400m", 64,
                                 embedding_dim=None, **_I18N),
}


def release(name: str | None) -> Release:
  """The release called `name`.

  Raises:
    ValueError: one line listing the known names, if `name` is not one.
  """
  if name not in RELEASES:
    given = ("no preset name (use released.py:NAME)" if name is None else
             f"unknown release preset {name!r}")
    raise ValueError(f"{given}; known presets: {', '.join(RELEASES)}")
  return RELEASES[name]


def get_config(name: str | None = None) -> ml_collections.ConfigDict:
  """The config of the release `name` (a key of RELEASES)."""
  preset = release(name)
  config = configs.base_config()
  config.data.vocab_name = preset.vocab_name
  config.data.text_len = preset.text_len
  config.data.image_size = preset.image_size
  config.data.image_mode = input_pipeline.RESIZE_BILINEAR
  config.data.lowercase = vocabulary.LOWERCASE_ASCII

  config.model.image = configs.image_tower(
      preset.image_variant, pool_type="map", posemb="learn")
  config.model.text = configs.text_tower(preset.text_variant,
                                         vocab_size=preset.vocab_size)
  config.model.out_dim = (None, preset.embedding_dim)
  config.model.temperature_init = TEMPERATURE_INIT
  config.model.bias_init = BIAS_INIT
  return config
