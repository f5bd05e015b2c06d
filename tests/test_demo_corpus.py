"""The demo corpus: layout, determinism, languages, defects, XM3600, CLI."""

import collections
import hashlib
import io
import json
import os
import pathlib
import re
import subprocess
import sys
import tarfile

import numpy as np
from PIL import Image
import pytest

from dataformat import records
from eval import zeroshot_data
from demo import captions as demo_captions
from demo import corpus as demo_corpus_lib
from demo import scenes as demo_scenes
from demo.corpus import Defect
from pipelines import blocklist
from pipelines import build_dataset
from pipelines import filters
from pipelines import image_signature
from pipelines import langid
from pipelines import near_duplicates
from pipelines import process
from pipelines.readers import webdataset
from pipelines.reasons import Reason
from tests.fixtures.corpus import DEMO_NUM_EXAMPLES
from tests.fixtures.corpus import DEMO_SEED
from tests.fixtures.corpus import XM3600_NUM_IMAGES
from tests.test_demo_captions import COLOUR_STEMS
from tests.test_demo_captions import mentions_colour

DEFAULTS = filters.FilterConfig()
IMG2DATASET_FIELDS = ("key", "status", "error_message", "caption", "url", "width", "height",
                      "original_width", "original_height", "exif", "sha256")


def _members(shard: str) -> list[tuple[tarfile.TarInfo, bytes]]:
  with tarfile.open(shard) as tar:
    return [(m, tar.extractfile(m).read()) for m in tar.getmembers()]


def _examples(summary) -> dict[str, dict[str, bytes]]:
  """key -> {extension: bytes}, over every shard, in file order."""
  examples = {}
  for shard in summary.shards:
    for member, data in _members(shard):
      key, ext = member.name.split(".")
      examples.setdefault(key, {})[ext] = data
  return examples


@pytest.fixture(scope="module")
def examples(demo_corpus):
  return _examples(demo_corpus)


def _metadata(example: dict[str, bytes]) -> dict:
  return json.loads(example["json"])


def _decode(data: bytes) -> Image.Image:
  image = Image.open(io.BytesIO(data))
  image.load()
  return image


def _sha256_files(directory: pathlib.Path) -> dict[str, str]:
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(directory.glob("*.tar"))}


# Scenes ---------------------------------------------------------------------


def test_scenes_use_every_word_and_keep_shapes_apart():
  scenes = [demo_scenes.sample_scene(np.random.default_rng(i))
            for i in range(500)]
  shapes = [s for scene in scenes for s in scene.shapes]
  assert {s.colour for s in shapes} == set(demo_scenes.COLOURS)
  assert {s.shape for s in shapes} == set(demo_scenes.SHAPES)
  assert {s.size for s in shapes} == set(demo_scenes.SIZES)
  assert {s.position for s in shapes} == set(demo_scenes.POSITIONS)
  assert {scene.background.style for scene in scenes} == set(
      demo_scenes.BACKGROUND_STYLES)
  for scene in scenes:
    assert all(s.colour != scene.background.colour for s in scene.shapes)
    if len(scene.shapes) == 2:
      assert {s.position for s in scene.shapes} in (
          {"left", "right"}, {"top", "bottom"})
    assert demo_scenes.Scene.from_json(
        json.loads(json.dumps(scene.to_json()))) == scene


# Layout ---------------------------------------------------------------------


def test_shards_hold_keys_in_order_with_fixed_member_metadata(demo_corpus):
  assert [os.path.basename(p) for p in demo_corpus.shards] == [
      "00000.tar", "00001.tar"]
  names = []
  for shard in demo_corpus.shards:
    for member, _ in _members(shard):
      assert (member.mtime, member.uid, member.gid, member.uname,
              member.mode) == (0, 0, 0, "", 0o644)
      names.append(member.name)
  keys = list(dict.fromkeys(n.split(".")[0] for n in names))
  assert keys == [f"{i:09d}" for i in range(DEMO_NUM_EXAMPLES)]
  missing = {k for k, r in demo_corpus.expected_rejections.items()
             if r == Reason.MISSING_CAPTION}
  expected = [f"{k}.{ext}" for k in keys
              for ext in (("jpg", "json") if k in missing
                          else ("jpg", "txt", "json"))]
  assert names == expected


