"""Vocabulary loading, encoding conventions, round trips and pickling."""

import json
import pickle
import shutil
import unicodedata

import pytest
import sentencepiece

from pipelines import langid
from pipelines.captions import decode_caption
from pipelines.readers import dispatch
from vocabularies import vocabulary
from vocabularies.vocabulary import pad_or_truncate
from vocabularies.vocabulary import Vocabulary

EOS = vocabulary.EOS_ID


def _demo_captions(corpus) -> dict[str, list[str]]:
  """The demo corpus's clean captions by language."""
  by_lang = {}
  for shard in corpus.shards:
    for example in dispatch.read_examples(str(shard)):
      demo = example.metadata["demo"]
      if demo["defect"] is None:
        by_lang.setdefault(demo["lang"], []).append(
            decode_caption(example.caption))
  return by_lang


def _xm3600_captions(xm3600_dir) -> dict[str, list[str]]:
  """The mini XM3600 set's captions by language (unseen in training)."""
  by_lang = {}
  with open(xm3600_dir / "captions.jsonl", encoding="utf-8") as f:
    for line in f:
      entry = json.loads(line)
      for lang in langid.XM3600_LANGUAGES:
        by_lang.setdefault(lang, []).extend(entry[lang]["caption"])
  return by_lang


def _nmt_nfkc(text: str) -> str:
  # SentencePiece's nmt_nfkc rule (T5's too) is NFKC that also turns the
  # zero-width non-joiner into a space.
  return unicodedata.normalize("NFKC", text).replace("\u200c", " ")


@pytest.fixture(scope="module")
def multi(multi_vocab_dir) -> Vocabulary:
  return Vocabulary.load(multi_vocab_dir)


@pytest.fixture(scope="module")
def en(en_vocab_dir) -> Vocabulary:
  return Vocabulary.load(en_vocab_dir)


@pytest.fixture(scope="module")
def demo_captions(demo_corpus) -> dict[str, list[str]]:
  return _demo_captions(demo_corpus)


def test_load_directory_reads_vocab_json(multi, multi_vocab_dir):
  card = json.loads((multi_vocab_dir / vocabulary.VOCAB_JSON).read_text())
  assert multi.name == card["name"] == "multi250k"
  assert multi.size == card["size"] == 1000
  assert multi.sha256 == card["sha256"]
  assert multi.lowercase is card["lowercase"] is True
  assert multi.card.preset == "multi250k"


def test_load_bare_model_file(multi_vocab_dir, tmp_path):
  model = tmp_path / "mc4_demo.model"
  shutil.copy(multi_vocab_dir / "multi250k.model", model)
  bare = Vocabulary.load(str(model))
  assert bare.name == "mc4_demo"
  assert bare.card is None
  assert bare.lowercase is vocabulary.DEFAULT_LOWERCASE
  assert bare.sha256 == Vocabulary.load(multi_vocab_dir).sha256
  cased = Vocabulary.load(model, lowercase=False, name="c4")
  assert (cased.name, cased.lowercase) == ("c4", False)


def test_special_ids_follow_t5(multi_vocab_dir, en_vocab_dir):
  for directory, name in ((multi_vocab_dir, "multi250k"),
                          (en_vocab_dir, "en32k")):
    model = sentencepiece.SentencePieceProcessor(
        model_file=str(directory / f"{name}.model"))
    assert (model.pad_id(), model.eos_id(), model.unk_id(),
            model.bos_id()) == (0, 1, 2, -1)
    assert [model.id_to_piece(i) for i in range(3)] == [
        "<pad>", "</s>", "<unk>"]


def test_pad_id_is_eos(multi):
  assert multi.eos_id == multi.pad_id == EOS


def test_encode_appends_eos(multi, demo_captions):
  for texts in demo_captions.values():
    ids = multi.encode(texts[0])
    assert ids[-1] == EOS
    assert EOS not in ids[:-1]


def test_truncation_keeps_eos_last(multi, demo_captions):
  text = max((t for ts in demo_captions.values() for t in ts), key=len)
  full = multi.encode(text)
  assert len(full) > 16
  for max_len in (1, 2, 16, len(full) - 1):
    ids = multi.encode(text, max_len=max_len)
    assert ids == full[:max_len - 1] + [EOS]
  assert multi.encode(text, max_len=len(full)) == full
  assert multi.encode(text, max_len=len(full) + 1) == full


def test_bad_max_len_rejected(multi):
  with pytest.raises(ValueError, match="max_len"):
    multi.encode("a red circle", max_len=0)


@pytest.mark.parametrize("ids, length, expected", [
    # big_vision's `tokenize(eos="sticky", pad_value=1)` examples, max_len 3.
    ([2, EOS], 3, [2, EOS, EOS]),
    ([2, 2, EOS], 3, [2, 2, EOS]),
    ([2, 2, 2, EOS], 3, [2, 2, EOS]),
    ([5, 6, 7, 8, 9, EOS], 4, [5, 6, 7, EOS]),
    ([EOS], 1, [EOS]),
])
def test_pad_or_truncate_is_sticky(ids, length, expected):
  assert pad_or_truncate(ids, length, eos_id=EOS, pad_id=EOS) == expected


