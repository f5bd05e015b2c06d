"""Tests for pipelines.blocklist."""

import hashlib
import io
import json
import os
import pickle
import re

import numpy as np
from PIL import Image
import pytest

from pipelines import blocklist
from pipelines import image_signature
from pipelines import images
from pipelines import near_duplicates
from pipelines.image_signature import Signatures
from pipelines.reasons import Reason


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


def _sha256s(entries) -> set[str]:
  return {e.sha256 for e in entries}


def _write_v2(tmp_path, *images_) -> str:
  for name, pixels in images_:
    _save(pixels, str(tmp_path / "imgs" / name), "PNG")
  output = str(tmp_path / "list.blocklist")
  assert blocklist.main([str(tmp_path / "imgs"), "--output", output]) == 0
  return output


def test_an_old_hash_file_is_refused_with_what_to_do(tmp_path):
  path = tmp_path / "list.sha256"
  path.write_text("b" * 64 + "\n" + "a" * 64 + "\n")
  with pytest.raises(ValueError) as raised:
    blocklist.load_blocklist(str(path))
  assert str(raised.value) == (
      f"{path} is not a version 3 block-list file (version 1 holds only "
      f"hex SHA-256 lines, no perceptual signatures): rebuild it with python "
      f"-m pipelines.blocklist --output {path} IMAGE_DIR, or pass the image "
      f"directory itself")


def test_file_round_trip_equals_the_directory(tmp_path, capsys):
  output = _write_v2(tmp_path, ("a.png", _pixels(3)), ("b.png", _pixels(4)))
  assert "wrote 2 images" in capsys.readouterr().out
  from_file = blocklist.load_blocklist(output)
  from_dir = blocklist.load_blocklist(str(tmp_path / "imgs"))
  assert [e.key for e in from_file] == ["a.png", "b.png"]
  for a, b in zip(from_file, from_dir, strict=True):
    assert (a.key, a.sha256) == (b.key, b.sha256)
    assert a.signatures.hashes.tolist() == b.signatures.hashes.tolist()
    assert np.array_equal(a.signatures.colour, b.signatures.colour)
  assert from_file[0].sha256 == _decoded_hash(str(tmp_path / "imgs" / "a.png"))
  assert len(from_file[0].signatures) == 81


def test_a_file_of_another_signature_version_is_refused(tmp_path):
  output = _write_v2(tmp_path, ("a.png", _pixels(3)))
  lines = open(output).read().splitlines()
  header = json.loads(lines[0])
  header["signature_version"] += 1
  (tmp_path / "future.blocklist").write_text(
      "\n".join([json.dumps(header)] + lines[1:]))
  with pytest.raises(ValueError, match=r"future.blocklist is block-list "
                     r"version 3 with signature dct64-ycc6x6 v2; this build "
                     r"reads version 3 with dct64-ycc6x6 v1"):
    blocklist.load_blocklist(str(tmp_path / "future.blocklist"))


def test_a_bad_entry_line_is_named(tmp_path):
  output = _write_v2(tmp_path, ("a.png", _pixels(3)))
  with open(output, "a") as f:
    f.write('{"key": "x", "sha256": "y", "hashes": "!!"}\n')
  with pytest.raises(ValueError, match=r"list.blocklist:3: not a block-list "
                     r"entry"):
    blocklist.load_blocklist(output)


def test_a_file_of_another_image_size_or_version_is_refused(tmp_path):
  output = _write_v2(tmp_path, ("a.png", _pixels(3, (60, 90))))
  assert blocklist.main([str(tmp_path / "imgs"), "--output", output,
                         "--image_size", "20"]) == 0
  assert (_sha256s(blocklist.load_blocklist(output, image_size=20))
          == _sha256s(blocklist.load_blocklist(str(tmp_path / "imgs"),
                                               image_size=20)))
  with pytest.raises(ValueError) as raised:
    blocklist.load_blocklist(output)
  assert str(raised.value) == (
      f"{output} hashes images stored at a 20 px shorter side, this build "
      f"stores 256 px: rebuild it with python -m pipelines.blocklist "
      f"--image_size 256, or pass the image directory itself")
  lines = open(output).read().splitlines()
  header = json.loads(lines[0])
  del header["image_size"]
  header["version"] = 2
  (tmp_path / "v2.blocklist").write_text(
      "\n".join([json.dumps(header)] + lines[1:]))
  with pytest.raises(ValueError, match=r"v2.blocklist is block-list version "
                     r"2 with signature dct64-ycc6x6 v1; this build reads "
                     r"version 3"):
    blocklist.load_blocklist(str(tmp_path / "v2.blocklist"))