def test_metadata_follows_img2dataset(examples):
  for key, example in examples.items():
    meta = _metadata(example)
    assert list(meta)[:len(IMG2DATASET_FIELDS)] == list(IMG2DATASET_FIELDS)
    assert (meta["key"], meta["status"], meta["error_message"],
            meta["exif"]) == (key, "success", None, None)
    assert meta["url"] == f"https://demo.invalid/{DEMO_SEED}/{key}.jpg"
    assert meta["sha256"] == hashlib.sha256(example["jpg"]).hexdigest()
    assert set(meta["demo"]) >= {"lang", "defect", "duplicate_of", "scene"}
    if "txt" in example and meta["demo"]["defect"] != Reason.CAPTION_NOT_UTF8:
      assert meta["caption"] == example["txt"].decode("utf-8")


def test_readers_see_every_example(demo_corpus):
  seen = []
  for shard in demo_corpus.shards:
    with open(shard, "rb") as f:
      seen.extend(webdataset.read_webdataset_tar(f, str(shard)))
  assert len(seen) == DEMO_NUM_EXAMPLES
  missing = [e.key for e in seen if e.caption is None]
  assert sorted(missing) == sorted(
      k for k, r in demo_corpus.expected_rejections.items()
      if r == Reason.MISSING_CAPTION)
  assert all(e.metadata["key"] == e.key for e in seen)


def test_corpus_json_records_options_and_summary(demo_corpus):
  recorded = json.loads(pathlib.Path(demo_corpus.output_dir,
                                     "corpus.json").read_text())
  assert recorded["options"]["seed"] == DEMO_SEED
  assert recorded["shards"] == ["00000.tar", "00001.tar"]
  assert recorded["language_counts"] == demo_corpus.language_counts
  assert recorded["defect_counts"] == demo_corpus.defect_counts
  assert recorded["expected_rejections"] == demo_corpus.expected_rejections
  assert recorded["num_clean"] + recorded["num_bad"] == DEMO_NUM_EXAMPLES


# Determinism ------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, xm3600_dir):
  def build(name, seed):
    demo_corpus_lib.generate_corpus(tmp_path / name, num_examples=90,
                                    seed=seed, examples_per_shard=40,
                                    blocklist_source_dir=xm3600_dir)
    return _sha256_files(tmp_path / name)
  first, again, other = build("a", 3), build("b", 3), build("c", 4)
  assert list(first) == ["00000.tar", "00001.tar", "00002.tar"]
  assert first == again
  assert all(first[name] != other[name] for name in first)
  assert ((tmp_path / "a" / "corpus.json").read_bytes()
          == (tmp_path / "b" / "corpus.json").read_bytes())


# Languages ------------------------------------------------------------------


def test_every_language_present_and_half_english(demo_corpus, examples):
  counts = collections.Counter(_metadata(e)["demo"]["lang"]
                               for e in examples.values())
  assert counts == demo_corpus.language_counts
  assert set(counts) == set(demo_captions.LANGUAGES)
  assert counts["en"] == DEMO_NUM_EXAMPLES // 2
  assert min(counts.values()) >= 5


def test_lang_mix_spec_spreads_the_rest_evenly():
  mix = demo_corpus_lib.parse_lang_mix("en=0.5, de=0.1")
  assert (mix["en"], mix["de"]) == (0.5, 0.1)
  assert mix["ja"] == pytest.approx(0.4 / 34)
  assert sum(mix.values()) == pytest.approx(1.0)
  plans = demo_corpus_lib.plan_corpus(1000, 0, 0.0, mix)
  counts = collections.Counter(p.lang for p in plans)
  assert (counts["en"], counts["de"]) == (500, 100)
  assert sum(counts.values()) == 1000 and len(counts) == 36


@pytest.mark.parametrize("spec,message", [
    ("xx=0.1", "unknown language 'xx'"),
    ("en=1.5", r"share of en must be in \[0, 1\]"),
    ("en=0.7,de=0.5", "sum to 1.2, more than 1"),
    ("en", "'en' is not LANG=SHARE"),
    ("en=half", "'en=half' is not LANG=SHARE"),
])
def test_bad_lang_mix(spec, message):
  with pytest.raises(ValueError, match=message):
    demo_corpus_lib.parse_lang_mix(spec)


def test_clean_captions_name_their_shape_colour(examples):
  checked = 0
  for example in examples.values():
    demo = _metadata(example)["demo"]
    if demo["defect"] is not None:
      continue
    scene = demo["mismatched_scene"] or demo["scene"]
    colour = scene["shapes"][0]["colour"]
    if colour in COLOUR_STEMS:
      caption = example["txt"].decode("utf-8")
      assert mentions_colour(caption, demo["lang"], colour), caption
      checked += 1
  assert checked >= 50


