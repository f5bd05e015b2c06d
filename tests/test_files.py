"""The file layer on local paths (gs:// runs in the emulator tests)."""

import hashlib
import json
import os

import pytest

from dataformat import files


def test_is_uri_and_resolve(tmp_path, monkeypatch):
  assert files.is_uri("gs://bucket/a")
  assert not files.is_uri("/tmp/a")
  assert not files.is_uri("relative/a")
  assert files.resolve("gs://bucket/a/../b") == "gs://bucket/a/../b"
  monkeypatch.chdir(tmp_path)
  assert files.resolve("x/../y") == str(tmp_path / "y")
  assert os.path.isabs(files.resolve("z"))


def test_join_basename_dirname():
  assert files.join("gs://b/d", "x", "y.json") == "gs://b/d/x/y.json"
  assert files.join("/a", "b") == os.path.join("/a", "b")
  assert files.basename("gs://b/d/") == "d"
  assert files.basename("/a/b/") == "b"
  assert files.dirname("gs://b/d/f.json") == "gs://b/d"
  assert files.dirname("/a/b/c") == "/a/b"


def test_round_trips_and_hash(tmp_path):
  target = str(tmp_path / "new" / "dir" / "f.bin")
  files.write_bytes(target, b"\x00\x01abc")
  assert files.read_bytes(target) == b"\x00\x01abc"
  assert files.sha256(target) == hashlib.sha256(b"\x00\x01abc").hexdigest()
  copied = str(tmp_path / "other" / "g.bin")
  assert files.copy(target, copied) == files.sha256(target)
  assert files.read_bytes(copied) == b"\x00\x01abc"

  text = str(tmp_path / "t.json")
  files.write_json(text, {"b": 1, "a": "ü"})
  assert files.read_text(text) == '{\n  "b": 1,\n  "a": "ü"\n}\n'
  assert files.read_json(text) == {"b": 1, "a": "ü"}


def test_bad_json_names_line_and_column(tmp_path):
  bad = tmp_path / "bad.json"
  bad.write_text('{\n  "a": 1,\n  "b": \n')
  with pytest.raises(ValueError, match=r"bad\.json is not valid JSON: .* "
                     r"at line 4 column 1"):
    files.read_json(str(bad))


def test_glob_listdir_exists_remove(tmp_path):
  for name in ("b.txt", "a.txt", "c.bin"):
    (tmp_path / name).write_bytes(b"")
  assert files.glob(str(tmp_path / "*.txt")) == [
      str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
  assert files.listdir(str(tmp_path)) == ["a.txt", "b.txt", "c.bin"]
  assert files.exists(str(tmp_path / "a.txt"))
  assert files.isfile(str(tmp_path / "a.txt"))
  assert not files.isfile(str(tmp_path))
  files.remove(str(tmp_path / "a.txt"))
  files.remove(str(tmp_path / "a.txt"))
  assert not files.exists(str(tmp_path / "a.txt"))
  files.rmtree(str(tmp_path))
  assert not tmp_path.exists()
  files.rmtree(str(tmp_path))


def test_memory_file_system_goes_through_fsspec():
  # Any fsspec scheme takes the URI branch; "memory://" needs no server.
  files.write_json("memory://bucket/d/m.json", {"n": 3})
  assert files.exists("memory://bucket/d/m.json")
  assert files.read_json("memory://bucket/d/m.json") == {"n": 3}
  assert files.glob("memory://bucket/d/*.json") == ["memory://bucket/d/m.json"]
  assert files.listdir("memory://bucket/d") == ["m.json"]
  files.rmtree("memory://bucket/d")
  assert not files.exists("memory://bucket/d/m.json")
  assert json.loads(json.dumps(files.glob("memory://bucket/d/*"))) == []


@pytest.mark.parametrize("root", ["local", "memory://walk"])
def test_walk_and_rename_a_directory(root, tmp_path):
  root = str(tmp_path) if root == "local" else root
  for name in ("d/b/2", "d/a", "d/b/1", "e"):
    files.write_text(files.join(root, name), name)
  assert files.find(files.join(root, "d")) == [
      files.join(root, name) for name in ("d/a", "d/b/1", "d/b/2")]
  files.rename(files.join(root, "d"), files.join(root, "d.old"))
  assert files.find(files.join(root, "d")) == []
  assert [files.read_text(p) for p in files.find(
      files.join(root, "d.old"))] == ["d/a", "d/b/1", "d/b/2"]
  files.rename(files.join(root, "e"), files.join(root, "f"))
  assert (files.exists(files.join(root, "e")),
          files.read_text(files.join(root, "f"))) == (False, "e")
  files.rmtree(root)


@pytest.mark.parametrize("root", ["local", "memory://isdir"])
def test_isdir_holds_for_a_directory_with_files_only(root, tmp_path):
  root = str(tmp_path) if root == "local" else root
  files.write_text(files.join(root, "d", "sub", "f"), "x")
  assert files.isdir(files.join(root, "d"))
  assert files.isdir(files.join(root, "d", "sub"))
  assert not files.isdir(files.join(root, "d", "sub", "f"))
  assert not files.isdir(files.join(root, "missing"))
  files.rmtree(root)