def test_load_directory_hashes_decoded_pixels_recursively(tmp_path):
  png = str(tmp_path / "imgs" / "one.png")
  nested = str(tmp_path / "imgs" / "sub" / "two.PNG")
  _save(_pixels(0), png, "PNG")
  _save(_pixels(1), nested, "PNG")
  (tmp_path / "imgs" / "captions.jsonl").write_text("{}\n")
  entries = blocklist.load_blocklist(str(tmp_path / "imgs"))
  assert [e.key for e in entries] == ["one.png", "sub/two.PNG"]
  assert _sha256s(entries) == {images.pixel_sha256(_pixels(0)),
                               images.pixel_sha256(_pixels(1))}
  # The same pixels re-saved in another format hash the same.
  _save(_pixels(0), str(tmp_path / "other" / "x.bmp"), "BMP")
  assert (_sha256s(blocklist.load_blocklist(str(tmp_path / "other")))
          == {images.pixel_sha256(_pixels(0))})


def test_load_directory_matches_the_pipeline_hash_of_a_jpeg(tmp_path):
  path = str(tmp_path / "d" / "a.jpg")
  _save(_pixels(2, (64, 80)), path, "JPEG")
  assert (_sha256s(blocklist.load_blocklist(str(tmp_path / "d")))
          == {_decoded_hash(path)})


def test_directory_images_are_hashed_as_stored_at_the_image_size(tmp_path):
  path = str(tmp_path / "d" / "a.png")
  _save(_pixels(5, (60, 90)), path, "PNG")
  hashes = _sha256s(blocklist.load_blocklist(str(tmp_path / "d"),
                                             image_size=30))
  assert hashes == {_decoded_hash(path, 30)}
  assert hashes == {images.pixel_sha256(images.resize_shorter_side(
      _pixels(5, (60, 90)), 30))}
  assert hashes != _sha256s(blocklist.load_blocklist(str(tmp_path / "d")))


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


def test_load_blocklists_concatenates(tmp_path):
  first = _write_v2(tmp_path / "1", ("a.png", _pixels(3)))
  _save(_pixels(4), str(tmp_path / "2" / "b.png"), "PNG")
  entries = blocklist.load_blocklists([first, str(tmp_path / "2")])
  assert [e.key for e in entries] == ["a.png", "b.png"]
  assert blocklist.load_blocklists([]) == []


def test_blocklist_sha256_ignores_order_and_repeats():
  assert (blocklist.blocklist_sha256(["b" * 64, "a" * 64, "a" * 64])
          == blocklist.blocklist_sha256({"a" * 64, "b" * 64}))
  assert (blocklist.blocklist_sha256([])
          != blocklist.blocklist_sha256(["a" * 64]))


def _scene(colour, centre_x: int) -> np.ndarray:
  """A smooth picture: a gradient sky, a disc of `colour`, textured ground."""
  rng = np.random.default_rng(7)
  yy, xx = np.mgrid[:120, :160]
  pixels = np.zeros((120, 160, 3), np.float32)
  pixels[:] = np.stack([90 + yy * 0.5, 140 + yy * 0.4, 230 - yy * 0.3], -1)
  pixels[80:] = (70, 120, 50)
  pixels[80:] += rng.normal(0, 12, (40, 160, 1))
  pixels[(yy - 45) ** 2 + (xx - centre_x) ** 2 < 22 ** 2] = colour
  return np.clip(pixels, 0, 255).astype(np.uint8)


def test_eval_filter_rejects_near_copies_and_leaves_exact_ones(tmp_path):
  eval_scene = _scene((230, 200, 40), 50)
  _save(eval_scene, str(tmp_path / "xm" / "sun.png"), "PNG")
  _save(_scene((230, 200, 40), 120), str(tmp_path / "xm" / "east.png"), "PNG")
  config = image_signature.MatchConfig()
  eval_filter = near_duplicates.EvalImageFilter(
      blocklist.load_blocklist(str(tmp_path / "xm")), config)

  def verdict(pixels):
    return eval_filter.reject_reason(pixels, images.pixel_sha256(pixels))

  assert verdict(eval_scene) is None  # Exact: BLOCKLISTED_IMAGE's job.
  smaller = np.asarray(Image.fromarray(eval_scene).resize((96, 72)))
  reason, detail = verdict(smaller)
  assert reason == Reason.NEAR_DUPLICATE_OF_EVAL
  assert re.fullmatch(r"near sun\.png \(distance \d+ <= radius 10\)", detail)
  assert verdict(np.ascontiguousarray(eval_scene[6:, 8:150]))[0] == (
      Reason.NEAR_DUPLICATE_OF_EVAL)
  assert verdict(np.ascontiguousarray(eval_scene[:, ::-1]))[0] == (
      Reason.NEAR_DUPLICATE_OF_EVAL)
  # The same layout with a red disc: another picture.
  assert verdict(_scene((200, 30, 30), 50)) is None
  # The filter travels to Beam workers by pickle.
  again = pickle.loads(pickle.dumps(eval_filter))
  assert again.reject_reason(smaller, images.pixel_sha256(smaller)) == (
      reason, detail)


def many_eval_images(count: int,
                     seed: int = 0) -> list[near_duplicates.EvalImage]:
  """`count` made-up eval images: random pixel SHA-256s and signatures, 81
  of them each, as a signed eval image has."""
  rng = np.random.default_rng(seed)
  return [near_duplicates.EvalImage(
      f"made-up/{seed}-{i:05d}.jpg",
      hashlib.sha256(f"{seed}/{i}".encode()).hexdigest(),
      Signatures(rng.integers(0, 2**64, 81, np.uint64),
                 rng.integers(-128, 128, (81, image_signature.COLOUR_VALUES),
                              np.int8)))
          for i in range(count)]