def test_mismatched_pairs_describe_another_scene(demo_corpus, examples,
                                                 tmp_path):
  truth = json.loads(pathlib.Path(demo_corpus.output_dir,
                                  demo_corpus_lib.CORPUS_FILE).read_text())
  assert truth["mismatched"] == list(demo_corpus.mismatched)
  assert len(demo_corpus.mismatched) == round(
      demo_corpus.num_clean * demo_corpus_lib.DEFAULT_MISMATCH_FRACTION) > 0
  for key, example in examples.items():
    demo = _metadata(example)["demo"]
    if key not in demo_corpus.mismatched:
      assert demo["mismatched_scene"] is None
      continue
    assert demo["defect"] is None
    true, told = demo["scene"]["shapes"][0], demo["mismatched_scene"][
        "shapes"][0]
    assert true["shape"] != told["shape"] and true["colour"] != told["colour"]
  # Planting them changes those captions only.
  plain = demo_corpus_lib.generate_corpus(
      tmp_path, num_examples=DEMO_NUM_EXAMPLES, seed=DEMO_SEED,
      examples_per_shard=demo_corpus.options["examples_per_shard"],
      mismatch_fraction=0.0,
      blocklist_source_dir=demo_corpus.options["blocklist_source_dir"])
  assert plain.mismatched == ()
  for key, example in _examples(plain).items():
    if key in demo_corpus.mismatched:
      assert example["txt"] != examples[key]["txt"]
      assert example["jpg"] == examples[key]["jpg"]
    else:
      assert example == examples[key]


def test_clean_images_show_their_scene(examples):
  """Each clean image decodes at 64x64 and the shape's centre pixel has the
  shape's colour (crescents excluded: their centre is cut away)."""
  for example in examples.values():
    meta = _metadata(example)
    if meta["demo"]["defect"] is not None:
      continue
    pixels = np.asarray(_decode(example["jpg"]).convert("RGB"), np.int32)
    assert pixels.shape == (64, 64, 3)
    for shape in meta["demo"]["scene"]["shapes"]:
      if shape["shape"] == "moon":
        continue
      x, y = (int(c * 64) for c in shape["centre"])
      expected = np.asarray(demo_scenes.COLOUR_RGB[shape["colour"]])
      assert np.abs(pixels[y, x] - expected).max() < 60, shape


# Defects --------------------------------------------------------------------


def test_every_defect_kind_is_present(demo_corpus, examples):
  assert set(demo_corpus.defect_counts) == {str(d) for d in Defect}
  assert demo_corpus.num_bad == round(DEMO_NUM_EXAMPLES * 0.05)
  by_kind = collections.Counter(_metadata(e)["demo"]["defect_kind"]
                                for e in examples.values())
  del by_kind[None]
  assert by_kind == demo_corpus.defect_counts
  for key, example in examples.items():
    demo = _metadata(example)["demo"]
    expected = demo_corpus.expected_rejections.get(key)
    if expected == Reason.NEAR_DUPLICATE_OF_EVAL:
      # Not planted: a scene that happens to look like an XM3600 image.
      assert demo["defect_kind"] in (None, Defect.DUPLICATE_IMAGE)
    else:
      assert demo["defect"] == expected
    if demo["defect_kind"]:
      assert demo["defect"] == demo_corpus_lib.EXPECTED_REASONS[
          Defect(demo["defect_kind"])]


def _by_defect(examples) -> dict[str, list[tuple[str, dict]]]:
  grouped = collections.defaultdict(list)
  for key, example in examples.items():
    grouped[_metadata(example)["demo"]["defect_kind"]].append((key, example))
  return grouped


