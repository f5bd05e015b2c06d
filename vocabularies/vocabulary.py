"""SentencePiece vocabularies: loading, encoding and decoding captions.

The conventions are those of big_vision's SigLIP configs (pp op
`tokenize(max_len=..., eos="sticky", pad_value=1)` with the T5 `c4_en` 32k and
`mc4` 250k SentencePiece models), so that released SigLIP checkpoints read our
tokens as they were trained to:

- Special ids follow T5: pad = 0, EOS = 1, unk = 2, no BOS. Vocabularies
  trained by `vocabularies.train_vocab` have the same layout.
- `encode` appends EOS to every caption. Truncating to `max_len` keeps EOS as
  the last token ("sticky EOS"): ids[:max_len - 1] + [EOS].
- Padding uses the EOS id (pad_value=1): `Vocabulary.pad_id == eos_id`. With
  sticky EOS this puts EOS at the last position of every padded sequence,
  which is the token the SigLIP text tower pools. The model's own `<pad>`
  piece (id 0) is never produced.
- Lowercasing is applied before encoding, in one of three modes: "none",
  "unicode" (`str.lower`, this project's default) or "ascii" (A-Z only,
  what big_vision's `tokenize` op does with `tf.strings.lower`, and so what
  the released SigLIP checkpoints were trained on). The two lowercasings
  differ only on non-ASCII capitals (Greek, Cyrillic, accented Latin, ...).
  Settings are stored as before the modes existed: False ("none"), True
  ("unicode"), or the string "ascii".

Datasets store ids as `encode(text, max_len=64)` returns them (EOS-terminated,
unpadded); the trainer applies `pad_or_truncate` to get its text length.
"""

from collections.abc import Mapping, Sequence
import dataclasses
import hashlib
import json
import os
import posixpath
from typing import Any

import sentencepiece

from dataformat import files

VOCAB_JSON = "vocab.json"
MODEL_SUFFIX = ".model"
# T5's layout, which the released c4_en and mc4 models use.
PAD_PIECE_ID = 0
EOS_ID = 1
UNK_ID = 2
BOS_ID = -1
# big_vision lowercases by default; a bare released model gets this unless the
# caller says otherwise.
DEFAULT_LOWERCASE = True
LOWERCASE_NONE = "none"
LOWERCASE_ASCII = "ascii"
LOWERCASE_UNICODE = "unicode"
LOWERCASE_MODES = (LOWERCASE_NONE, LOWERCASE_ASCII, LOWERCASE_UNICODE)
# A lowercase setting: a mode name, or a bool (True: "unicode").
Lowercase = bool | str
_STORED_LOWERCASE = {LOWERCASE_NONE: False, LOWERCASE_UNICODE: True,
                     LOWERCASE_ASCII: LOWERCASE_ASCII}
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                             "abcdefghijklmnopqrstuvwxyz")


@dataclasses.dataclass(frozen=True)
class VocabularyCard:
  """The contents of a vocabulary directory's `vocab.json`.

  Attributes:
    name: the vocabulary's name; datasets store its ids as `tokens/<name>`.
    model_file: the SentencePiece model's file name, in the same directory.
    size: the number of pieces.
    sha256: hex SHA-256 of the model file's bytes.
    lowercase: how captions are lowercased before encoding (False, True for
      "unicode", or "ascii").
    normalization: SentencePiece's normalisation rule (e.g. `nmt_nfkc`).
    preset: the training preset (`en32k`, `multi250k`), if trained here.
    special_ids: the ids of `pad`, `eos`, `unk` and `bos` (-1: none).
    training: the SentencePiece and sampling options it was trained with.
    sample: the training sample: its size and language mix.
    input: the input patterns the captions came from.
  """

  name: str
  model_file: str
  size: int = 0
  sha256: str = ""
  lowercase: Lowercase = DEFAULT_LOWERCASE
  normalization: str = ""
  preset: str = ""
  special_ids: Mapping[str, int] = dataclasses.field(default_factory=dict)
  training: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  sample: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  input: Sequence[str] = ()

  def to_json(self) -> str:
    """The card as indented, key-sorted JSON (equal cards, equal bytes)."""
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True,
                      ensure_ascii=False) + "\n"

  @classmethod
  def from_json(cls, text: str) -> "VocabularyCard":
    """Parses `to_json` output; only `name` and `model_file` are required.

    Raises:
      ValueError: if `text` is not a JSON object with the required fields, or
        has fields the card does not know.
    """
    try:
      fields = json.loads(text)
    except json.JSONDecodeError as e:
      raise ValueError(f"{VOCAB_JSON} is not valid JSON: {e}") from None
    if not isinstance(fields, dict):
      raise ValueError(f"{VOCAB_JSON} must hold a JSON object")
    known = {f.name for f in dataclasses.fields(cls)}
    if unknown := sorted(set(fields) - known):
      raise ValueError(f"{VOCAB_JSON} has unknown fields {unknown}")
    if missing := sorted({"name", "model_file"} - set(fields)):
      raise ValueError(f"{VOCAB_JSON} lacks the fields {missing}")
    return cls(**fields)