def test_the_file_for_workers_is_named_by_its_sha256_and_reads_back(
    tmp_path):
  source = _write_v2(tmp_path, ("a.png", _pixels(3)), ("b.png", _pixels(4)))
  entries = blocklist.load_blocklist(source) + many_eval_images(30)
  written = blocklist.write_for_workers(entries, 256, str(tmp_path / "w"))
  data = (tmp_path / "w" / f"{written.sha256}.blocklist").read_bytes()
  assert written == blocklist.BlocklistFile(
      str(tmp_path / "w" / f"{written.sha256}.blocklist"),
      hashlib.sha256(data).hexdigest(), 256)
  # The block-list file format, as the command writes it.
  assert data.startswith(open(source, "rb").read())
  for entries_read in (written.entries(),
                       blocklist.load_blocklist(written.path)):
    assert [(e.key, e.sha256) for e in entries_read] == [
        (e.key, e.sha256) for e in entries]
    for a, b in zip(entries_read, entries, strict=True):
      assert np.array_equal(a.signatures.hashes, b.signatures.hashes)
      assert np.array_equal(a.signatures.colour, b.signatures.colour)
  assert written.blocked_hashes() == sorted(_sha256s(entries))


def test_a_filter_of_a_file_pickles_small_and_judges_as_the_original(
    tmp_path, monkeypatch):
  eval_scene = _scene((230, 200, 40), 50)
  _save(eval_scene, str(tmp_path / "xm" / "sun.png"), "PNG")
  _save(_scene((230, 200, 40), 120), str(tmp_path / "xm" / "east.png"), "PNG")
  config = image_signature.MatchConfig()
  queries = [
      eval_scene,  # Exact: BLOCKLISTED_IMAGE's job.
      np.asarray(Image.fromarray(eval_scene).resize((96, 72))),
      np.ascontiguousarray(eval_scene[6:, 8:150]),
      np.ascontiguousarray(eval_scene[:, ::-1]),
      _scene((200, 30, 30), 50),
      _pixels(9, (90, 120)),
  ]
  loads = []
  entries_of = blocklist.BlocklistFile.entries
  monkeypatch.setattr(blocklist.BlocklistFile, "entries",
                      lambda self: loads.append(self) or entries_of(self))
  sizes = {}
  for made_up in (0, 400):
    entries = (blocklist.load_blocklist(str(tmp_path / "xm"))
               + many_eval_images(made_up))
    original = near_duplicates.EvalImageFilter(entries, config)
    expected = [original.reject_reason(q, images.pixel_sha256(q))
                for q in queries]
    assert [v and v[0] for v in expected] == [
        None, *[Reason.NEAR_DUPLICATE_OF_EVAL] * 3, None, None]
    written = blocklist.write_for_workers(entries, 256,
                                          str(tmp_path / f"w{made_up:03d}"))
    pickled = pickle.dumps(
        near_duplicates.EvalImageFilter(entries, config, written))
    sizes[made_up] = len(pickled)
    # Without the file, the signatures travel: about 9 KB per eval image.
    assert len(pickle.dumps(original)) > 9000 * len(entries)
    copies = [pickle.loads(pickled) for _ in range(3)]
    for copy in copies:
      assert [copy.reject_reason(q, images.pixel_sha256(q))
              for q in queries] == expected
      assert copy.num_signatures == 81 * len(entries)
    # Loaded once in this process, whatever the number of copies.
    assert loads == [written]
    loads.clear()
  assert sizes[0] == sizes[400] < 1024


def test_a_changed_file_for_workers_is_refused_in_one_line(tmp_path):
  written = blocklist.write_for_workers(many_eval_images(3), 256,
                                        str(tmp_path))
  lines = open(written.path).read().splitlines(keepends=True)
  with open(written.path, "w") as f:
    f.writelines(lines[:-1])
  changed = hashlib.sha256(open(written.path, "rb").read()).hexdigest()
  eval_filter = pickle.loads(pickle.dumps(near_duplicates.EvalImageFilter(
      None, image_signature.MatchConfig(), written)))
  with pytest.raises(ValueError) as raised:
    eval_filter.reject_reason(_pixels(1), images.pixel_sha256(_pixels(1)))
  assert str(raised.value) == (
      f"block-list {written.path} has changed since the build wrote it "
      f"(sha256 {changed}, expected {written.sha256}): launch the build "
      f"again")
  with pytest.raises(ValueError, match="needs entries or a source"):
    near_duplicates.EvalImageFilter(None, image_signature.MatchConfig())


def test_cli_error_is_one_line(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  assert blocklist.main([str(tmp_path / "empty"), "--output",
                         str(tmp_path / "o")]) == 1
  err = capsys.readouterr().err
  assert err.startswith("error: no image files under") and err.count("\n") == 1
