"""Tests for eval.xm3600_data."""

import json
import os
import shutil

import numpy as np
import pytest

from dataformat import files
from eval import xm3600_data
from pipelines import langid
from tests.fixtures import corpus


def write_set(root, lines, images=None):
  """An XM3600 directory with `lines` (objects or raw strings).

  Image files (empty: only their presence is read) are written for every
  key of `images`, by default for every line's key.
  """
  (root / xm3600_data.IMAGES_DIR).mkdir(parents=True)
  text = [line if isinstance(line, str) else json.dumps(line)
          for line in lines]
  (root / xm3600_data.CAPTIONS_FILE).write_text("\n".join(text) + "\n")
  if images is None:
    images = [line[xm3600_data.IMAGE_KEY] for line in lines
              if isinstance(line, dict)]
  for key in images:
    files.write_bytes(xm3600_data.image_path(root, key), b"")
  return root


def line(key, **captions):
  return {"image/key": key,
          **{lang: {"caption": texts, "caption/tokenized": texts}
             for lang, texts in captions.items()}}


def test_reads_the_fixture_in_official_order(xm3600_dir):
  data = xm3600_data.load_xm3600(xm3600_dir)
  assert len(data.image_keys) == corpus.XM3600_NUM_IMAGES
  assert list(data.languages) == list(langid.XM3600_LANGUAGES)
  de = data.languages["de"]
  assert len(de.texts) == 2 * corpus.XM3600_NUM_IMAGES
  np.testing.assert_array_equal(
      de.caption_image, np.repeat(np.arange(corpus.XM3600_NUM_IMAGES), 2))
  first = json.loads((xm3600_dir / "captions.jsonl").read_text().split(
      "\n")[0])
  assert data.image_keys[0] == first["image/key"]
  assert list(de.texts[:2]) == first["de"]["caption"]
  assert (data.languages_without_captions, data.other_languages,
          data.missing_images, de.images_without_captions) == ((), (), (), ())


def test_languages_keep_the_requested_order(xm3600_dir):
  data = xm3600_data.load_xm3600(xm3600_dir, ["ja", "de"])
  assert list(data.languages) == ["ja", "de"]
  assert len(data.other_languages) == 34


@pytest.mark.parametrize("langs, message", [
    (["de", "xx"], r"not XM3600 languages: \['xx'\]"),
    (["de", "en", "de"], r"more than once: \['de'\]"),
])
def test_bad_language_requests(xm3600_dir, langs, message):
  with pytest.raises(ValueError, match=message):
    xm3600_data.load_xm3600(xm3600_dir, langs)


def test_several_and_missing_captions_per_image(tmp_path):
  root = write_set(tmp_path, [
      line("a", de=["ein", "zwei", "drei"], en=["one"]),
      line("b", en=["two"]),
      line("c", de=["vier"], en=["three", "four"]),
  ])
  data = xm3600_data.load_xm3600(root, ["de", "en"])
  assert data.image_keys == ("a", "b", "c")
  de, en = data.languages["de"], data.languages["en"]
  assert de.texts == ("ein", "zwei", "drei", "vier")
  np.testing.assert_array_equal(de.caption_image, [0, 0, 0, 2])
  assert de.images_without_captions == ("b",)
  np.testing.assert_array_equal(en.caption_image, [0, 1, 2, 2])
  assert en.images_without_captions == ()


def test_languages_without_captions_are_listed_or_refused(tmp_path):
  root = write_set(tmp_path, [line("a", de=["x"], zz=["y"]),
                              line("b", de=["z"])])
  data = xm3600_data.load_xm3600(root)
  assert list(data.languages) == ["de"]
  assert data.languages_without_captions == tuple(
      lang for lang in langid.XM3600_LANGUAGES if lang != "de")
  assert data.other_languages == ("zz",)
  with pytest.raises(ValueError, match=r"requested languages \['en'\]"):
    xm3600_data.load_xm3600(root, ["de", "en"])


@pytest.mark.parametrize("bad_line, message", [
    ("{not json", "not valid JSON"),
    ('["a"]', "expected a JSON object, got list"),
    ('{"de": {"caption": ["x"]}}', "'image/key' must be a non-empty string"),
    ('{"image/key": "../x"}', "is not a file name"),
    ('{"image/key": "a"}', "image 'a' is already on line 1"),
    ('{"image/key": "c", "de": ["x"]}', "'de' must be an object with a"),
    ('{"image/key": "c", "de": {"caption": "x"}}', "list of non-empty"),
    ('{"image/key": "c", "de": {"caption": ["x", ""]}}', "list of non-empty"),
    ('{"image/key": "c", "de": {"caption": [3]}}', "list of non-empty"),
])
def test_malformed_lines_name_their_line_number(tmp_path, bad_line, message):
  # The bad line is line 3: a blank line 2 is allowed and still counted.
  root = write_set(tmp_path, [line("a", de=["x"]), "", bad_line],
                   images=["a", "c"])
  with pytest.raises(ValueError, match=message) as error:
    xm3600_data.load_xm3600(root)
  assert f"{xm3600_data.CAPTIONS_FILE}:3:" in str(error.value)


def test_a_truncated_line_names_its_line_and_column(tmp_path):
  # Cut inside a caption: the line's newline ends the string.
  truncated = json.dumps(line("c", de=["ein rotes Quadrat"]))[:40]
  root = write_set(tmp_path, [line("a", de=["x"]), truncated],
                   images=["a", "c"])
  with pytest.raises(ValueError) as error:
    xm3600_data.load_xm3600(root)
  assert str(error.value) == (
      f"{root / xm3600_data.CAPTIONS_FILE}:2: not valid JSON at column 41: "
      "Invalid control character")


def test_missing_images_fail_or_are_skipped_and_listed(tmp_path):
  keys = [f"k{i}" for i in range(8)]
  root = write_set(tmp_path, [line(key, de=[key]) for key in keys],
                   images=["k0", "k3"])
  with pytest.raises(ValueError) as error:
    xm3600_data.load_xm3600(root)
  assert str(error.value).startswith(
      "6 of 8 images are missing from ")
  assert "k1.jpg, k2.jpg, k4.jpg, k5.jpg, k6.jpg and 1 more" in str(
      error.value)
  assert "--skip_missing_images" in str(error.value)
  data = xm3600_data.load_xm3600(root, skip_missing_images=True)
  assert data.image_keys == ("k0", "k3")
  assert data.missing_images == ("k1", "k2", "k4", "k5", "k6", "k7")
  assert data.languages["de"].texts == ("k0", "k3")


def test_not_an_xm3600_directory(tmp_path):
  with pytest.raises(ValueError, match="is not an XM3600 directory"):
    xm3600_data.load_xm3600(tmp_path)
  write_set(tmp_path / "empty", [""])
  with pytest.raises(ValueError, match="lists no images"):
    xm3600_data.load_xm3600(tmp_path / "empty")


def test_fixture_copy_with_a_removed_image(xm3600_dir, tmp_path):
  root = shutil.copytree(xm3600_dir, tmp_path / "xm3600")
  data = xm3600_data.load_xm3600(root)
  os.remove(data.image_path(data.image_keys[5]))
  skipped = xm3600_data.load_xm3600(root, ["en"], skip_missing_images=True)
  assert skipped.missing_images == (data.image_keys[5],)
  assert len(skipped.languages["en"].texts) == 2 * (
      corpus.XM3600_NUM_IMAGES - 1)
