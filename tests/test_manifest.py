"""Tests for dataformat.manifest: typed manifests, read and written."""

import json

import pytest

from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import shards

# The bytes a small manifest is written as: the keys in this order, two-space
# indents, non-ASCII kept, a final newline (as every build has written them).
_EXPECTED = """{
  "schema_version": 1,
  "split": "train",
  "counts": {
    "read": 5,
    "kept": 3,
    "rejected": {
      "empty_caption": 2,
      "corrupt_image": 0
    }
  },
  "shards": [
    {
      "file": "train-00000-of-00001.array_record",
      "count": 3,
      "sha256": "aa"
    }
  ],
  "rejected_file": {
    "file": "rejected.jsonl",
    "count": 2,
    "sha256": "bb"
  },
  "stats_plot": "stats.png",
  "languages": {
    "de": 2,
    "ja": 1
  },
  "vocabularies": [
    {
      "name": "multi250k",
      "size": 250000,
      "sha256": "cc"
    }
  ],
  "options": {
    "inputs": [
      "/data/ü/*.tar"
    ],
    "num_shards": 1
  },
  "input_files": {
    "count": 2,
    "corrupt": [
      {
        "file": "/data/ü/b.tar",
        "error": "truncated"
      }
    ]
  }
}
"""


def small_manifest(**changes) -> manifest_lib.Manifest:
  fields = dict(
      schema_version=1, split="train",
      counts=manifest_lib.Counts(
          read=5, kept=3, rejected={"empty_caption": 2, "corrupt_image": 0}),
      shards=[shards.ShardInfo("train-00000-of-00001.array_record", 3, "aa")],
      rejected_file=manifest_lib.RejectedFile("rejected.jsonl", 2, "bb"),
      stats_plot="stats.png", languages={"de": 2, "ja": 1},
      vocabularies=[manifest_lib.VocabularyEntry("multi250k", 250000, "cc")],
      options={"inputs": ["/data/ü/*.tar"], "num_shards": 1},
      input_files=manifest_lib.InputFiles(
          2, [manifest_lib.CorruptInput("/data/ü/b.tar", "truncated")]))
  fields.update(changes)
  return manifest_lib.Manifest(**fields)


def lit_tower() -> manifest_lib.Tower:
  return manifest_lib.Tower(
      kind="ours", checkpoint="/runs/siglip", sha256="dd", step=4,
      image_tower={"width": 32, "depth": 1}, head_dim=None, image_size=64,
      embedding_dim=32, dtype="float32", normalized=False,
      image_mode="resize")


def test_a_manifest_is_written_as_fixed_bytes_and_read_back(tmp_path):
  path = str(tmp_path / shards.MANIFEST)
  manifest = small_manifest()
  manifest_lib.write(path, manifest)
  assert files.read_text(path) == _EXPECTED
  assert manifest_lib.read(path) == manifest
  assert manifest.counts.rejected_total == 2
  assert manifest.vocabulary("multi250k").size == 250000
  assert manifest.vocabulary("en32k") is None


def test_a_lit_manifest_puts_tower_and_source_before_the_inputs(tmp_path):
  path = str(tmp_path / shards.MANIFEST)
  manifest = small_manifest(
      tower=lit_tower(),
      source_dataset=manifest_lib.SourceDataset("/data/ds", "ee", 3))
  manifest_lib.write(path, manifest)
  written = json.loads(files.read_text(path))
  assert list(written)[-4:] == ["options", "tower", "source_dataset",
                                "input_files"]
  assert list(written["tower"]) == [
      "kind", "checkpoint", "sha256", "step", "image_tower", "head_dim",
      "image_size", "embedding_dim", "dtype", "normalized", "image_mode"]
  assert written["source_dataset"] == {"path": "/data/ds",
                                       "manifest_sha256": "ee", "records": 3}
  assert manifest_lib.read(path) == manifest


def test_a_tower_entry_is_its_description_and_image_mode():
  description = manifest_lib.TowerDescription.from_description(lit_tower())
  assert description == manifest_lib.TowerDescription(
      kind="ours", checkpoint="/runs/siglip", sha256="dd", step=4,
      image_tower={"width": 32, "depth": 1}, head_dim=None, image_size=64,
      embedding_dim=32, dtype="float32", normalized=False)
  assert manifest_lib.Tower.from_description(
      description, image_mode="resize") == lit_tower()
  with pytest.raises(TypeError, match="image_mode"):
    manifest_lib.Tower.from_description(description)


@pytest.mark.parametrize("remove, key", [
    (lambda m: m.pop("counts"), "counts"),
    (lambda m: m["counts"].pop("kept"), "counts.kept"),
    (lambda m: m["shards"][0].pop("sha256"), "shards[0].sha256"),
    (lambda m: m["input_files"]["corrupt"][0].pop("error"),
     "input_files.corrupt[0].error"),
    (lambda m: m["tower"].pop("image_mode"), "tower.image_mode"),
])
def test_a_missing_key_is_one_line_naming_the_file_and_key(tmp_path, remove,
                                                           key):
  data = small_manifest(tower=lit_tower()).to_json()
  remove(data)
  path = str(tmp_path / shards.MANIFEST)
  files.write_json(path, data)
  with pytest.raises(manifest_lib.ManifestError) as raised:
    manifest_lib.read(path)
  assert str(raised.value) == f"{path} has no key {key!r}"


def test_unreadable_manifests_are_named(tmp_path):
  missing = str(tmp_path / "nothing" / shards.MANIFEST)
  with pytest.raises(manifest_lib.ManifestError,
                     match=f"^{missing} does not exist$"):
    manifest_lib.read(missing)
  bad = tmp_path / shards.MANIFEST
  bad.write_text("{")
  with pytest.raises(manifest_lib.ManifestError, match="is not valid JSON"):
    manifest_lib.read(str(bad))
  bad.write_text("[]")
  with pytest.raises(manifest_lib.ManifestError,
                     match="the manifest is not a JSON object"):
    manifest_lib.read(str(bad))
