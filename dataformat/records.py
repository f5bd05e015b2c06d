"""The dataset record schema: field names and conversion to and from bytes.

A record is a serialised `tf.train.Example`. Every
reader of datasets (the trainer's input pipeline, `pipelines.embed`,
`pipelines.inspect`, `pipelines.verify`) goes through `parse_record`; every
writer through `serialize_record`. Field names are defined here only.
"""

from collections.abc import Mapping, Sequence
import dataclasses

import numpy as np

from dataformat import example_proto

SCHEMA_VERSION = 2

KEY = "key"
IMAGE_ENCODED = "image/encoded"
IMAGE_HEIGHT = "image/height"
IMAGE_WIDTH = "image/width"
IMAGE_ORIGINAL_HEIGHT = "image/original_height"
IMAGE_ORIGINAL_WIDTH = "image/original_width"
IMAGE_SHA256 = "image/sha256"
IMAGE_EMBEDDING = "image/embedding"
TEXT = "text"
LANG = "lang"
LANG_SCORE = "lang/score"
TOKENS_PREFIX = "tokens/"
SOURCE = "source"
# Where the pair came from, as its reader found it (e.g. img2dataset's
# per-sample metadata); absent when the input does not say.
SOURCE_URL = "source/url"
SOURCE_KEY = "source/key"
SOURCE_SHA256 = "source/sha256"
SOURCE_WIDTH = "source/original_width"
SOURCE_HEIGHT = "source/original_height"
SCORE_PREFIX = "score/"

UNDETERMINED_LANG = "und"


def tokens_field(vocab_name: str) -> str:
  """The record field holding the token ids of vocabulary `vocab_name`."""
  return TOKENS_PREFIX + vocab_name


def score_field(score_name: str) -> str:
  """The record field holding the image-text score of model `score_name`."""
  return SCORE_PREFIX + score_name


@dataclasses.dataclass
class Record:
  """One training example as stored in a dataset.

  `image_encoded` is empty in LiT datasets, which carry `image_embedding`
  instead. `image_sha256` is the hex SHA-256 of the stored RGB pixels (decoded
  and resized, before JPEG coding: `pipelines.images.pixel_sha256`), the key
  used for de-duplication and block-lists. The `source_*` fields trace
  the pair to its origin: the URL, the source's own key and content hash,
  and the image size before the source resized it (img2dataset's
  `original_width`/`original_height`); empty or 0 where unknown. `scores`
  holds image-text agreement scores by model name.
  """

  key: str
  text: str
  lang: str = UNDETERMINED_LANG
  lang_score: float = 0.0
  source: str = ""
  image_encoded: bytes = b""
  image_height: int = 0
  image_width: int = 0
  image_original_height: int = 0
  image_original_width: int = 0
  image_sha256: str = ""
  tokens: dict[str, list[int]] = dataclasses.field(default_factory=dict)
  image_embedding: np.ndarray | None = None
  source_url: str = ""
  source_key: str = ""
  source_sha256: str = ""
  source_width: int = 0
  source_height: int = 0
  scores: dict[str, float] = dataclasses.field(default_factory=dict)


def _bytes(values: Sequence[bytes]):
  return example_proto.Feature(
      bytes_list=example_proto.BytesList(value=values))


def _ints(values: Sequence[int]):
  return example_proto.Feature(
      int64_list=example_proto.Int64List(value=values))


def _floats(values: Sequence[float]):
  return example_proto.Feature(
      float_list=example_proto.FloatList(value=values))


