"""Tests for eval/zeroshot_data.py: class files, templates, the three layouts."""

import io

import numpy as np
from PIL import Image
import pytest

from dataformat import example_proto
from dataformat import files
from dataformat import shards
from eval import zeroshot_data

KEYS = ("circle", "square", "star")
PER_CLASS = 3


def image_bytes(class_index: int, index: int, image_format: str = "PNG"
                ) -> bytes:
  """A small distinct image per (class, index)."""
  pixels = np.full((12, 16, 3), (40 * class_index, 20 * index, 7), np.uint8)
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format=image_format)
  return buffer.getvalue()


def expected_images() -> list[tuple[int, bytes]]:
  return [(c, image_bytes(c, i)) for c in range(len(KEYS))
          for i in range(PER_CLASS)]


def write_folders(root, images=None):
  """DIR/<class>/<index>.png for `images` [(class, bytes)]."""
  counters = {}
  for label, data in images or expected_images():
    folder = root / KEYS[label]
    folder.mkdir(parents=True, exist_ok=True)
    counters[label] = counters.get(label, 0) + 1
    (folder / f"{counters[label]:03d}.png").write_bytes(data)
  return root


def example(fields: dict) -> bytes:
  feature = {}
  for name, value in fields.items():
    if isinstance(value, bytes):
      feature[name] = example_proto.Feature(
          bytes_list=example_proto.BytesList(value=[value]))
    else:
      feature[name] = example_proto.Feature(
          int64_list=example_proto.Int64List(value=[value]))
  return example_proto.Example(features=example_proto.Features(
      feature=feature)).SerializeToString()


