"""Tests for pipelines.blocklist."""

import io
import os

import numpy as np
from PIL import Image
import pytest

from pipelines import blocklist
from pipelines import images


def _pixels(seed: int, size=(40, 48)) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (*size, 3), np.uint8)


def _save(pixels: np.ndarray, path: str, fmt: str) -> None:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format=fmt)
  with open(path, "wb") as f:
    f.write(buffer.getvalue())


def _decoded_hash(path: str, size: int = images.DEFAULT_SHORTER_SIDE) -> str:
  with open(path, "rb") as f:
    return images.pixel_sha256(images.resize_shorter_side(
        images.decode_image(f.read()).pixels, size))


def _hash_file(path, hashes, size=images.DEFAULT_SHORTER_SIDE) -> None:
  path.write_text("".join(f"{line}\n" for line in
                          [blocklist.header(size), *hashes]))


def test_parse_hashes_skips_comments_and_blank_lines():
  a, b = "a" * 64, "0123456789abcdef" * 4
  lines = ["# XM3600", "", f"  {a}  ", f"{b.upper()}  # upper case is fine", a]
  assert blocklist.parse_hashes(lines) == {a, b}


def test_parse_hashes_reports_the_bad_line():
  with pytest.raises(ValueError, match=r"list.txt:2: not a hex SHA-256: 'abc'"):
    blocklist.parse_hashes(["a" * 64, "abc"], "list.txt")


def test_load_hash_file(tmp_path):
  path = tmp_path / "list.sha256"
  _hash_file(path, ["b" * 64, "a" * 64])
  assert blocklist.load_blocklist(str(path)) == {"a" * 64, "b" * 64}


def test_hash_file_without_the_format_line_is_refused(tmp_path):
  # Format 1: hashes of full-size pixels, which no build computes any more.
  path = tmp_path / "old.sha256"
  path.write_text("a" * 64 + "\n")
  with pytest.raises(ValueError) as raised:
    blocklist.load_blocklist(str(path))
  assert str(raised.value) == (
      f"block-list {path} has no '# pipelines.blocklist format 2' first "
      f"line: an old file of full-size pixel hashes no longer matches; "
      f"re-create it with python -m pipelines.blocklist")
  path.write_text("# pipelines.blocklist format 3, image_size 256\n")
  with pytest.raises(ValueError, match="is in format 3; this version reads "
                     "format 2$"):
    blocklist.load_blocklist(str(path))


def test_hash_file_of_another_image_size_is_refused(tmp_path):
  path = tmp_path / "list.sha256"
  _hash_file(path, ["a" * 64], size=384)
  assert blocklist.load_blocklist(str(path), image_size=384) == {"a" * 64}
  with pytest.raises(ValueError) as raised:
    blocklist.load_blocklist(str(path))
  assert str(raised.value) == (
      f"block-list {path} hashes images stored at a 384 px shorter side, "
      f"this build stores 256 px; re-create it with python -m "
      f"pipelines.blocklist --image_size 256")


def test_load_directory_hashes_decoded_pixels_recursively(tmp_path):
  png = str(tmp_path / "imgs" / "one.png")
  nested = str(tmp_path / "imgs" / "sub" / "two.PNG")
  _save(_pixels(0), png, "PNG")
  _save(_pixels(1), nested, "PNG")
  (tmp_path / "imgs" / "captions.jsonl").write_text("{}\n")
  hashes = blocklist.load_blocklist(str(tmp_path / "imgs"))
  assert hashes == {images.pixel_sha256(_pixels(0)),
                    images.pixel_sha256(_pixels(1))}
  # The same pixels re-saved in another format hash the same.
  _save(_pixels(0), str(tmp_path / "other" / "x.bmp"), "BMP")
  assert (blocklist.load_blocklist(str(tmp_path / "other"))
          == {images.pixel_sha256(_pixels(0))})


def test_load_directory_matches_the_pipeline_hash_of_a_jpeg(tmp_path):
  path = str(tmp_path / "d" / "a.jpg")
  _save(_pixels(2, (64, 80)), path, "JPEG")
  assert blocklist.load_blocklist(str(tmp_path / "d")) == {_decoded_hash(path)}


def test_directory_images_are_hashed_as_stored_at_the_image_size(tmp_path):
  path = str(tmp_path / "d" / "a.png")
  _save(_pixels(5, (60, 90)), path, "PNG")
  hashes = blocklist.load_blocklist(str(tmp_path / "d"), image_size=30)
  assert hashes == {_decoded_hash(path, 30)}
  assert hashes == {images.pixel_sha256(images.resize_shorter_side(
      _pixels(5, (60, 90)), 30))}
  assert hashes != blocklist.load_blocklist(str(tmp_path / "d"))


def test_load_errors(tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    blocklist.load_blocklist(str(tmp_path / "missing"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="holds no image files"):
    blocklist.load_blocklist(str(tmp_path / "empty"))
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "x.jpg").write_bytes(b"not a jpeg")
  with pytest.raises(ValueError) as raised:
    blocklist.load_blocklist(str(tmp_path / "bad"))
  assert str(raised.value) == (
      f"block-list image {tmp_path / 'bad' / 'x.jpg'} is unusable: "
      f"corrupt_image: {images.NOT_AN_IMAGE}")


def test_load_blocklists_unions(tmp_path):
  _hash_file(tmp_path / "a.txt", ["a" * 64])
  _hash_file(tmp_path / "b.txt", ["b" * 64, "a" * 64])
  hashes = blocklist.load_blocklists([str(tmp_path / "a.txt"),
                                      str(tmp_path / "b.txt")])
  assert hashes == {"a" * 64, "b" * 64}
  assert blocklist.load_blocklists([]) == frozenset()


def test_blocklist_sha256_ignores_order():
  assert (blocklist.blocklist_sha256(["b" * 64, "a" * 64])
          == blocklist.blocklist_sha256({"a" * 64, "b" * 64}))
  assert (blocklist.blocklist_sha256([])
          != blocklist.blocklist_sha256(["a" * 64]))


def test_cli_writes_a_loadable_sorted_file(tmp_path, capsys):
  _save(_pixels(3), str(tmp_path / "imgs" / "a.png"), "PNG")
  _save(_pixels(4), str(tmp_path / "imgs" / "b.png"), "PNG")
  output = str(tmp_path / "list.sha256")
  assert blocklist.main([str(tmp_path / "imgs"), "--output", output]) == 0
  assert "wrote 2 hashes (2 images)" in capsys.readouterr().out
  lines = open(output).read().splitlines()
  assert lines[0] == "# pipelines.blocklist format 2, image_size 256"
  assert lines[1:] == sorted(lines[1:]) and len(lines) == 3
  assert blocklist.load_blocklist(output) == blocklist.load_blocklist(
      str(tmp_path / "imgs"))
  assert blocklist.main([str(tmp_path / "imgs"), "--output", output,
                         "--image_size", "20"]) == 0
  assert (blocklist.load_blocklist(output, image_size=20)
          == blocklist.load_blocklist(str(tmp_path / "imgs"), image_size=20))


def test_cli_error_is_one_line(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  assert blocklist.main([str(tmp_path / "empty"), "--output",
                         str(tmp_path / "o")]) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: no image files under") and err.count("\n") == 1
