"""Reading the XM3600 (Crossmodal-3600) set in its official layout.

`DIR/captions.jsonl` holds one JSON object per image:
`{"image/key": "<hex>", "<lang>": {"caption": [...], ...}, ...}`, and the
images are `DIR/images/<image/key>.jpg`. Only the `caption` lists are read
(tokenisation is the model's own). The layout's names are defined here, for
whatever reads or writes the set.

Nothing is dropped silently: a malformed line is an error naming its line
number; missing image files are an error listing the first few, unless the
caller skips them, and then their keys are kept for the report; requested
languages without captions are an error when asked for by name and are
listed otherwise, as are images without a caption in a language.
"""

from collections.abc import Sequence
import dataclasses
import io
import json
import os
from typing import Any

import numpy as np

from dataformat import files
from pipelines import lang_codes
from pipelines import langid

# The official layout's names.
CAPTIONS_FILE = "captions.jsonl"
IMAGES_DIR = "images"
IMAGE_SUFFIX = ".jpg"
IMAGE_KEY = "image/key"
CAPTION = "caption"
# XM3600's own tokenisation of each caption, beside `caption`; not read here.
CAPTION_TOKENIZED = "caption/tokenized"
# Missing image files named in an error message.
_MISSING_SHOWN = 5


@dataclasses.dataclass(frozen=True)
class LanguageCaptions:
  """The captions of one language.

  Attributes:
    texts: every caption, grouped by image in image order.
    caption_image: int64 [len(texts)], the index of each caption's image in
      `Xm3600Data.image_keys`.
    images_without_captions: keys of the images with no caption in this
      language (they stay text->image candidates, never image->text queries).
  """

  texts: tuple[str, ...]
  caption_image: np.ndarray
  images_without_captions: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Xm3600Data:
  """The images and the captions of the requested languages.

  Attributes:
    data_dir: the XM3600 directory.
    image_keys: the evaluated images, in file order.
    languages: lang -> its captions, in the requested order; only languages
      with captions.
    languages_without_captions: requested languages with no caption at all.
    other_languages: languages in the file that were not requested.
    missing_images: keys whose image file is missing (skipped).
  """

  data_dir: str
  image_keys: tuple[str, ...]
  languages: dict[str, LanguageCaptions]
  languages_without_captions: tuple[str, ...]
  other_languages: tuple[str, ...]
  missing_images: tuple[str, ...]

  def image_path(self, key: str) -> str:
    return image_path(self.data_dir, key)


def image_path(data_dir: str | os.PathLike[str], key: str) -> str:
  """Where the official layout keeps the image of `key`."""
  return files.join(data_dir, IMAGES_DIR, f"{key}{IMAGE_SUFFIX}")


def _check_key(key: Any, where: str) -> str:
  if not isinstance(key, str) or not key:
    raise ValueError(f"{where}: {IMAGE_KEY!r} must be a non-empty string, "
                     f"got {key!r}")
  # The key becomes a file name; it must not reach outside images/.
  if "/" in key or "\\" in key or key.startswith("."):
    raise ValueError(f"{where}: {IMAGE_KEY!r} {key!r} is not a file name")
  return key


def _check_captions(lang: str, value: Any, where: str) -> list[str]:
  if not isinstance(value, dict) or CAPTION not in value:
    raise ValueError(f"{where}: language {lang!r} must be an object with a "
                     f"{CAPTION!r} list")
  captions = value[CAPTION]
  if not isinstance(captions, list) or not all(
      isinstance(c, str) and c.strip() for c in captions):
    raise ValueError(f"{where}: {lang!r} {CAPTION!r} must be a list of "
                     f"non-empty strings")
  return captions


def read_captions(path: str | os.PathLike[str]
                  ) -> list[tuple[str, dict[str, list[str]]]]:
  """(image key, {lang: captions}) of each line of `captions.jsonl`.

  Blank lines are allowed; any other line must be a JSON object with a
  unique `image/key` and only language entries of the official form.

  Raises:
    ValueError: naming the file and line of the first malformed line.
  """
  path = os.fspath(path)
  entries, line_of_key = [], {}
  # Lines as a text file reads them: universal newlines (str.splitlines
  # would also split at \u2028 and others that JSON strings may hold).
  lines = io.StringIO(files.read_text(path), newline=None)
  for line_number, line in enumerate(lines, start=1):
    if not line.strip():
      continue
    where = f"{path}:{line_number}"
    try:
      obj = json.loads(line)
    except json.JSONDecodeError as e:
      # json's message for a control character ends in "at", meant to
      # be followed by the position.
      raise ValueError(f"{where}: not valid JSON at column {e.colno}: "
                       f"{e.msg.removesuffix(' at')}") from None
    if not isinstance(obj, dict):
      raise ValueError(f"{where}: expected a JSON object, got "
                       f"{type(obj).__name__}")
    key = _check_key(obj.get(IMAGE_KEY), where)
    if key in line_of_key:
      raise ValueError(f"{where}: image {key!r} is already on line "
                       f"{line_of_key[key]}")
    line_of_key[key] = line_number
    entries.append((key, {lang: _check_captions(lang, value, where)
                          for lang, value in obj.items()
                          if lang != IMAGE_KEY}))
  return entries


