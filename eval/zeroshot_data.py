"""Inputs of zero-shot classification: classes, prompt templates, images.

Class-name file (UTF-8, one class per line, in label order; blank lines and
lines starting with "#" are skipped):

  tench | Tinca tinca                 names separated by " | " (synonyms)
  n01440764<TAB>tench | Tinca tinca   a key before a tab (the folder name)

A class's key is the folder its images are in (image-folder layout) or its
string label; without a tab it is the class's first name. Integer labels
are 0-based line positions. Per language, `{lang}` in the path
(`classes/{lang}.txt`) names one file per language; every language's file
lists the same classes in the same order (their keys, where given, must
agree; the first language's keys are the classes' keys).

Templates: a built-in set (`TEMPLATE_SETS`: "clip", CLIP's 80 ImageNet
templates, and "short", 7 of them, both English; "name", the class name
alone, any language) or a file with one template per line, `{}` standing
for the class name; `{lang}` in its path names one file per language.

Images, in one of three layouts (`LAYOUTS`):

  folder       DIR/<class key>/*.jpg|jpeg|png|webp
  tfrecord     DIR/*.tfrecord* (TFDS style, `*-<split>.tfrecord*` with a
               split), tf.train.Example records with the image bytes and
               an int64 label (or a bytes class key)
  arrayrecord  one of the project's datasets (manifest.json, COMPLETED,
               <split>-*-of-*.array_record) whose records carry a label field

Every path goes through `dataformat.files` (local or gs://). Images are
listed (and labels checked) once; their bytes are read again, in order, for
each evaluation, so a large set is never held in memory.
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
import dataclasses
import importlib.resources
import os
from typing import Any

from dataformat import example_proto
from dataformat import files
from dataformat import records
from dataformat import shards as shards_lib
from pipelines.readers import tfrecord

LANG_PLACEHOLDER = "{lang}"
NAME_SEPARATOR = "|"
KEY_SEPARATOR = "\t"
# Built-in template sets: name -> (data file, language) or the bare name.
NAME_ONLY = "name"
_TEMPLATE_FILES = {"clip": "clip.txt", "short": "short.txt"}
TEMPLATE_SETS = (*_TEMPLATE_FILES, NAME_ONLY)
TEMPLATE_SET_LANGUAGE = "en"
CLASS_PLACEHOLDER = "{}"

FOLDER, TFRECORD, ARRAYRECORD, AUTO = "folder", "tfrecord", "arrayrecord", "auto"
LAYOUTS = (FOLDER, TFRECORD, ARRAYRECORD)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
TFRECORD_GLOB = "*.tfrecord*"
DEFAULT_FIELDS = {
    TFRECORD: ("image", "label"),
    ARRAYRECORD: (records.IMAGE_ENCODED, "label"),
}


# Classes ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClassList:
  """The classes of one language's class-name file.

  Attributes:
    path: the file.
    keys: each class's key (folder name or string label).
    names: each class's names (synonyms), at least one.
    explicit_keys: whether the file gave the keys (else first names).
  """

  path: str
  keys: tuple[str, ...]
  names: tuple[tuple[str, ...], ...]
  explicit_keys: bool


def parse_classes(text: str, path: str) -> ClassList:
  """Parses a class-name file's text (the module's format).

  Raises:
    ValueError: naming `path` and the line, for an empty name, a missing
      key, keys given on some lines only, a repeated key, or no class.
  """
  keys, names, keyed = [], [], []
  for number, line in enumerate(text.splitlines(), start=1):
    if not line.strip() or line.lstrip().startswith("#"):
      continue
    key = None
    if KEY_SEPARATOR in line:
      key, line = line.split(KEY_SEPARATOR, 1)
      key = key.strip()
      if not key:
        raise ValueError(f"{path} line {number}: empty class key")
    synonyms = tuple(name.strip() for name in line.split(NAME_SEPARATOR))
    if not all(synonyms):
      raise ValueError(f"{path} line {number}: empty class name in "
                       f"{line.strip()!r}")
    keyed.append(key is not None)
    keys.append(synonyms[0] if key is None else key)
    names.append(synonyms)
    if keys[-1] in keys[:-1]:
      raise ValueError(f"{path} line {number}: class {keys[-1]!r} is "
                       "listed twice")
  if not keys:
    raise ValueError(f"class-name file {path} lists no class")
  if any(keyed) and not all(keyed):
    raise ValueError(f"{path}: give a key (KEY<TAB>names) on every line or "
                     "on none")
  return ClassList(path, tuple(keys), tuple(names), all(keyed))


def per_language_paths(pattern: str, langs: Sequence[str],
                       flag: str) -> dict[str, str]:
  """{lang: path}: `{lang}` in `pattern` replaced by each language.

  A pattern without `{lang}` serves a single language.

  Raises:
    ValueError: if a pattern without `{lang}` is asked for several
      languages.
  """
  if LANG_PLACEHOLDER in pattern:
    return {lang: pattern.replace(LANG_PLACEHOLDER, lang) for lang in langs}
  if len(langs) > 1:
    raise ValueError(f"{flag} {pattern} is one file, but {len(langs)} "
                     f"languages are asked for: put {LANG_PLACEHOLDER} in "
                     "its path for one file per language")
  return {lang: pattern for lang in langs}


def available_languages(pattern: str) -> list[str]:
  """The languages that have a file for a `{lang}` pattern, sorted."""
  head, tail = pattern.split(LANG_PLACEHOLDER, 1)
  if LANG_PLACEHOLDER in tail:
    raise ValueError(f"{pattern} holds {LANG_PLACEHOLDER} more than once")
  matches = files.glob(head + "*" + tail)
  return sorted(match[len(head):len(match) - len(tail)] for match in matches
                if match.startswith(head) and match.endswith(tail))


def load_classes(pattern: str, langs: Sequence[str]) -> dict[str, ClassList]:
  """Each language's classes, checked to be the same classes.

  Raises:
    ValueError: for a missing or malformed file, or languages whose files
      list different numbers of classes or different keys.
  """
  lists = {}
  for lang, path in per_language_paths(pattern, langs, "--classes").items():
    if not files.isfile(path):
      raise ValueError(f"class-name file {path} does not exist")
    lists[lang] = parse_classes(files.read_text(path), path)
  first = next(iter(lists.values()))
  for lang, classes in lists.items():
    if len(classes.keys) != len(first.keys):
      raise ValueError(f"{classes.path} lists {len(classes.keys)} classes "
                       f"but {first.path} {len(first.keys)}")
    if classes.explicit_keys and first.explicit_keys and (
        classes.keys != first.keys):
      index = next(i for i, (a, b) in enumerate(zip(classes.keys, first.keys))
                   if a != b)
      raise ValueError(f"class {index + 1} is {classes.keys[index]!r} in "
                       f"{classes.path} but {first.keys[index]!r} in "
                       f"{first.path}")
  return lists


# Templates ----------------------------------------------------------------


def parse_templates(text: str, path: str) -> tuple[str, ...]:
  """Templates of a file: one per line, `#` comments and blanks skipped.

  Raises:
    ValueError: for a template without exactly one `{}`, or no template.
  """
  templates = []
  for number, line in enumerate(text.splitlines(), start=1):
    template = line.strip()
    if not template or template.startswith("#"):
      continue
    if template.count(CLASS_PLACEHOLDER) != 1:
      raise ValueError(f"{path} line {number}: a template holds {{}} (the "
                       f"class name) exactly once, got {template!r}")
    templates.append(template)
  if not templates:
    raise ValueError(f"template file {path} holds no template")
  return tuple(templates)


def builtin_templates(name: str) -> tuple[str, ...]:
  """A built-in template set by name (`TEMPLATE_SETS`).

  Raises:
    ValueError: for an unknown name.
  """
  if name == NAME_ONLY:
    return (CLASS_PLACEHOLDER,)
  if name not in _TEMPLATE_FILES:
    raise ValueError(f"unknown template set {name!r}: expected one of "
                     f"{', '.join(TEMPLATE_SETS)} or a template file")
  resource = importlib.resources.files("eval").joinpath(
      "templates", _TEMPLATE_FILES[name])
  return parse_templates(resource.read_text(encoding="utf-8"),
                         f"template set {name!r}")


def load_templates(spec: str, langs: Sequence[str]
                   ) -> dict[str, tuple[str, ...]]:
  """Each language's templates: a built-in set's name or a file pattern.

  A spec without a path separator, `.` or `{lang}` is a set's name.

  Raises:
    ValueError: for an unknown set, an English set asked for another
      language, or a missing or malformed file.
  """
  looks_like_name = (not any(c in spec for c in "/.") and
                     LANG_PLACEHOLDER not in spec)
  if (spec not in TEMPLATE_SETS and looks_like_name and
      not files.isfile(spec)):
    builtin_templates(spec)  # Raises the unknown-set error.
  if spec in TEMPLATE_SETS:
    others = [lang for lang in langs if lang != TEMPLATE_SET_LANGUAGE]
    if spec != NAME_ONLY and others:
      raise ValueError(
          f"template set {spec!r} is English; for {' '.join(others)} give "
          f"--templates DIR/{LANG_PLACEHOLDER}.txt (a file per language) or "
          f"--templates {NAME_ONLY}")
    templates = builtin_templates(spec)
    return {lang: templates for lang in langs}
  result = {}
  for lang, path in per_language_paths(spec, langs, "--templates").items():
    if not files.isfile(path):
      raise ValueError(f"template file {path} does not exist")
    result[lang] = parse_templates(files.read_text(path), path)
  return result


def prompts(classes: ClassList, templates: Sequence[str]
            ) -> tuple[list[str], list[int]]:
  """(texts, class of each text): every template with every class name."""
  texts, text_class = [], []
  for index, names in enumerate(classes.names):
    for name in names:
      for template in templates:
        texts.append(template.replace(CLASS_PLACEHOLDER, name))
        text_class.append(index)
  return texts, text_class


# Images -------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LabelledImages:
  """Images with their class, read in a fixed order.

  Attributes:
    data_dir: the directory read.
    layout: one of LAYOUTS.
    ids: each image's name for messages (a path, or "file:index").
    labels: each image's class index.
    read: yields every image's encoded bytes, in `ids` order.
  """

  data_dir: str
  layout: str
  ids: tuple[str, ...]
  labels: tuple[int, ...]
  read: Callable[[], Iterator[bytes]]


def detect_layout(data_dir: str) -> str:
  """The layout of `data_dir`: a dataset, TFRecords or image folders."""
  if files.exists(files.join(data_dir, shards_lib.MANIFEST)):
    return ARRAYRECORD
  if files.glob(files.join(data_dir, TFRECORD_GLOB)):
    return TFRECORD
  return FOLDER


def _folder_images(data_dir: str, keys: Sequence[str], classes_path: str
                   ) -> LabelledImages:
  index = {key: i for i, key in enumerate(keys)}
  found: dict[str, list[str]] = {key: [] for key in keys}
  for path in files.glob(files.join(data_dir, "*", "*")):
    if not path.lower().endswith(IMAGE_SUFFIXES):
      continue
    folder = files.basename(files.dirname(path))
    if folder not in index:
      raise ValueError(f"folder {folder!r} under {data_dir} is not a class "
                       f"of {classes_path}")
    found[folder].append(path)
  for key, paths in found.items():
    if not paths:
      raise ValueError(f"class {key!r} has no images: no "
                       f"{'|'.join(IMAGE_SUFFIXES)} file in "
                       f"{files.join(data_dir, key)}")
  ids = tuple(path for key in keys for path in sorted(found[key]))
  labels = tuple(index[key] for key in keys for _ in found[key])
  return LabelledImages(data_dir, FOLDER, ids, labels,
                        lambda: (files.read_bytes(path) for path in ids))


def _feature_values(example: Any, name: str) -> list[Any]:
  feature = example.features.feature.get(name)
  if feature is None:
    return []
  kind = feature.WhichOneof("kind")
  return list(getattr(feature, kind).value) if kind else []


def _record_label(payload: bytes, where: str, label_field: str,
                  keys: Sequence[str], index: Mapping[str, int],
                  classes_path: str) -> int:
  """The class index of one serialised tf.train.Example."""
  example = example_proto.Example()
  try:
    example.ParseFromString(payload)
  except Exception as e:  # protobuf raises its own DecodeError type.
    raise ValueError(f"{where} is not a tf.train.Example: {e}") from None
  values = _feature_values(example, label_field)
  if len(values) != 1:
    raise ValueError(f"{where} has {len(values)} values in label field "
                     f"{label_field!r}, expected one")
  label = values[0]
  if isinstance(label, bytes):
    key = label.decode("utf-8", "backslashreplace")
    if key not in index:
      raise ValueError(f"label {key!r} of {where} is not a class of "
                       f"{classes_path}")
    return index[key]
  if isinstance(label, float) or not 0 <= label < len(keys):
    raise ValueError(f"label {label} of {where} is outside the {len(keys)} "
                     f"classes of {classes_path} (0..{len(keys) - 1})")
  return int(label)


def _record_image(payload: bytes, where: str, image_field: str) -> bytes:
  example = example_proto.Example()
  example.ParseFromString(payload)
  values = _feature_values(example, image_field)
  if not values or not isinstance(values[0], bytes):
    raise ValueError(f"{where} has no image bytes in field {image_field!r}")
  return values[0]


def _tfrecord_payloads(path: str) -> Iterator[bytes]:
  with files.open_file(path, "rb") as f:
    try:
      yield from tfrecord.tfrecord_payloads(f)
    except tfrecord.CorruptInputError as e:
      raise ValueError(f"TFRecord file {path}: {e}") from None


def _record_images(data_dir: str, layout: str, shards: Sequence[str],
                   payloads: Callable[[str], Iterator[bytes]],
                   keys: Sequence[str], classes_path: str, image_field: str,
                   label_field: str) -> LabelledImages:
  index = {key: i for i, key in enumerate(keys)}
  ids, labels = [], []
  for shard in shards:
    for number, payload in enumerate(payloads(shard)):
      where = f"{shard}:{number}"
      labels.append(_record_label(payload, where, label_field, keys, index,
                                  classes_path))
      ids.append(where)
  counts = [0] * len(keys)
  for label in labels:
    counts[label] += 1
  if 0 in counts:
    raise ValueError(f"class {keys[counts.index(0)]!r} has no images in "
                     f"{data_dir}")

  def read() -> Iterator[bytes]:
    for shard in shards:
      for number, payload in enumerate(payloads(shard)):
        yield _record_image(payload, f"{shard}:{number}", image_field)

  return LabelledImages(data_dir, layout, tuple(ids), tuple(labels), read)


def load_images(data_dir: str | os.PathLike[str], keys: Sequence[str],
                classes_path: str, *, layout: str = AUTO,
                split: str | None = None, image_field: str | None = None,
                label_field: str | None = None) -> LabelledImages:
  """Lists the labelled images of `data_dir` (see the module's layouts).

  Args:
    data_dir: the directory.
    keys: the class keys, in label order.
    classes_path: the class-name file, for messages.
    layout: one of LAYOUTS, or "auto": a dataset if it has manifest.json,
      TFRecords if it has *.tfrecord* files, else image folders.
    split: TFRecords: only `*-<split>.tfrecord*` files (default: all);
      datasets: the shards' split (default "train").
    image_field, label_field: the record fields (default: `DEFAULT_FIELDS`).

  Raises:
    ValueError: for a missing directory, a folder or label that is no class,
      a class without images, or an unreadable record.
  """
  data_dir = os.fspath(data_dir)
  if layout == AUTO:
    layout = detect_layout(data_dir)
  if layout not in LAYOUTS:
    raise ValueError(f"unknown layout {layout!r}: expected one of "
                     f"{', '.join((AUTO, *LAYOUTS))}")
  if not files.exists(data_dir):
    raise ValueError(f"image directory {data_dir} does not exist")
  if layout == FOLDER:
    if split or image_field or label_field:
      raise ValueError("--split, --image_field and --label_field are for "
                       "record layouts, not image folders")
    return _folder_images(data_dir, keys, classes_path)
  default_image, default_label = DEFAULT_FIELDS[layout]
  image_field = image_field or default_image
  label_field = label_field or default_label
  if layout == TFRECORD:
    pattern = (f"*-{split}.tfrecord*" if split else TFRECORD_GLOB)
    shards = files.glob(files.join(data_dir, pattern))
    if not shards:
      raise ValueError(f"no {pattern} files in {data_dir}")
    payloads = _tfrecord_payloads
  else:
    shards = shards_lib.dataset_shards(data_dir, split or "train")
    payloads = shards_lib.iter_array_record
  return _record_images(data_dir, layout, shards, payloads, keys,
                        classes_path, image_field, label_field)