def test_defect_truth_matches_the_bytes(examples, xm3600_dir):
  grouped = _by_defect(examples)
  for _, e in grouped[Defect.CORRUPT_JPEG] + grouped[Defect.TRUNCATED_JPEG]:
    with pytest.raises(OSError):
      _decode(e["jpg"])
  for _, e in grouped[Defect.ZERO_BYTE_IMAGE]:
    assert e["jpg"] == b""
  for _, e in grouped[Defect.MISSING_CAPTION]:
    assert "txt" not in e and _metadata(e)["caption"] is None
  for _, e in grouped[Defect.EMPTY_CAPTION]:
    assert e["txt"].decode("utf-8").strip() == ""
  for _, e in grouped[Defect.LONG_CAPTION]:
    assert len(e["txt"].decode("utf-8")) > 2000
  for _, e in grouped[Defect.NON_UTF8_CAPTION]:
    with pytest.raises(UnicodeDecodeError):
      e["txt"].decode("utf-8")
  for _, e in grouped[Defect.TINY_IMAGE]:
    size = _decode(e["jpg"]).size
    assert 8 <= min(size) <= 20 and max(size) / min(size) <= 3
    assert size == (_metadata(e)["width"], _metadata(e)["height"])
  for _, e in grouped[Defect.EXTREME_ASPECT_RATIO]:
    size = _decode(e["jpg"]).size
    assert min(size) >= 40 and max(size) / min(size) >= 5
  for key, e in grouped[Defect.DUPLICATE_IMAGE]:
    original = _metadata(e)["demo"]["duplicate_of"]
    assert original < key
    assert examples[original]["jpg"] == e["jpg"]
    assert _metadata(examples[original])["demo"]["defect"] is None
    assert e["txt"].decode("utf-8").strip()
  with open(xm3600_dir / "captions.jsonl", encoding="utf-8") as f:
    xm_lines = {line["image/key"]: line for line in map(json.loads, f)}
  for _, e in grouped[Defect.BLOCKLISTED_IMAGE]:
    demo = _metadata(e)["demo"]
    xm_key = demo["defect_detail"].removeprefix("xm3600 ")
    assert e["jpg"] == (xm3600_dir / "images" / f"{xm_key}.jpg").read_bytes()
    # The image's own first caption in the example's language.
    assert (e["txt"].decode("utf-8")
            == xm_lines[xm_key][demo["lang"]]["caption"][0])
  # Every bad caption-side example still has a good image, so its caption
  # defect is the first thing the pipeline finds.
  for kind in (Defect.MISSING_CAPTION, Defect.EMPTY_CAPTION,
               Defect.LONG_CAPTION, Defect.NON_UTF8_CAPTION):
    for _, e in grouped[kind]:
      assert min(_decode(e["jpg"]).size) >= DEFAULTS.min_image_side


def test_clean_examples_pass_the_default_thresholds(examples):
  for e in _by_defect(examples)[None]:
    caption = e[1]["txt"].decode("utf-8")
    assert (DEFAULTS.min_caption_chars <= len(caption)
            <= DEFAULTS.max_caption_chars)
    assert (DEFAULTS.min_caption_words <= filters.count_words(caption)
            <= DEFAULTS.max_caption_words)


def test_plan_spreads_defects_evenly_and_blocklists_only_with_a_source():
  plans = demo_corpus_lib.plan_corpus(500, 1, 0.1,
                                      demo_corpus_lib.parse_lang_mix(None))
  kinds = collections.Counter(p.defect for p in plans if p.defect)
  assert sum(kinds.values()) == 50
  assert set(kinds) == set(Defect) - {Defect.BLOCKLISTED_IMAGE}
  assert max(kinds.values()) - min(kinds.values()) <= 1
  assert plans[0].defect is None
  clean = {p.index for p in plans if p.defect is None}
  for plan in plans:
    if plan.defect is Defect.DUPLICATE_IMAGE:
      assert plan.duplicate_of in clean and plan.duplicate_of < plan.index


# XM3600 ---------------------------------------------------------------------


def test_xm3600_layout(xm3600_dir):
  lines = (xm3600_dir / "captions.jsonl").read_text(
      encoding="utf-8").splitlines()
  assert len(lines) == XM3600_NUM_IMAGES
  keys = set()
  for line in lines:
    record = json.loads(line)
    key = record.pop("image/key")
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    keys.add(key)
    assert list(record) == list(demo_captions.LANGUAGES)
    for lang, entry in record.items():
      assert len(entry["caption"]) == 2
      assert len(set(entry["caption"])) == 2
      assert entry["caption/tokenized"] == [
          demo_captions.tokenize_caption(c, lang) for c in entry["caption"]]
    assert _decode((xm3600_dir / "images" / f"{key}.jpg").read_bytes()).size \
        == (64, 64)
  assert len(keys) == XM3600_NUM_IMAGES
  assert {p.stem for p in (xm3600_dir / "images").iterdir()} == keys


def test_blocklist_source_may_be_the_images_dir(tmp_path, xm3600_dir):
  summary = demo_corpus_lib.generate_corpus(
      tmp_path / "out", num_examples=60, seed=1, bad_fraction=0.5,
      blocklist_source_dir=xm3600_dir / "images")
  assert summary.defect_counts[Defect.BLOCKLISTED_IMAGE] >= 2
  with pytest.raises(ValueError, match="is not an XM3600 directory"):
    demo_corpus_lib.generate_corpus(tmp_path / "other", num_examples=10,
                                    blocklist_source_dir=tmp_path)