def lowercase_setting(value: Lowercase) -> Lowercase:
  """A lowercase setting in its stored form: False, True or "ascii".

  Accepts the mode names of LOWERCASE_MODES and bools (True: "unicode").

  Raises:
    ValueError: for anything else.
  """
  if isinstance(value, bool):
    return value
  if value not in _STORED_LOWERCASE:
    raise ValueError(f"lowercase must be one of {', '.join(LOWERCASE_MODES)}, "
                     f"got {value!r}")
  return _STORED_LOWERCASE[value]


def prepare_text(text: str, lowercase: Lowercase) -> str:
  """The text SentencePiece sees, in training and in encoding.

  `lowercase` is a setting as `lowercase_setting` takes it.
  """
  setting = lowercase_setting(lowercase)
  if setting == LOWERCASE_ASCII:
    return text.translate(_ASCII_LOWER)
  return text.lower() if setting else text


def sticky_truncate(ids: Sequence[int], max_len: int,
                    eos_id: int) -> list[int]:
  """`ids` cut to `max_len`, with EOS as the last id when anything was cut.

  A list that fits is returned as it is, not copied.
  """
  if max_len < 1:
    raise ValueError(f"max_len must be positive, got {max_len}")
  if len(ids) <= max_len:
    return ids if isinstance(ids, list) else list(ids)
  return list(ids[:max_len - 1]) + [eos_id]


def pad_or_truncate(ids: Sequence[int], length: int, eos_id: int,
                    pad_id: int) -> list[int]:
  """`ids` (EOS-terminated) made exactly `length` long, keeping EOS last.

  Longer sequences are truncated with a sticky EOS, shorter ones padded with
  `pad_id` (big_vision's `eos="sticky"`).
  """
  ids = sticky_truncate(ids, length, eos_id)
  return ids + [pad_id] * (length - len(ids))


def _model_stem(path: str) -> str:
  base = posixpath.basename(path.rstrip("/"))
  return base[:-len(MODEL_SUFFIX)] if base.endswith(MODEL_SUFFIX) else base