def _missing_images(data_dir: str, keys: Sequence[str]) -> list[str]:
  # One listing, not one request per image (GCS answers each separately).
  present = set(files.glob(files.join(data_dir, IMAGES_DIR,
                                      f"*{IMAGE_SUFFIX}")))
  return [key for key in keys if image_path(data_dir, key) not in present]


def is_xm3600_dir(data_dir: str) -> bool:
  """Whether `data_dir` holds `captions.jsonl` and (locally) `images/`."""
  if not files.isfile(files.join(data_dir, CAPTIONS_FILE)):
    return False
  # Object stores have no directories: there, missing images are named.
  return files.is_uri(data_dir) or os.path.isdir(
      files.join(data_dir, IMAGES_DIR))


def check_languages(langs: Sequence[str]) -> list[str]:
  """`langs` as a list of XM3600 codes (nb -> no, ...), none twice."""
  langs = [lang_codes.canonical(lang) for lang in langs]
  unknown = [lang for lang in langs if lang not in langid.XM3600_LANGUAGES]
  if unknown:
    raise ValueError(f"not XM3600 languages: {unknown}; the 36 are "
                     f"{' '.join(langid.XM3600_LANGUAGES)}")
  repeated = sorted({lang for lang in langs if list(langs).count(lang) > 1})
  if repeated:
    raise ValueError(f"languages given more than once: {repeated}")
  return list(langs)


def load_xm3600(data_dir: str | os.PathLike[str],
                langs: Sequence[str] | None = None, *,
                skip_missing_images: bool = False) -> Xm3600Data:
  """Reads and validates an XM3600 directory.

  Args:
    data_dir: the directory holding `captions.jsonl` and `images/`.
    langs: the languages to read, in report order; None or empty: all 36.
      A language named here that has no caption is an error.
    skip_missing_images: leave out images whose file is missing (and their
      captions) instead of failing; their keys are reported.

  Raises:
    ValueError: for a bad directory, a malformed line, missing images
      (unless skipped), an unknown or repeated language, or a requested
      language without captions.
  """
  data_dir = os.fspath(data_dir)
  captions_path = files.join(data_dir, CAPTIONS_FILE)
  if not is_xm3600_dir(data_dir):
    raise ValueError(f"{data_dir!r} is not an XM3600 directory (no "
                     f"{CAPTIONS_FILE} and {IMAGES_DIR}/)")
  named = bool(langs)
  langs = check_languages(langs) if named else list(langid.XM3600_LANGUAGES)
  entries = read_captions(captions_path)
  if not entries:
    raise ValueError(f"{captions_path} lists no images")

  missing = _missing_images(data_dir, [key for key, _ in entries])
  if missing and not skip_missing_images:
    shown = ", ".join(f"{key}{IMAGE_SUFFIX}" for key in
                      missing[:_MISSING_SHOWN])
    more = (f" and {len(missing) - _MISSING_SHOWN} more"
            if len(missing) > _MISSING_SHOWN else "")
    raise ValueError(
        f"{len(missing)} of {len(entries)} images are missing from "
        f"{files.join(data_dir, IMAGES_DIR)}: {shown}{more} (skip them with "
        f"--skip_missing_images)")
  missing_set = set(missing)
  entries = [(key, captions) for key, captions in entries
             if key not in missing_set]
  if not entries:
    raise ValueError(f"none of the images of {captions_path} exist")

  languages, without = {}, []
  for lang in langs:
    texts, caption_image, uncaptioned = [], [], []
    for index, (key, captions) in enumerate(entries):
      own = captions.get(lang, [])
      texts.extend(own)
      caption_image.extend([index] * len(own))
      if not own:
        uncaptioned.append(key)
    if not texts:
      without.append(lang)
      continue
    languages[lang] = LanguageCaptions(
        texts=tuple(texts), caption_image=np.asarray(caption_image, np.int64),
        images_without_captions=tuple(uncaptioned))
  if named and without:
    raise ValueError(f"no captions in {captions_path} for the requested "
                     f"languages {without}")
  if not languages:
    raise ValueError(f"{captions_path} has no captions in any XM3600 "
                     "language")
  present = {lang for _, captions in entries for lang in captions}
  return Xm3600Data(
      data_dir=data_dir,
      image_keys=tuple(key for key, _ in entries),
      languages=languages,
      languages_without_captions=tuple(without),
      other_languages=tuple(sorted(present - set(langs))),
      missing_images=tuple(missing))