def test_xm3600_images_never_repeat_training_images(demo_corpus, examples,
                                                    xm3600_dir):
  def pixels_sha(data):
    return hashlib.sha256(_decode(data).convert("RGB").tobytes()).hexdigest()
  xm = {pixels_sha(p.read_bytes())
        for p in (xm3600_dir / "images").glob("*.jpg")}
  clean = {pixels_sha(e["jpg"]) for _, e in _by_defect(examples)[None]}
  assert xm.isdisjoint(clean)
  assert len(xm) == XM3600_NUM_IMAGES


# Command line -----------------------------------------------------------------


def _run_cli(capsys, *argv):
  try:
    status = demo_corpus_lib.main([str(a) for a in argv])
  except SystemExit as e:
    status = e.code
  out, err = capsys.readouterr()
  return status, out, err


@pytest.mark.parametrize("argv,message", [
    (["--image_size", "64"], "--image_size must be WIDTHxHEIGHT"),
    (["--image_size", "16x16"], "each side must be 32..4096 px"),
    (["--image_size", "200x50"], "aspect ratio must be at most 3"),
    (["--num_examples", "-5"], "--num_examples must be positive, got -5"),
    (["--bad_fraction", "1.5"], "--bad_fraction must be in [0, 1)"),
    (["--lang_mix", "xx=1"], "unknown language 'xx'"),
    (["--num_examples", "ten"], "invalid int value: 'ten'"),
    (["--xm3600_captions_per_image", "9", "--xm3600_dir", "XM"],
     "--xm3600_captions_per_image must be 1..3"),
])
def test_cli_bad_arguments_are_one_line_errors(tmp_path, capsys, argv,
                                               message):
  argv = [str(tmp_path / a) if a == "XM" else a for a in argv]
  status, _, err = _run_cli(capsys, "--output", tmp_path / "out", *argv)
  assert status != 0
  assert err.count("\n") == 1 and err.startswith("error: ")
  assert message in err
  assert not (tmp_path / "out").exists() and not (tmp_path / "XM").exists()


def test_cli_refuses_non_empty_output_unless_overwrite(tmp_path, capsys):
  out, xm = tmp_path / "out", tmp_path / "xm"
  status, stdout, _ = _run_cli(
      capsys, "--output", out, "--num_examples", 30, "--examples_per_shard",
      10, "--xm3600_dir", xm, "--xm3600_num_images", 3, "--bad_fraction",
      0.4)
  assert status == 0
  assert ("wrote 30 examples (18 clean, 1 of them mismatched, 12 bad) in 3 "
          "shards") in stdout
  assert "blocklisted_image" in stdout and "languages: ar=" in stdout
  assert sorted(p.name for p in out.iterdir()) == [
      "00000.tar", "00001.tar", "00002.tar", "corpus.json"]

  (out / "notes.txt").write_text("mine")
  status, _, err = _run_cli(capsys, "--output", out, "--num_examples", 10)
  assert status != 0 and err.count("\n") == 1
  assert f"--output {out} is not empty; pass --overwrite" in err

  status, _, _ = _run_cli(capsys, "--output", out, "--num_examples", 10,
                          "--xm3600_dir", xm, "--xm3600_num_images", 2,
                          "--overwrite")
  assert status == 0
  # Stale shards of the earlier run are gone; files it did not write stay.
  assert sorted(p.name for p in out.iterdir()) == [
      "00000.tar", "corpus.json", "notes.txt"]
  assert len((xm / "captions.jsonl").read_text().splitlines()) == 2
  assert len(list((xm / "images").iterdir())) == 2


def test_cli_help_runs_as_a_module():
  result = subprocess.run(
      [sys.executable, "-m", "demo.corpus", "--help"],
      capture_output=True, text=True, check=True)
  for flag in ("--output", "--num_examples", "--seed", "--xm3600_dir",
               "--image_size", "--examples_per_shard", "--bad_fraction",
               "--lang_mix", "--xm3600_num_images",
               "--xm3600_captions_per_image", "--overwrite"):
    assert flag in result.stdout


# The contract with the dataset pipeline -----------------------------------------