def write_tfrecords(root, labels=None, images=None):
  """TFDS-style files written by TensorFlow: a test split in 2 shards, and a
  train file that a --split test read must skip."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  root.mkdir(parents=True, exist_ok=True)
  images = images or expected_images()
  labels = labels or [label for label, _ in images]
  records = [example({"image": data, "label": label})
             for label, (_, data) in zip(labels, images)]
  half = len(records) // 2
  for name, shard in (("shapes-test.tfrecord-00000-of-00002", records[:half]),
                      ("shapes-test.tfrecord-00001-of-00002", records[half:]),
                      ("shapes-train.tfrecord-00000-of-00001", records[:1])):
    with tf.io.TFRecordWriter(str(root / name)) as writer:
      for record in shard:
        writer.write(record)
  return root


def write_dataset(root):
  """A dataset of this project whose records carry a bytes class key."""
  root.mkdir(parents=True)
  records = [example({"key": f"k{i}".encode(), "image/encoded": data,
                      "class": KEYS[label].encode()})
             for i, (label, data) in enumerate(expected_images())]
  shards.write_array_record(str(root / "train-00000-of-00002.array_record"),
                            records[:4])
  shards.write_array_record(str(root / "train-00001-of-00002.array_record"),
                            records[4:])
  files.write_json(str(root / shards.MANIFEST), {"counts": {}})
  (root / shards.COMPLETED).write_text("")
  return root


def test_class_file_synonyms_keys_and_comments():
  text = "# shapes\n\ncircle | round thing\nsquare\n  star |  pentagram \n"
  classes = zeroshot_data.parse_classes(text, "c.txt")
  assert classes.keys == KEYS
  assert classes.names == (("circle", "round thing"), ("square",),
                           ("star", "pentagram"))
  keyed = zeroshot_data.parse_classes("n01\ttench | Tinca tinca\nn02\tgoldfish\n",
                                      "k.txt")
  assert keyed.keys == ("n01", "n02") and keyed.explicit_keys
  assert keyed.names[0] == ("tench", "Tinca tinca")


@pytest.mark.parametrize("text, message", [
    ("", "class-name file c.txt lists no class"),
    ("a\na\n", "c.txt line 2: class 'a' is listed twice"),
    ("a |  | b\n", "c.txt line 1: empty class name in 'a |  | b'"),
    ("k\ta\nb\n", r"c.txt: give a key \(KEY<TAB>names\) on every line or on "
     "none"),
])
def test_bad_class_files(text, message):
  with pytest.raises(ValueError, match=f"^{message}$"):
    zeroshot_data.parse_classes(text, "c.txt")


def test_per_language_class_files_must_list_the_same_classes(tmp_path):
  (tmp_path / "en.txt").write_text("a\tcircle\nb\tsquare\n")
  (tmp_path / "de.txt").write_text("a\tKreis\nb\tQuadrat\n")
  (tmp_path / "fr.txt").write_text("a\tcercle\n")
  (tmp_path / "it.txt").write_text("a\tcerchio\nc\tquadrato\n")
  pattern = str(tmp_path / "{lang}.txt")
  assert zeroshot_data.available_languages(pattern) == ["de", "en", "fr", "it"]
  lists = zeroshot_data.load_classes(pattern, ["en", "de"])
  assert lists["de"].names == (("Kreis",), ("Quadrat",))
  with pytest.raises(ValueError, match="fr.txt lists 1 classes but .*en.txt 2"):
    zeroshot_data.load_classes(pattern, ["en", "fr"])
  with pytest.raises(ValueError, match="class 2 is 'c' in .*it.txt but 'b'"):
    zeroshot_data.load_classes(pattern, ["en", "it"])
  with pytest.raises(ValueError, match="is one file, but 2 languages"):
    zeroshot_data.load_classes(str(tmp_path / "en.txt"), ["en", "de"])


def test_builtin_template_sets():
  clip = zeroshot_data.builtin_templates("clip")
  assert len(clip) == len(set(clip)) == 80
  assert clip[0] == "a bad photo of a {}." and clip[-1] == "a tattoo of the {}."
  short = zeroshot_data.builtin_templates("short")
  assert len(short) == 7 and set(short) <= set(clip)
  assert zeroshot_data.load_templates("name", ["de", "ja"]) == {
      "de": ("{}",), "ja": ("{}",)}


def test_template_files_and_errors(tmp_path):
  (tmp_path / "de.txt").write_text("# Deutsch\nein Bild von {}\n{}\n")
  (tmp_path / "bad.txt").write_text("no placeholder\n")
  assert zeroshot_data.load_templates(str(tmp_path / "{lang}.txt"), ["de"]) == {
      "de": ("ein Bild von {}", "{}")}
  with pytest.raises(ValueError, match="^unknown template set 'fancy': "
                     "expected one of clip, short, name or a template file$"):
    zeroshot_data.load_templates("fancy", ["en"])
  with pytest.raises(ValueError, match="template set 'clip' is English; for "
                     "de give --templates"):
    zeroshot_data.load_templates("clip", ["en", "de"])
  with pytest.raises(ValueError, match="bad.txt line 1: a template holds"):
    zeroshot_data.load_templates(str(tmp_path / "bad.txt"), ["en"])
  with pytest.raises(ValueError, match="template file .*fr.txt does not exist"):
    zeroshot_data.load_templates(str(tmp_path / "{lang}.txt"), ["fr"])


def test_prompts_are_every_template_with_every_synonym():
  classes = zeroshot_data.parse_classes("cat | kitty\ndog\n", "c")
  assert zeroshot_data.prompts(classes, ["a {}.", "my {}"]) == (
      ["a cat.", "my cat", "a kitty.", "my kitty", "a dog.", "my dog"],
      [0, 0, 0, 0, 1, 1])


def _read(images):
  return list(zip(images.labels, images.read()))


@pytest.mark.parametrize("layout", ["folder", "tfrecord", "arrayrecord"])
def test_each_layout_reads_every_image_with_its_label(tmp_path, layout):
  root = tmp_path / "data"
  if layout == "folder":
    write_folders(root)
    options = {}
  elif layout == "tfrecord":
    write_tfrecords(root)
    options = {"split": "test"}
  else:
    write_dataset(root)
    options = {"label_field": "class"}
  images = zeroshot_data.load_images(root, KEYS, "c.txt", **options)
  assert images.layout == layout
  assert _read(images) == expected_images()
  assert len(images.ids) == len(KEYS) * PER_CLASS
  # A second read gives the same bytes again (each evaluation reads anew).
  assert _read(images) == expected_images()


def test_tfrecords_without_split_read_every_file(tmp_path):
  images = zeroshot_data.load_images(write_tfrecords(tmp_path / "d"), KEYS,
                                     "c.txt")
  assert len(images.labels) == len(KEYS) * PER_CLASS + 1


def test_folder_errors(tmp_path):
  root = write_folders(tmp_path / "d", [(0, image_bytes(0, 0)),
                                        (1, image_bytes(1, 0))])
  with pytest.raises(ValueError, match="^class 'star' has no images: no "):
    zeroshot_data.load_images(root, KEYS, "c.txt")
  with pytest.raises(ValueError, match="^folder 'square' under .* is not a "
                     "class of c.txt$"):
    zeroshot_data.load_images(root, ("circle",), "c.txt")
  with pytest.raises(ValueError, match="image directory .*nope does not exist"):
    zeroshot_data.load_images(tmp_path / "nope", KEYS, "c.txt",
                              layout="folder")


def test_record_label_errors(tmp_path):
  images = [(0, image_bytes(0, 0)), (1, image_bytes(1, 0)),
            (2, image_bytes(2, 0))]
  root = write_tfrecords(tmp_path / "out", labels=[0, 1, 3], images=images)
  with pytest.raises(ValueError, match=r"^label 3 of .*shapes-test.tfrecord-"
                     r"00001-of-00002:1 is outside the 3 classes of c.txt "
                     r"\(0..2\)$"):
    zeroshot_data.load_images(root, KEYS, "c.txt", split="test")
  root = write_tfrecords(tmp_path / "empty", labels=[0, 0, 1], images=images)
  with pytest.raises(ValueError, match="^class 'star' has no images in "):
    zeroshot_data.load_images(root, KEYS, "c.txt", split="test")
  dataset = write_dataset(tmp_path / "ds")
  with pytest.raises(ValueError, match="has 0 values in label field 'label'"):
    zeroshot_data.load_images(dataset, KEYS, "c.txt")
  with pytest.raises(ValueError, match="label 'star' of .* is not a class"):
    zeroshot_data.load_images(dataset, KEYS[:2], "c.txt",
                              label_field="class")
