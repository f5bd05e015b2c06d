"""Vocabulary training: its directory, sample, determinism and errors."""

import collections
import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from pipelines import filters
from pipelines import langid
from pipelines.captions import decode_caption
from pipelines.readers import dispatch
from pipelines.reasons import Rejection
from tests.fixtures import vocab as vocab_fixtures
from vocabularies import sampling
from vocabularies import train_vocab
from vocabularies import vocabulary


def _card(directory) -> dict:
  return json.loads((directory / vocabulary.VOCAB_JSON).read_text())


def _write_tar(path, captions: list[bytes | None]):
  with tarfile.open(path, "w") as tar:
    for i, caption in enumerate(captions):
      files = {"jpg": b"\xff\xd8not decoded here"}
      if caption is not None:
        files["txt"] = caption
      for ext, data in files.items():
        info = tarfile.TarInfo(f"{i:05d}.{ext}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
  return path


def _run(argv, capsys) -> tuple[int, str]:
  code = train_vocab.main([str(a) for a in argv])
  return code, capsys.readouterr().err


def _kept_captions(corpus) -> list[str]:
  """The corpus's captions that the dataset pipeline would keep."""
  texts = []
  for shard in corpus.shards:
    for example in dispatch.read_examples(str(shard)):
      try:
        text = decode_caption(example.caption)
      except Rejection:
        continue
      if filters.caption_reject_reason(text, filters.FilterConfig()) is None:
        texts.append(text)
  return texts


def test_en_vocab_directory(en_vocab_dir, demo_corpus):
  card = _card(en_vocab_dir)
  assert sorted(p.name for p in en_vocab_dir.iterdir()) == [
      "en32k.model", vocabulary.VOCAB_JSON]
  assert (card["name"], card["preset"], card["size"]) == ("en32k", "en32k", 48)
  assert card["model_file"] == "en32k.model"
  assert card["normalization"] == "nmt_nfkc"
  assert card["lowercase"] is True
  assert card["special_ids"] == {"pad": 0, "eos": 1, "unk": 2, "bos": -1}
  training = card["training"]
  assert (training["model_type"], training["vocab_size"],
          training["character_coverage"], training["byte_fallback"],
          training["languages"]) == ("unigram", 48, 0.9995, False, ["en"])
  assert card["input"] == [f"{demo_corpus.output_dir}/*.tar"]
  assert list(card["sample"]["languages"]) == ["en"]
  assert card["sample"]["languages"]["en"] == {
      "count": card["sample"]["size"], "fraction": 1.0}
  assert card["sample"]["corpus_captions"] == demo_corpus.num_examples - sum(
      card["sample"]["rejected_captions"].values())


def test_multi_vocab_directory(multi_vocab_dir):
  card = _card(multi_vocab_dir)
  assert (card["name"], card["preset"], card["size"]) == (
      "multi250k", "multi250k", 1000)
  training = card["training"]
  assert (training["character_coverage"], training["byte_fallback"],
          training["languages"], training["alpha"]) == (
              0.99999, True, "all", sampling.DEFAULT_ALPHA)
  mix = card["sample"]["languages"]
  assert len(mix) >= 30
  assert sum(m["count"] for m in mix.values()) == card["sample"]["size"]
  assert sum(m["fraction"] for m in mix.values()) == pytest.approx(1, abs=1e-4)


def test_sample_mix_is_the_formula_applied_to_the_corpus(multi_vocab_dir,
                                                         demo_corpus):
  card = _card(multi_vocab_dir)
  identifier = langid.LanguageIdentifier()
  texts = _kept_captions(demo_corpus)
  langs = [p.lang for p in identifier.identify_batch(texts)]
  corpus_counts = collections.Counter(langs)
  assert dict(corpus_counts) == card["sample"]["corpus_languages"]
  rates = sampling.sampling_rates(corpus_counts, sampling.DEFAULT_ALPHA,
                                  sampling.DEFAULT_MAX_SENTENCES)
  expected = collections.Counter()
  for lang, text in zip(langs, texts):
    expected[lang] += sampling.sample_copies(text.lower(), rates[lang], seed=0)
  assert {lang: m["count"] for lang, m in card["sample"]["languages"].items()
          } == {lang: n for lang, n in expected.items() if n}
  # English is half the corpus but, at alpha 0.3, under a tenth of the sample.
  assert card["sample"]["languages"]["en"]["fraction"] < 0.1


def test_same_corpus_and_options_give_the_same_model(en_vocab_dir,
                                                     demo_corpus, tmp_path):
  # A different Beam execution (two worker threads) and a kept sample.
  sample_dir = tmp_path / "sample"
  again = tmp_path / "again"
  code = train_vocab.main([
      "--input", f"{demo_corpus.output_dir}/*.tar", "--output",
      str(again), "--preset", "en32k", "--vocab_size",
      str(vocab_fixtures.EN_VOCAB_SIZE), "--sample_dir", str(sample_dir),
      "--direct_num_workers", "2", "--direct_running_mode",
      "multi_threading"])
  assert code == 0
  assert (again / "en32k.model").read_bytes() == (
      en_vocab_dir / "en32k.model").read_bytes()
  assert _card(again) == _card(en_vocab_dir)
  lines = [line for path in sorted(sample_dir.glob("sample-*.txt"))
           for line in path.read_text().splitlines()]
  assert len(lines) == _card(again)["sample"]["size"]
  assert all(line == line.lower() for line in lines)


def test_card_stores_a_relative_input_resolved(demo_corpus, tmp_path,
                                               monkeypatch):
  monkeypatch.chdir(os.path.dirname(demo_corpus.output_dir))
  assert train_vocab.main([
      "--input", f"{os.path.basename(demo_corpus.output_dir)}/*.tar",
      "--output", str(tmp_path / "vocab"), "--preset", "en32k", "--vocab_size",
      str(vocab_fixtures.EN_VOCAB_SIZE)]) == 0
  assert _card(tmp_path / "vocab")["input"] == [
      f"{demo_corpus.output_dir}/*.tar"]


def test_name_overrides_the_preset_name(demo_corpus, tmp_path):
  directory = vocab_fixtures.train_demo_vocabulary(
      demo_corpus.output_dir, tmp_path, "en32k", 40, name="captions_en",
      lowercase=False)
  card = _card(directory)
  assert (card["name"], card["model_file"], card["preset"], card["size"],
          card["lowercase"]) == (
              "captions_en", "captions_en.model", "en32k", 40, False)
  assert vocabulary.Vocabulary.load(directory).lowercase is False


@pytest.mark.slow
def test_too_large_size_names_the_largest_which_then_trains(
    demo_corpus, tmp_path, capsys):
  args = ["--input", f"{demo_corpus.output_dir}/*.tar", "--output",
          tmp_path / "vocab", "--preset", "en32k"]
  code, err = _run(args, capsys)
  assert code == 1
  message = err.strip().splitlines()[-1]
  prefix = ("error: corpus too small for --vocab_size 32000; the largest "
            "size it supports is ")
  assert message.startswith(prefix)
  largest = int(message[len(prefix):])
  assert not (tmp_path / "vocab").exists()
  code, err = _run(args + ["--vocab_size", largest], capsys)
  assert code == 0, err
  assert _card(tmp_path / "vocab")["size"] == largest


def test_too_small_size_names_the_smallest(demo_corpus, tmp_path, capsys):
  code, err = _run(["--input", f"{demo_corpus.output_dir}/*.tar", "--output",
                    tmp_path, "--preset", "multi250k", "--vocab_size", "100"],
                   capsys)
  assert code == 1
  assert err.strip().splitlines()[-1].startswith(
      "error: --vocab_size 100 is too small for the characters of the "
      "corpus; the smallest size it supports is ")


def test_empty_input_says_so(tmp_path, capsys):
  empty = _write_tar(tmp_path / "empty.tar", [])
  code, err = _run(["--input", empty, "--output", tmp_path / "v", "--preset",
                    "multi250k"], capsys)
  assert code == 1
  assert err.strip().splitlines()[-1] == (
      "error: the input has no usable captions")


def test_input_without_usable_captions_lists_the_rejections(tmp_path, capsys):
  bad = _write_tar(tmp_path / "bad.tar", [None, b"\xff\xfe", b" \n "])
  code, err = _run(["--input", bad, "--output", tmp_path / "v", "--preset",
                    "en32k"], capsys)
  assert code == 1
  assert err.strip().splitlines()[-1] == (
      "error: the input has no usable captions (rejected: caption_not_utf8 "
      "1, empty_caption 1, missing_caption 1)")


def test_en32k_without_english_says_what_it_found(tmp_path, capsys):
  german = _write_tar(tmp_path / "de.tar", [
      "Ein großer roter Kreis auf blauem Hintergrund.".encode(),
      "Zwei kleine grüne Sterne über einem gelben Quadrat.".encode()])
  code, err = _run(["--input", german, "--output", tmp_path / "v",
                    "--preset", "en32k"], capsys)
  assert code == 1
  assert err.strip().splitlines()[-1] == (
      "error: the input has no captions in en for preset en32k "
      "(found: de 2)")


@pytest.mark.parametrize("args, message", [
    (["--input", "/nonexistent/*.tar", "--preset", "en32k"],
     "error: no input files match '/nonexistent/*.tar'"),
    (["--input", "x.tar", "--preset", "en32k", "--vocab-size", "9"],
     "error: unrecognized arguments: --vocab-size 9"),
    (["--input", "x.tar", "--preset", "en32k", "--vocab_size", "0"],
     "error: --vocab_size must be positive, got 0"),
    (["--input", "x.tar", "--preset", "en32k", "--name", "a/b"],
     "error: --name must be letters, digits, '_', '.' or '-', got 'a/b'"),
    (["--input", "x.tar", "--preset", "en32k", "--alpha", "-1"],
     "error: --alpha must be non-negative, got -1.0"),
])
def test_bad_arguments_give_one_line(args, message, tmp_path, capsys):
  code, err = _run(args + ["--output", tmp_path], capsys)
  assert code == 1
  assert err.strip() == message


@pytest.mark.parametrize("flag, languages", [
    ([], ("en",)),
    (["--languages", "mi,en"], ("en", "mi")),
    (["--languages", "nb"], ("no",)),
    (["--languages", "all"], None),
])
def test_languages_flag_overrides_the_presets(flag, languages):
  options, _ = train_vocab.parse_args(
      ["--input", "x.tar", "--output", "out", "--preset", "en32k"] + flag)
  assert options.preset.languages == languages
  assert options.preset.name == "en32k"


def test_languages_the_identifier_never_outputs_are_an_error(tmp_path,
                                                              capsys):
  code, err = _run(["--input", "x.tar", "--output", tmp_path, "--preset",
                    "en32k", "--languages", "en,quz"], capsys)
  assert code == 1
  assert err.startswith("error: the cascade language identifier never "
                        "outputs quz;") and err.count("\n") == 1


def test_unknown_preset_is_an_argparse_error(tmp_path, capsys):
  with pytest.raises(SystemExit) as info:
    _run(["--input", "x.tar", "--output", tmp_path, "--preset", "en8k"],
         capsys)
  assert info.value.code == 2
  assert capsys.readouterr().err.startswith(
      "error: argument --preset: invalid choice: 'en8k'")


def test_help_explains_every_flag(capsys):
  with pytest.raises(SystemExit) as info:
    train_vocab.main(["--help"])
  assert info.value.code == 0
  shown = capsys.readouterr().out
  for flag in ("--input", "--output", "--preset", "--vocab_size", "--name",
               "--lowercase", "--alpha", "--max_sentences", "--seed",
               "--num_threads", "--sample_dir", "--languages"):
    assert flag in shown


def test_command_line_error_is_one_line_without_traceback(tmp_path):
  failed = subprocess.run(
      [sys.executable, "-m", "vocabularies.train_vocab", "--input",
       str(tmp_path / "*.tar"), "--output", str(tmp_path / "v"), "--preset",
       "en32k"],
      capture_output=True, text=True)
  assert failed.returncode == 1
  assert "Traceback" not in failed.stderr
  assert failed.stderr.strip().splitlines()[-1] == (
      f"error: no input files match '{tmp_path / '*.tar'}'")