def test_defects_cross_the_pipeline_defaults_by_a_margin(demo_corpus):
  assert demo_corpus_lib.TINY_SIDE_RANGE[1] < DEFAULTS.min_image_side
  # An extreme image is not also too small, so its reason is the ratio.
  assert (demo_corpus_lib.EXTREME_SHORT_SIDE_RANGE[0]
          >= DEFAULTS.min_image_side)
  assert demo_corpus_lib.EXTREME_RATIO_RANGE[0] > DEFAULTS.max_aspect_ratio
  assert demo_corpus_lib.LONG_CAPTION_MIN_CHARS > DEFAULTS.max_caption_chars
  recorded = json.loads(pathlib.Path(demo_corpus.output_dir,
                                     "corpus.json").read_text())
  names = ("min_image_side", "max_aspect_ratio", "min_caption_chars",
           "max_caption_chars", "max_caption_words")
  assert recorded["options"]["thresholds"] == {
      name: getattr(DEFAULTS, name) for name in names}


def test_pipeline_rejects_exactly_the_bad_examples(demo_corpus, xm3600_dir):
  """The pipeline's kernel and set-level decisions, run on the corpus, give
  each bad example its expected reason and keep every clean one."""
  raws = []
  for shard in demo_corpus.shards:
    with open(shard, "rb") as f:
      raws.extend(webdataset.read_webdataset_tar(f, str(shard)))
  entries = blocklist.load_blocklist(str(xm3600_dir / "images"))
  eval_filter = near_duplicates.EvalImageFilter(
      entries, image_signature.MatchConfig())
  results = process.process_batch(raws, process.ProcessConfig(),
                                  langid.LanguageIdentifier(), [],
                                  eval_filter)
  rejected = {raw.key: str(result.reason)
              for raw, result in zip(raws, results)
              if not isinstance(result, records.Record)}
  blocked = {e.sha256 for e in entries}
  keys_by_image = collections.defaultdict(list)
  for result in results:
    if isinstance(result, records.Record):
      keys_by_image[result.image_sha256].append(result.key)
  for sha, keys in keys_by_image.items():
    for key, reason, _ in build_dataset.set_level_rejections(
        sha, keys, sha in blocked):
      rejected[key] = str(reason)
  assert rejected == demo_corpus.expected_rejections


# The zero-shot set ------------------------------------------------------------


def test_zeroshot_set_reads_as_balanced_colour_classes(tmp_path):
  summary = demo_corpus_lib.generate_zeroshot(tmp_path / "zs",
                                              images_per_class=4)
  assert summary.num_images == 4 * len(demo_scenes.COLOURS)
  pattern = str(tmp_path / "zs" / "classes" / "{lang}.txt")
  assert zeroshot_data.available_languages(pattern) == sorted(
      demo_captions.LANGUAGES)
  classes = zeroshot_data.load_classes(pattern, demo_captions.LANGUAGES)
  for lang, class_list in classes.items():
    assert class_list.keys == demo_scenes.COLOURS
    for colour, prompts in zip(class_list.keys, class_list.names):
      assert len(prompts) == len(set(prompts)) == 36
      if lang == "en":
        assert all(f" {colour} " in p for p in prompts)
      if colour in ("red", "green"):  # The colours with stems to look for.
        assert all(mentions_colour(p, lang, colour) for p in prompts), lang
  images = zeroshot_data.load_images(tmp_path / "zs" / "images",
                                     demo_scenes.COLOURS, pattern)
  assert collections.Counter(images.labels) == {
      c: 4 for c in range(len(demo_scenes.COLOURS))}
  for data in images.read():
    assert _decode(data).size == (64, 64)
  again = demo_corpus_lib.generate_zeroshot(tmp_path / "again",
                                            images_per_class=4)
  first, second = (pathlib.Path(s.output_dir) for s in (summary, again))
  assert sorted(p.relative_to(second) for p in second.rglob("*.jpg")) == (
      sorted(p.relative_to(first) for p in first.rglob("*.jpg")))
  for path in second.rglob("*"):
    if path.is_file():
      assert path.read_bytes() == (
          first / path.relative_to(second)).read_bytes()


def test_zeroshot_option_errors(tmp_path):
  with pytest.raises(ValueError, match="--zeroshot_images_per_class must be "
                     "positive, got 0"):
    demo_corpus_lib.generate_zeroshot(tmp_path, images_per_class=0)
  (tmp_path / "full").mkdir()
  (tmp_path / "full" / "x").write_text("")
  with pytest.raises(ValueError, match="--zeroshot_dir .* is not empty"):
    demo_corpus_lib.generate_zeroshot(tmp_path / "full")