def serialize_record(record: Record) -> bytes:
  """Serialises `record` as a `tf.train.Example`, deterministically."""
  feature = {
      KEY: _bytes([record.key.encode()]),
      TEXT: _bytes([record.text.encode("utf-8")]),
      LANG: _bytes([record.lang.encode()]),
      LANG_SCORE: _floats([record.lang_score]),
      SOURCE: _bytes([record.source.encode("utf-8")]),
  }
  if record.image_encoded:
    feature[IMAGE_ENCODED] = _bytes([record.image_encoded])
    feature[IMAGE_HEIGHT] = _ints([record.image_height])
    feature[IMAGE_WIDTH] = _ints([record.image_width])
  if record.image_original_height or record.image_original_width:
    feature[IMAGE_ORIGINAL_HEIGHT] = _ints([record.image_original_height])
    feature[IMAGE_ORIGINAL_WIDTH] = _ints([record.image_original_width])
  if record.image_sha256:
    feature[IMAGE_SHA256] = _bytes([record.image_sha256.encode()])
  if record.image_embedding is not None:
    feature[IMAGE_EMBEDDING] = _floats(
        np.asarray(record.image_embedding, np.float32).ravel().tolist())
  for name, ids in record.tokens.items():
    feature[tokens_field(name)] = _ints([int(i) for i in ids])
  for name, value in ((SOURCE_URL, record.source_url),
                      (SOURCE_KEY, record.source_key),
                      (SOURCE_SHA256, record.source_sha256)):
    if value:
      feature[name] = _bytes([value.encode("utf-8")])
  if record.source_width or record.source_height:
    feature[SOURCE_WIDTH] = _ints([record.source_width])
    feature[SOURCE_HEIGHT] = _ints([record.source_height])
  for name, score in record.scores.items():
    feature[score_field(name)] = _floats([score])
  example = example_proto.Example(
      features=example_proto.Features(feature=feature))
  return example.SerializeToString(deterministic=True)


def _first_bytes(feature: Mapping, name: str, default: bytes = b"") -> bytes:
  if name not in feature:
    return default
  values = feature[name].bytes_list.value
  return values[0] if values else default


def _first_int(feature: Mapping, name: str) -> int:
  if name not in feature:
    return 0
  values = feature[name].int64_list.value
  return int(values[0]) if values else 0


def parse_record(data: bytes) -> Record:
  """Parses bytes written by `serialize_record` (or by TensorFlow).

  Raises:
    ValueError: if `data` is not a `tf.train.Example` with a `key` and `text`.
  """
  example = example_proto.Example()
  try:
    example.ParseFromString(data)
  except Exception as e:  # protobuf raises its own DecodeError type.
    raise ValueError(f"record is not a tf.train.Example: {e}") from e
  feature = example.features.feature
  for required in (KEY, TEXT):
    if required not in feature:
      raise ValueError(f"record has no {required!r} field")
  lang_score = feature[LANG_SCORE].float_list.value if LANG_SCORE in feature else []
  embedding = None
  if IMAGE_EMBEDDING in feature:
    embedding = np.asarray(feature[IMAGE_EMBEDDING].float_list.value,
                           np.float32)
  tokens = {
      name[len(TOKENS_PREFIX):]: list(feature[name].int64_list.value)
      for name in sorted(feature) if name.startswith(TOKENS_PREFIX)
  }
  scores = {
      name[len(SCORE_PREFIX):]: float(feature[name].float_list.value[0])
      for name in sorted(feature)
      if name.startswith(SCORE_PREFIX) and feature[name].float_list.value
  }
  return Record(
      key=_first_bytes(feature, KEY).decode(),
      text=_first_bytes(feature, TEXT).decode("utf-8"),
      lang=_first_bytes(feature, LANG, UNDETERMINED_LANG.encode()).decode(),
      lang_score=float(lang_score[0]) if lang_score else 0.0,
      source=_first_bytes(feature, SOURCE).decode("utf-8"),
      image_encoded=_first_bytes(feature, IMAGE_ENCODED),
      image_height=_first_int(feature, IMAGE_HEIGHT),
      image_width=_first_int(feature, IMAGE_WIDTH),
      image_original_height=_first_int(feature, IMAGE_ORIGINAL_HEIGHT),
      image_original_width=_first_int(feature, IMAGE_ORIGINAL_WIDTH),
      image_sha256=_first_bytes(feature, IMAGE_SHA256).decode(),
      tokens=tokens,
      image_embedding=embedding,
      source_url=_first_bytes(feature, SOURCE_URL).decode("utf-8"),
      source_key=_first_bytes(feature, SOURCE_KEY).decode("utf-8"),
      source_sha256=_first_bytes(feature, SOURCE_SHA256).decode("utf-8"),
      source_width=_first_int(feature, SOURCE_WIDTH),
      source_height=_first_int(feature, SOURCE_HEIGHT),
      scores=scores,
  )