class Vocabulary:
  """A SentencePiece model with the encoding conventions of this module.

  Pickles as its model bytes and settings (no file access on unpickling), so
  it ships to Beam workers as it is. Encoding uses one SentencePiece thread
  pool of `num_threads` threads per instance, made once; keep it at 1 inside
  Beam workers, which already run one process or thread per core.

  Attributes:
    name: from `vocab.json`, or the `.model` file's stem.
    size: the number of pieces.
    sha256: hex SHA-256 of the model bytes.
    eos_id: the EOS id, appended to every encoded caption.
    pad_id: the id `pad_or_truncate` pads with; equal to `eos_id`.
    lowercase: how captions are lowercased before encoding, in the stored
      form of `lowercase_setting`.
    num_threads: threads used by `encode_batch`.
    card: the parsed `vocab.json`, or None for a bare `.model` file.
  """

  def __init__(self, model_proto: bytes, name: str,
               lowercase: Lowercase = DEFAULT_LOWERCASE, num_threads: int = 1,
               card: VocabularyCard | None = None):
    if num_threads < 1:
      raise ValueError(f"num_threads must be positive, got {num_threads}")
    processor = sentencepiece.SentencePieceProcessor()
    try:
      processor.LoadFromSerializedProto(model_proto)
    except RuntimeError as e:
      raise ValueError(f"vocabulary {name!r} is not a SentencePiece model: "
                       f"{e}") from None
    if processor.eos_id() < 0:
      raise ValueError(f"vocabulary {name!r} has no EOS piece")
    self._model_proto = model_proto
    self._processor = processor
    self._thread_pool = sentencepiece.ThreadPool(num_threads)
    self.name = name
    self.size = processor.get_piece_size()
    self.sha256 = hashlib.sha256(model_proto).hexdigest()
    self.eos_id = processor.eos_id()
    self.pad_id = self.eos_id
    self.lowercase = lowercase_setting(lowercase)
    self.num_threads = num_threads
    self.card = card

  @classmethod
  def load(cls, path: str | os.PathLike, *,
           lowercase: Lowercase | None = None,
           name: str | None = None, num_threads: int = 1) -> "Vocabulary":
    """Loads a vocabulary directory or a bare SentencePiece `.model` file.

    Args:
      path: a directory with `vocab.json` and its model file, or a `.model`
        file (e.g. T5's c4_en or mc4 models); a local path or a URI
        (gs://...).
      lowercase: overrides `vocab.json`'s setting (a mode name or a bool);
        a bare model defaults to `DEFAULT_LOWERCASE`.
      name: overrides the name.
      num_threads: threads used by `encode_batch`.

    Raises:
      ValueError: if `path` is neither, or the model does not match the
        checksum or size in `vocab.json`.
    """
    path = os.fspath(path)
    if path.endswith(MODEL_SUFFIX):
      if not files.exists(path):
        raise ValueError(f"no SentencePiece model at {path}")
      card = None
      model_path = path
      default_name, default_lowercase = _model_stem(path), DEFAULT_LOWERCASE
    else:
      card_path = files.join(path, VOCAB_JSON)
      if not files.exists(card_path):
        raise ValueError(f"{path} is neither a {MODEL_SUFFIX} file nor a "
                         f"vocabulary directory with {VOCAB_JSON}")
      card = VocabularyCard.from_json(files.read_text(card_path))
      model_path = files.join(path, card.model_file)
      default_name, default_lowercase = card.name, card.lowercase
    model_proto = files.read_bytes(model_path)
    vocabulary = cls(
        model_proto, name=default_name if name is None else name,
        lowercase=default_lowercase if lowercase is None else lowercase,
        num_threads=num_threads, card=card)
    if card is not None:
      if card.sha256 and card.sha256 != vocabulary.sha256:
        raise ValueError(f"{model_path} has sha256 {vocabulary.sha256}, "
                         f"{VOCAB_JSON} says {card.sha256}")
      if card.size and card.size != vocabulary.size:
        raise ValueError(f"{model_path} has {vocabulary.size} pieces, "
                         f"{VOCAB_JSON} says {card.size}")
    return vocabulary

  def __getstate__(self) -> dict[str, Any]:
    return {"model_proto": self._model_proto, "name": self.name,
            "lowercase": self.lowercase, "num_threads": self.num_threads,
            "card": self.card}

  def __setstate__(self, state: dict[str, Any]) -> None:
    self.__init__(**state)

  def __repr__(self) -> str:
    return (f"Vocabulary(name={self.name!r}, size={self.size}, "
            f"lowercase={self.lowercase}, sha256={self.sha256[:12]}...)")

  def encode(self, text: str, max_len: int | None = None) -> list[int]:
    """The ids of `text`, EOS-terminated, sticky-truncated to `max_len`."""
    ids = self._processor.Encode(prepare_text(text, self.lowercase),
                                 add_eos=True)
    return ids if max_len is None else sticky_truncate(ids, max_len,
                                                       self.eos_id)

  def encode_batch(self, texts: Sequence[str],
                   max_len: int | None = None) -> list[list[int]]:
    """`encode` of each text, run on this vocabulary's thread pool."""
    batch = self._processor.Encode(
        [prepare_text(t, self.lowercase) for t in texts], add_eos=True,
        thread_pool=self._thread_pool)
    if max_len is None:
      return batch
    return [sticky_truncate(ids, max_len, self.eos_id) for ids in batch]

  def decode(self, ids: Sequence[int]) -> str:
    """The text of `ids`, read up to the first EOS; pad pieces are dropped."""
    ids = [int(i) for i in ids]
    if self.eos_id in ids:
      ids = ids[:ids.index(self.eos_id)]
    pad_piece = self._processor.pad_id()
    return self._processor.Decode([i for i in ids if i != pad_piece])