def test_stored_64_to_model_16_puts_eos_last(multi, demo_captions):
  for texts in demo_captions.values():
    for text in texts:
      stored = multi.encode(text, max_len=64)
      tokens = pad_or_truncate(stored, 16, multi.eos_id, multi.pad_id)
      assert len(tokens) == 16 and tokens[-1] == EOS
      assert tokens == pad_or_truncate(multi.encode(text), 16, EOS, EOS)


def test_round_trip_in_all_36_languages(multi, demo_captions, xm3600_dir):
  unseen = _xm3600_captions(xm3600_dir)
  assert set(demo_captions) == set(unseen) == set(langid.XM3600_LANGUAGES)
  for lang in langid.XM3600_LANGUAGES:
    for text in demo_captions[lang] + unseen[lang]:
      assert multi.decode(multi.encode(text)) == _nmt_nfkc(text.lower()), lang


def test_byte_fallback_spells_unseen_characters(multi):
  text = "🦩 ᚠᚢᚦ"
  ids = multi.encode(text)
  assert vocabulary.UNK_ID not in ids
  assert multi.decode(ids) == text


def test_english_round_trip(en, demo_captions):
  for text in demo_captions["en"]:
    assert en.decode(en.encode(text)) == _nmt_nfkc(text.lower())


def test_decode_stops_at_eos_and_drops_padding(multi):
  ids = multi.encode("a red circle")
  padded = pad_or_truncate(ids, 20, EOS, EOS)
  assert multi.decode(padded) == "a red circle"
  assert multi.decode([vocabulary.PAD_PIECE_ID] + ids) == "a red circle"


def test_lowercasing_is_unicode_aware(multi_vocab_dir):
  lower = Vocabulary.load(multi_vocab_dir)
  assert (lower.encode("ÉCOLE ΚΎΚΛΟΣ Круг")
          == lower.encode("école κύκλος круг"))
  cased = Vocabulary.load(multi_vocab_dir, lowercase=False)
  assert cased.encode("Круг") != cased.encode("круг")


@pytest.mark.parametrize("num_threads", [1, 2])
def test_encode_batch_equals_encode(multi_vocab_dir, demo_captions,
                                    num_threads):
  multi = Vocabulary.load(multi_vocab_dir, num_threads=num_threads)
  texts = [t for ts in demo_captions.values() for t in ts]
  assert multi.encode_batch(texts) == [multi.encode(t) for t in texts]
  assert multi.encode_batch(texts, max_len=16) == [
      multi.encode(t, max_len=16) for t in texts]
  assert multi.encode_batch([]) == []


def test_pickle_carries_the_model_not_the_path(multi_vocab_dir, tmp_path,
                                               demo_captions):
  copy = tmp_path / "vocab"
  shutil.copytree(multi_vocab_dir, copy)
  original = Vocabulary.load(copy, num_threads=2)
  data = pickle.dumps(original)
  shutil.rmtree(copy)
  restored = pickle.loads(data)
  model_bytes = (multi_vocab_dir / "multi250k.model").stat().st_size
  assert len(data) < model_bytes + 4096
  assert (restored.name, restored.sha256, restored.num_threads,
          restored.lowercase) == (original.name, original.sha256, 2, True)
  texts = demo_captions["ja"] + demo_captions["hi"]
  assert restored.encode_batch(texts) == original.encode_batch(texts)


def test_checksum_mismatch_rejected(multi_vocab_dir, tmp_path):
  copy = tmp_path / "vocab"
  shutil.copytree(multi_vocab_dir, copy)
  card = json.loads((copy / vocabulary.VOCAB_JSON).read_text())
  card["sha256"] = "0" * 64
  (copy / vocabulary.VOCAB_JSON).write_text(json.dumps(card))
  with pytest.raises(ValueError, match="sha256"):
    Vocabulary.load(copy)


@pytest.mark.parametrize("make_path, message", [
    (lambda d: d / "missing.model", "no SentencePiece model"),
    (lambda d: d, "neither"),
])
def test_bad_paths_rejected(tmp_path, make_path, message):
  with pytest.raises(ValueError, match=message):
    Vocabulary.load(make_path(tmp_path))


def test_not_a_model_rejected(tmp_path):
  (tmp_path / "junk.model").write_bytes(b"not a model")
  with pytest.raises(ValueError, match="not a SentencePiece model"):
    Vocabulary.load(tmp_path / "junk.model")


def test_card_json_round_trip(multi):
  assert vocabulary.VocabularyCard.from_json(multi.card.to_json()) == multi.card
  with pytest.raises(ValueError, match="unknown fields"):
    vocabulary.VocabularyCard.from_json('{"name": "x", "model_file": "x", '
                                        '"colour": 1}')
  with pytest.raises(ValueError, match="lacks"):
    vocabulary.VocabularyCard.from_json('{"name": "x"}')
