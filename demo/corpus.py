"""The embedded demo corpus: synthetic image-text pairs in 36 languages.

Writes img2dataset-style webdataset shards (`DIR/00000.tar`, ...; per example
`KEY.jpg`, `KEY.txt`, `KEY.json`) of scenes of coloured shapes with captions
in the XM3600 languages, plus a share of deliberately bad examples, each with
exactly one defect and the rejection reason the dataset pipeline must give
it. A share of the clean examples are mismatched pairs: their caption
describes another scene (the truth is in `corpus.json` and each example's
metadata), which the pipeline keeps unless an image-text score filter
(`build_dataset --score_model`) finds them. Optionally also a mini XM3600 set in the official layout, whose images
the corpus then reuses as block-listed examples.

Everything is a function of the seed: example `i` draws from a generator
seeded by (stream, seed, i), so the same options give byte-identical files.

  python -m demo.corpus --output demo_out/corpus --xm3600_dir demo_out/xm3600

Every directory may be local or `gs://...` (through `dataformat.files`).
"""

import argparse
import collections
from collections.abc import Callable, Mapping, Sequence
import dataclasses
import enum
import hashlib
import io
import itertools
import json
import math
import os
import re
import sys
import tarfile
import time
from typing import Any

import numpy as np
from PIL import Image

from dataformat import cli
from dataformat import files
from demo import captions
from demo import scenes
from eval import xm3600_data
from pipelines import blocklist
from pipelines import image_signature
from pipelines import images
from pipelines import near_duplicates
from pipelines.filters import FilterConfig
from pipelines.reasons import Reason


class Defect(enum.StrEnum):
  """The kinds of bad example the corpus holds."""

  CORRUPT_JPEG = "corrupt_jpeg"
  TRUNCATED_JPEG = "truncated_jpeg"
  ZERO_BYTE_IMAGE = "zero_byte_image"
  MISSING_CAPTION = "missing_caption"
  EMPTY_CAPTION = "empty_caption"
  LONG_CAPTION = "long_caption"
  NON_UTF8_CAPTION = "non_utf8_caption"
  TINY_IMAGE = "tiny_image"
  EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
  DUPLICATE_IMAGE = "duplicate_image"
  BLOCKLISTED_IMAGE = "blocklisted_image"


# The dataset pipeline's default thresholds; the defects are made to cross
# them by a wide margin, and clean examples stay well inside them.
THRESHOLDS = FilterConfig()

# The reason the pipeline must reject each defect with, under those defaults.
EXPECTED_REASONS: Mapping[Defect, Reason] = {
    Defect.CORRUPT_JPEG: Reason.CORRUPT_IMAGE,
    Defect.TRUNCATED_JPEG: Reason.CORRUPT_IMAGE,
    Defect.ZERO_BYTE_IMAGE: Reason.EMPTY_IMAGE,
    Defect.MISSING_CAPTION: Reason.MISSING_CAPTION,
    Defect.EMPTY_CAPTION: Reason.EMPTY_CAPTION,
    Defect.LONG_CAPTION: Reason.CAPTION_TOO_LONG,
    Defect.NON_UTF8_CAPTION: Reason.CAPTION_NOT_UTF8,
    Defect.TINY_IMAGE: Reason.IMAGE_TOO_SMALL,
    Defect.EXTREME_ASPECT_RATIO: Reason.EXTREME_ASPECT_RATIO,
    Defect.DUPLICATE_IMAGE: Reason.DUPLICATE_IMAGE,
    Defect.BLOCKLISTED_IMAGE: Reason.BLOCKLISTED_IMAGE,
}

# Defect parameters, each far past the threshold it targets.
TINY_SIDE_RANGE = (8, 20)
EXTREME_SHORT_SIDE_RANGE = (40, 64)
EXTREME_RATIO_RANGE = (5.0, 8.0)
LONG_CAPTION_MIN_CHARS = 2001
# A corrupt JPEG keeps its SOI and JFIF APP0 segment (2 + 18 bytes) and has
# the rest replaced by random bytes below 0xFF: no marker follows, so no
# decoder finds a frame header.
_JPEG_KEPT_HEADER_BYTES = 20
_WHITESPACE_CAPTIONS = ("", " ", "\n", " \t \n ")

DEFAULT_ENGLISH_SHARE = 0.5
DEFAULT_MISMATCH_FRACTION = 0.03
MAX_IMAGE_SIDE = 4096
CORPUS_FILE = "corpus.json"
_SHARD_NAME = re.compile(r"^\d{5}\.tar$")
_KEY_DIGITS = 9

# Independent random streams: the same seed never gives the corpus and the
# XM3600 set the same scenes, nor the plan the same draws as an example.
_PLAN_STREAM, _CORPUS_STREAM, _XM3600_STREAM = 1, 2, 3
_ZEROSHOT_STREAM, _MISMATCH_STREAM = 4, 5

# Tar members carry fixed metadata, so equal contents give equal bytes.
_TAR_MTIME = 0
_TAR_MODE = 0o644


@dataclasses.dataclass(frozen=True)
class CorpusSummary:
  """What `generate_corpus` wrote.

  Attributes:
    output_dir: the corpus directory.
    shards: the tar shards, in order.
    num_examples: examples written (clean and bad).
    num_clean: examples without a planted defect.
    language_counts: examples per caption language (all examples).
    defect_counts: bad examples per `Defect` value.
    reason_counts: examples per expected rejection `Reason` value: the
      planted defects' and, with a block-list source, the clean scenes
      that happen to be near-duplicates of its images.
    expected_rejections: key -> the `Reason` value the pipeline must give.
    mismatched: keys of the clean examples whose caption describes another
      scene, sorted.
    lang_mix: the share of each language that was asked for.
    options: the generation options, as recorded in `corpus.json`.
  """

  output_dir: str
  shards: tuple[str, ...]
  num_examples: int
  num_clean: int
  language_counts: dict[str, int]
  defect_counts: dict[str, int]
  reason_counts: dict[str, int]
  expected_rejections: dict[str, str]
  mismatched: tuple[str, ...]
  lang_mix: dict[str, float]
  options: dict[str, Any]

  @property
  def num_bad(self) -> int:
    """Examples with a planted defect."""
    return self.num_examples - self.num_clean

  @property
  def num_kept(self) -> int:
    """Examples the dataset build keeps."""
    return self.num_examples - len(self.expected_rejections)


@dataclasses.dataclass(frozen=True)
class Xm3600Summary:
  """What `generate_xm3600` wrote: `captions.jsonl` and `images/KEY.jpg`."""

  output_dir: str
  image_keys: tuple[str, ...]
  captions_per_image: int
  seed: int

  @property
  def num_images(self) -> int:
    """Images in the set."""
    return len(self.image_keys)


@dataclasses.dataclass(frozen=True)
class ZeroShotSummary:
  """What `generate_zeroshot` wrote.

  Attributes:
    output_dir: the set's directory.
    images_per_class: images of each class (colour).
    languages: the languages with a class-name file.
  """

  output_dir: str
  images_per_class: int
  languages: tuple[str, ...]

  @property
  def num_images(self) -> int:
    """Images in the set."""
    return self.images_per_class * len(scenes.COLOURS)


@dataclasses.dataclass(frozen=True)
class ExamplePlan:
  """What example `index` will be, decided before any pixel is drawn."""

  index: int
  lang: str
  defect: Defect | None = None
  duplicate_of: int | None = None
  blocklisted_image: str | None = None
  mismatched: bool = False


@dataclasses.dataclass(frozen=True)
class DemoExample:
  """One generated example: the bytes of its tar members."""

  key: str
  image: bytes
  caption: bytes | None
  metadata: dict[str, Any]


def example_key(index: int) -> str:
  """img2dataset's key: the global index, zero-padded to 9 digits."""
  return f"{index:0{_KEY_DIGITS}d}"


# Options ----------------------------------------------------------------------


def _parse_share(item: str) -> tuple[str, float]:
  """"de=0.1" -> ("de", 0.1)."""
  lang, _, share = item.partition("=")
  try:
    return lang.strip(), float(share)
  except ValueError:
    raise ValueError(f"--lang_mix item {item!r} is not LANG=SHARE") from None


def parse_lang_mix(spec: str | Mapping[str, float] | None) -> dict[str, float]:
  """The share of every XM3600 language, summing to 1.

  `spec` names some languages' shares ("en=0.5,de=0.1" or {"en": 0.5});
  the rest of the total is spread evenly over the languages not named.
  None means English at 0.5 and the rest even.

  Raises:
    ValueError: on an unknown language, a share outside [0, 1], shares
      summing past 1, or shares summing below 1 with no language left.
  """
  if spec is None:
    spec = {"en": DEFAULT_ENGLISH_SHARE}
  if isinstance(spec, str):
    named = dict(_parse_share(part.strip()) for part in spec.split(",")
                 if part.strip())
  else:
    named = dict(spec)
  for lang, share in named.items():
    if lang not in captions.LANGUAGES:
      raise ValueError(f"--lang_mix: unknown language {lang!r}; expected one "
                       f"of {' '.join(captions.LANGUAGES)}")
    if not 0.0 <= share <= 1.0:
      raise ValueError(f"--lang_mix: share of {lang} must be in [0, 1], "
                       f"got {share}")
  total = sum(named.values())
  if total > 1.0 + 1e-9:
    raise ValueError(f"--lang_mix shares sum to {total:g}, more than 1")
  rest = [lang for lang in captions.LANGUAGES if lang not in named]
  if not rest and total < 1.0 - 1e-9:
    raise ValueError(f"--lang_mix names every language but its shares sum "
                     f"to {total:g}, not 1")
  spread = (1.0 - total) / len(rest) if rest else 0.0
  return {lang: named.get(lang, spread) for lang in captions.LANGUAGES}


def parse_image_size(text: str) -> tuple[int, int]:
  """"640x480" -> (640, 480), i.e. (width, height).

  Raises:
    ValueError: if `text` is not WIDTHxHEIGHT with positive integers.
  """
  match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
  if not match or not all(int(v) > 0 for v in match.groups()):
    raise ValueError(f"--image_size must be WIDTHxHEIGHT, e.g. 64x64, "
                     f"got {text!r}")
  return int(match[1]), int(match[2])


def _check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
  width, height = (int(v) for v in image_size)
  min_side = THRESHOLDS.min_image_side
  if min(width, height) < min_side or max(width, height) > MAX_IMAGE_SIDE:
    raise ValueError(f"--image_size {width}x{height}: each side must be "
                     f"{min_side}..{MAX_IMAGE_SIDE} px for clean images")
  if max(width, height) / min(width, height) > THRESHOLDS.max_aspect_ratio:
    raise ValueError(f"--image_size {width}x{height}: aspect ratio must be at "
                     f"most {THRESHOLDS.max_aspect_ratio:g} for clean images")
  return width, height


def check_corpus_options(
    num_examples: int, image_size: Sequence[int], examples_per_shard: int,
    bad_fraction: float, lang_mix: str | Mapping[str, float] | None,
    mismatch_fraction: float = 0.0
) -> tuple[tuple[int, int], dict[str, float]]:
  """Validates `generate_corpus` options; returns (image_size, lang_mix).

  Raises:
    ValueError: naming the bad option.
  """
  if num_examples <= 0:
    raise ValueError(f"--num_examples must be positive, got {num_examples}")
  if examples_per_shard <= 0:
    raise ValueError("--examples_per_shard must be positive, got "
                     f"{examples_per_shard}")
  if not 0.0 <= bad_fraction < 1.0:
    raise ValueError(f"--bad_fraction must be in [0, 1), got {bad_fraction}")
  if not 0.0 <= mismatch_fraction < 1.0:
    raise ValueError(f"--mismatch_fraction must be in [0, 1), got "
                     f"{mismatch_fraction}")
  return _check_image_size(image_size), parse_lang_mix(lang_mix)


def _counts_by_share(total: int, shares: Mapping[str, float]) -> dict[str, int]:
  """Splits `total` by `shares` (largest remainder; ties in key order)."""
  exact = {k: total * v for k, v in shares.items()}
  counts = {k: math.floor(v) for k, v in exact.items()}
  by_remainder = sorted(exact, key=lambda k: counts[k] - exact[k])
  for k in by_remainder[:total - sum(counts.values())]:
    counts[k] += 1
  return counts


def check_output_dir(path: str, overwrite: bool, flag: str) -> None:
  """Raises ValueError unless `path` is missing, an empty directory, or
  `overwrite` is set (flag: the option named in the message)."""
  if files.isfile(path):
    raise ValueError(f"{flag} {path} exists and is not a directory")
  if files.isdir(path) and files.listdir(path) and not overwrite:
    raise ValueError(f"{flag} {path} is not empty; pass --overwrite to "
                     "replace what an earlier run wrote there")


def _prepare_output_dir(path: str, overwrite: bool, flag: str,
                        owned: Callable[[str], bool]) -> None:
  """Creates `path` after `check_output_dir`; with `overwrite`, first removes
  the entries whose names `owned` says this generator wrote (and nothing
  else)."""
  check_output_dir(path, overwrite, flag)
  files.makedirs(path)
  if not files.isdir(path):  # An empty or missing prefix of an object store.
    return
  for name in filter(owned, files.listdir(path)):
    entry = files.join(path, name)
    if files.isdir(entry):
      files.rmtree(entry)
    else:
      files.remove(entry)


def _xm3600_root(path: str) -> str:
  """The XM3600 directory given itself or its `images/` directory."""
  for root in (path, files.dirname(path)):
    if xm3600_data.is_xm3600_dir(root):
      return root
  raise ValueError(f"blocklist source {path} is not an XM3600 directory "
                   f"(no {xm3600_data.CAPTIONS_FILE} and "
                   f"{xm3600_data.IMAGES_DIR}/)")


# The plan: languages and defects per example ----------------------------------


def plan_corpus(num_examples: int, seed: int, bad_fraction: float,
                lang_mix: Mapping[str, float],
                blocklist_images: Sequence[str] = (),
                mismatch_fraction: float = 0.0) -> list[ExamplePlan]:
  """Decides every example's language and defect.

  Languages follow `lang_mix` exactly (largest remainder), in a seeded random
  order. round(num_examples * bad_fraction) examples are bad, never the
  first (a duplicate needs an earlier clean example); the defect kinds are
  spread as evenly as the count allows, so each appears once there are at
  least as many bad examples as kinds. Block-listed examples exist only
  when `blocklist_images` is given. round(clean examples *
  mismatch_fraction) clean examples are mismatched, drawn from a stream of
  their own, so the other examples are the same with or without them.
  """
  rng = np.random.default_rng((_PLAN_STREAM, seed))
  lang_counts = _counts_by_share(num_examples, lang_mix)
  langs = np.repeat(np.asarray(list(lang_counts)),
                    list(lang_counts.values()))
  langs = rng.permutation(langs)
  kinds = [d for d in Defect
           if blocklist_images or d is not Defect.BLOCKLISTED_IMAGE]
  num_bad = min(round(num_examples * bad_fraction), max(num_examples - 1, 0))
  bad_indices = np.sort(rng.choice(np.arange(1, num_examples), size=num_bad,
                                   replace=False)) if num_bad else []
  defects = rng.permutation(
      np.resize(rng.permutation(np.asarray(kinds, dtype=object)), num_bad))
  defect_of = dict(zip((int(i) for i in bad_indices), defects))
  clean = np.asarray([i for i in range(num_examples) if i not in defect_of])
  blocklist_order = (rng.permutation(len(blocklist_images))
                     if blocklist_images else [])
  plans, blocklisted = [], 0
  for index in range(num_examples):
    defect = defect_of.get(index)
    plan = ExamplePlan(index=index, lang=str(langs[index]), defect=defect)
    if defect is Defect.DUPLICATE_IMAGE:
      earlier = clean[:np.searchsorted(clean, index)]
      plan = dataclasses.replace(
          plan, duplicate_of=int(earlier[rng.integers(len(earlier))]))
    elif defect is Defect.BLOCKLISTED_IMAGE:
      image = blocklist_images[
          blocklist_order[blocklisted % len(blocklist_images)]]
      plan = dataclasses.replace(plan, blocklisted_image=image)
      blocklisted += 1
    plans.append(plan)
  if mismatch_fraction:
    clean_indices = [p.index for p in plans if p.defect is None]
    chosen = np.random.default_rng((_MISMATCH_STREAM, seed)).choice(
        clean_indices, size=round(len(clean_indices) * mismatch_fraction),
        replace=False)
    for index in chosen:
      plans[index] = dataclasses.replace(plans[index], mismatched=True)
  return plans


def other_scene(scene: scenes.Scene, seed: int, index: int) -> scenes.Scene:
  """The scene a mismatched example's caption describes instead of its own.

  Its main shape differs from the true one in both kind and colour, so the
  caption is wrong about what the image shows, not just a detail of it.
  """
  for attempt in itertools.count():
    other = scenes.sample_scene(
        np.random.default_rng((_MISMATCH_STREAM, seed, index, attempt)))
    if (other.shapes[0].shape != scene.shapes[0].shape
        and other.shapes[0].colour != scene.shapes[0].colour):
      return other


# One example ------------------------------------------------------------------


def _example_rng(seed: int, index: int) -> np.random.Generator:
  return np.random.default_rng((_CORPUS_STREAM, seed, index))


def _image_dimensions(defect: Defect | None, image_size: tuple[int, int],
                      rng: np.random.Generator) -> tuple[int, int]:
  """(width, height) of the rendered image: the corpus size, or a defect's."""
  if defect is Defect.TINY_IMAGE:
    short = int(rng.integers(TINY_SIDE_RANGE[0], TINY_SIDE_RANGE[1] + 1))
    long = int(short * rng.uniform(1.0, 2.0))
  elif defect is Defect.EXTREME_ASPECT_RATIO:
    short = int(rng.integers(EXTREME_SHORT_SIDE_RANGE[0],
                             EXTREME_SHORT_SIDE_RANGE[1] + 1))
    long = math.ceil(short * rng.uniform(*EXTREME_RATIO_RANGE))
  else:
    return image_size
  return (long, short) if rng.random() < 0.5 else (short, long)


def _render(seed: int, index: int, defect: Defect | None,
            image_size: tuple[int, int]
            ) -> tuple[scenes.Scene, bytes, tuple[int, int],
                       np.random.Generator]:
  """Example `index`'s scene, JPEG, size and its generator after drawing."""
  rng = _example_rng(seed, index)
  scene = scenes.sample_scene(rng)
  width, height = _image_dimensions(defect, image_size, rng)
  jpeg = scenes.encode_jpeg(
      scenes.render_scene(scene, width, height, rng))
  return scene, jpeg, (width, height), rng


def _is_utf8(data: bytes) -> bool:
  try:
    data.decode("utf-8")
  except UnicodeDecodeError:
    return False
  return True


def _non_utf8(caption: str, rng: np.random.Generator) -> tuple[bytes, str]:
  """The caption in bytes that are not UTF-8, and how they were made.

  Accented Latin text is encoded as Windows-1252, the usual mistake; text
  that is plain ASCII or in another script gets a stray 0xFF byte between
  two words instead.
  """
  try:
    legacy = caption.encode("cp1252")
  except UnicodeEncodeError:
    legacy = caption.encode("utf-8")
  if not _is_utf8(legacy):
    return legacy, "cp1252-encoded"
  words = caption.encode("utf-8").split(b" ")
  cut = int(rng.integers(len(words) + 1))
  return b" ".join(words[:cut] + [b"\xff"] + words[cut:]), "0xff byte inserted"


def _corrupted(jpeg: bytes, rng: np.random.Generator) -> bytes:
  garbage = rng.integers(0, 0xFF, size=len(jpeg) - _JPEG_KEPT_HEADER_BYTES,
                         dtype=np.uint8)
  return jpeg[:_JPEG_KEPT_HEADER_BYTES] + garbage.tobytes()


def make_example(plan: ExamplePlan, seed: int, image_size: tuple[int, int],
                 xm3600_captions: Mapping[str, Mapping[str, Sequence[str]]]
                 | None = None) -> DemoExample:
  """Generates the example `plan` describes; depends on nothing else.

  Args:
    plan: the example's index, language and defect.
    seed: the corpus seed.
    image_size: (width, height) of clean images.
    xm3600_captions: image key -> {lang: captions} of the XM3600 set, for
      block-listed examples (their caption is the image's own XM3600
      caption).
  """
  defect, key = plan.defect, example_key(plan.index)
  scene, image, (width, height), rng = _render(seed, plan.index, defect,
                                               image_size)
  if defect is Defect.DUPLICATE_IMAGE:
    scene, image, (width, height), _ = _render(seed, plan.duplicate_of, None,
                                               image_size)
  described = scene
  if plan.mismatched:
    described = other_scene(scene, seed, plan.index)
  text = captions.describe(described, plan.lang, rng)
  caption, detail = text.encode("utf-8"), None
  if defect is Defect.BLOCKLISTED_IMAGE:
    image = files.read_bytes(plan.blocklisted_image)
    with Image.open(io.BytesIO(image)) as decoded:
      width, height = decoded.size
    xm_key = files.basename(plan.blocklisted_image).removesuffix(
        xm3600_data.IMAGE_SUFFIX)
    text = xm3600_captions[xm_key][plan.lang][0]
    caption, scene, detail = text.encode("utf-8"), None, f"xm3600 {xm_key}"
  elif defect is Defect.CORRUPT_JPEG:
    image = _corrupted(image, rng)
    detail = f"bytes after {_JPEG_KEPT_HEADER_BYTES} replaced by random bytes"
  elif defect is Defect.TRUNCATED_JPEG:
    detail = f"cut to {len(image) // 2} of {len(image)} bytes"
    image = image[:len(image) // 2]
  elif defect is Defect.ZERO_BYTE_IMAGE:
    image = b""
  elif defect is Defect.MISSING_CAPTION:
    caption = None
  elif defect is Defect.EMPTY_CAPTION:
    caption = _WHITESPACE_CAPTIONS[
        rng.integers(len(_WHITESPACE_CAPTIONS))].encode()
  elif defect is Defect.LONG_CAPTION:
    repeats = math.ceil(LONG_CAPTION_MIN_CHARS / (len(text) + 1)) + 1
    caption = " ".join([text] * repeats).encode("utf-8")
    detail = f"caption repeated {repeats} times"
  elif defect is Defect.NON_UTF8_CAPTION:
    caption, detail = _non_utf8(text, rng)
  elif defect in (Defect.TINY_IMAGE, Defect.EXTREME_ASPECT_RATIO):
    detail = f"{width}x{height} pixels"
  metadata = {
      "key": key,
      "status": "success",
      "error_message": None,
      "caption": (None if caption is None
                  else caption.decode("utf-8", errors="replace")),
      "url": f"https://demo.invalid/{seed}/{key}.jpg",
      "width": width,
      "height": height,
      "original_width": width,
      "original_height": height,
      "exif": None,
      "sha256": hashlib.sha256(image).hexdigest(),
      "demo": {
          "lang": plan.lang,
          "defect": None if defect is None else str(EXPECTED_REASONS[defect]),
          "defect_kind": None if defect is None else str(defect),
          "defect_detail": detail,
          "duplicate_of": (None if plan.duplicate_of is None
                           else example_key(plan.duplicate_of)),
          "scene": None if scene is None else scene.to_json(),
          # The scene the caption describes, where it is not the image's.
          "mismatched_scene": (described.to_json() if plan.mismatched
                               else None),
      },
  }
  return DemoExample(key=key, image=image, caption=caption, metadata=metadata)


# Writing ----------------------------------------------------------------------


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
  info = tarfile.TarInfo(name)
  info.size = len(data)
  info.mtime = _TAR_MTIME
  info.mode = _TAR_MODE
  info.uid = info.gid = 0
  info.uname = info.gname = ""
  tar.addfile(info, io.BytesIO(data))


def write_shard(path: str, examples: Sequence[DemoExample]) -> None:
  """Writes `examples` as one webdataset tar: KEY.jpg, KEY.txt, KEY.json."""
  with files.open_file(path, "wb") as f, tarfile.open(
      fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    for example in examples:
      _add_member(tar, f"{example.key}.jpg", example.image)
      if example.caption is not None:
        _add_member(tar, f"{example.key}.txt", example.caption)
      _add_member(tar, f"{example.key}.json", json.dumps(
          example.metadata, ensure_ascii=False).encode("utf-8"))


def _owned_by_corpus(name: str) -> bool:
  return name == CORPUS_FILE or bool(_SHARD_NAME.match(name))


def generate_corpus(
    output_dir: str | os.PathLike[str],
    *,
    num_examples: int = 10000,
    seed: int = 0,
    image_size: Sequence[int] = (64, 64),
    examples_per_shard: int = 1000,
    bad_fraction: float = 0.05,
    lang_mix: str | Mapping[str, float] | None = None,
    mismatch_fraction: float = DEFAULT_MISMATCH_FRACTION,
    blocklist_source_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> CorpusSummary:
  """Writes the demo corpus to `output_dir` (see the module docstring).

  Args:
    output_dir: where the shards and `corpus.json` go; created if missing.
    num_examples: examples to write, clean and bad.
    seed: the seed everything is drawn from.
    image_size: (width, height) of clean images.
    examples_per_shard: examples per tar shard.
    bad_fraction: the share of bad examples (each has one defect).
    lang_mix: caption language shares (see `parse_lang_mix`).
    mismatch_fraction: the share of clean examples whose caption describes
      another scene.
    blocklist_source_dir: an XM3600 directory (or its `images/`): if given,
      some bad examples are byte copies of its images.
    overwrite: replace an earlier run's files instead of refusing a
      non-empty `output_dir`.
    progress: called as progress(examples_done, num_examples) per shard.

  Returns:
    The summary, also written to `output_dir/corpus.json`.

  Raises:
    ValueError: on a bad option or a non-empty `output_dir`.
  """
  image_size, mix = check_corpus_options(num_examples, image_size,
                                         examples_per_shard, bad_fraction,
                                         lang_mix, mismatch_fraction)
  blocklist_images: list[str] = []
  xm3600_captions = None
  if blocklist_source_dir is not None:
    root = _xm3600_root(os.fspath(blocklist_source_dir))
    xm3600_captions = dict(xm3600_data.read_captions(
        files.join(root, xm3600_data.CAPTIONS_FILE)))
    blocklist_images = files.glob(files.join(
        root, xm3600_data.IMAGES_DIR, f"*{xm3600_data.IMAGE_SUFFIX}"))
    if not blocklist_images:
      raise ValueError(f"blocklist source {root} has no images")
  output_dir = os.fspath(output_dir)
  _prepare_output_dir(output_dir, overwrite, "--output", _owned_by_corpus)

  plans = plan_corpus(num_examples, seed, bad_fraction, mix,
                      blocklist_images, mismatch_fraction)
  mismatched = tuple(example_key(p.index) for p in plans if p.mismatched)
  eval_filter = _eval_filter(blocklist_images) if blocklist_images else None
  shards, rejections = [], {}
  defect_counts = collections.Counter()
  for start in range(0, num_examples, examples_per_shard):
    examples = [make_example(plan, seed, image_size, xm3600_captions)
                for plan in plans[start:start + examples_per_shard]]
    path = files.join(output_dir, f"{len(shards):05d}.tar")
    write_shard(path, examples)
    shards.append(path)
    for plan, example in zip(plans[start:], examples):
      if plan.defect is not None:
        defect_counts[str(plan.defect)] += 1
      if plan.defect in (None, Defect.DUPLICATE_IMAGE) and eval_filter and (
          _is_near_duplicate(example.image, eval_filter)):
        # The build's near-duplicate check runs before its duplicate check.
        rejections[example.key] = str(Reason.NEAR_DUPLICATE_OF_EVAL)
      elif plan.defect is not None:
        rejections[example.key] = str(EXPECTED_REASONS[plan.defect])
    if progress:
      progress(min(start + examples_per_shard, num_examples), num_examples)

  options = {
      "num_examples": num_examples, "seed": seed,
      "image_size": list(image_size), "examples_per_shard": examples_per_shard,
      "bad_fraction": bad_fraction, "mismatch_fraction": mismatch_fraction,
      "lang_mix": lang_mix
      if lang_mix is None or isinstance(lang_mix, str) else dict(lang_mix),
      "blocklist_source_dir": (None if blocklist_source_dir is None
                               else os.fspath(blocklist_source_dir)),
      "thresholds": {
          "min_image_side": THRESHOLDS.min_image_side,
          "max_aspect_ratio": THRESHOLDS.max_aspect_ratio,
          "min_caption_chars": THRESHOLDS.min_caption_chars,
          "max_caption_chars": THRESHOLDS.max_caption_chars,
          "max_caption_words": THRESHOLDS.max_caption_words,
      },
  }
  summary = CorpusSummary(
      output_dir=output_dir,
      shards=tuple(shards),
      num_examples=num_examples,
      num_clean=num_examples - sum(defect_counts.values()),
      language_counts=dict(sorted(collections.Counter(
          p.lang for p in plans).items())),
      defect_counts=dict(sorted(defect_counts.items())),
      reason_counts=dict(sorted(collections.Counter(
          rejections.values()).items())),
      expected_rejections=rejections,
      mismatched=mismatched,
      lang_mix=mix,
      options=options,
  )
  files.write_json(files.join(output_dir, CORPUS_FILE), {
      "options": options,
      "shards": [files.basename(p) for p in shards],
      "num_examples": num_examples,
      "num_clean": summary.num_clean,
      "num_bad": summary.num_bad,
      "language_counts": summary.language_counts,
      "defect_counts": summary.defect_counts,
      "reason_counts": summary.reason_counts,
      "expected_rejections": rejections,
      "mismatched": list(mismatched),
      "lang_mix": mix,
  })
  return summary


def _eval_filter(paths: Sequence[str]) -> near_duplicates.EvalImageFilter:
  """The build's near-duplicate filter for these block-listed images."""
  entries = [blocklist.eval_image(files.basename(path), path,
                                  images.DEFAULT_SHORTER_SIDE)
             for path in paths]
  return near_duplicates.EvalImageFilter(entries,
                                         image_signature.MatchConfig())


def _is_near_duplicate(image: bytes,
                       eval_filter: near_duplicates.EvalImageFilter) -> bool:
  """Whether the build rejects a clean image as NEAR_DUPLICATE_OF_EVAL."""
  pixels = images.decode_image(image).pixels
  stored = images.resize_shorter_side(pixels, images.DEFAULT_SHORTER_SIDE)
  return eval_filter.reject_reason(
      stored, images.pixel_sha256(stored)) is not None


# The mini XM3600 set ----------------------------------------------------------


def xm3600_image_key(seed: int, index: int) -> str:
  """A 16-hex-digit image key, like XM3600's, unique per (seed, index)."""
  return hashlib.sha256(f"demo-xm3600/{seed}/{index}".encode()).hexdigest()[:16]


def _owned_by_xm3600(name: str) -> bool:
  return name in (xm3600_data.CAPTIONS_FILE, xm3600_data.IMAGES_DIR)


def generate_xm3600(
    output_dir: str | os.PathLike[str],
    *,
    num_images: int = 100,
    seed: int = 0,
    image_size: Sequence[int] = (64, 64),
    captions_per_image: int = 2,
    overwrite: bool = False,
) -> Xm3600Summary:
  """Writes a mini XM3600 set in the official layout.

  `captions.jsonl` holds one line per image: its `image/key` and, for each
  of the 36 languages, `caption` (distinct templates describing the image's
  scene) and `caption/tokenized`. Images are `images/<image/key>.jpg`. The
  scenes come from a random stream of their own, so they never repeat the
  training corpus's images, whatever the two seeds.

  Raises:
    ValueError: on a bad option or a non-empty `output_dir`.
  """
  if num_images <= 0:
    raise ValueError(f"--xm3600_num_images must be positive, got {num_images}")
  if not 0 < captions_per_image <= captions.MIN_VARIANTS:
    raise ValueError(
        "--xm3600_captions_per_image must be "
        f"1..{captions.MIN_VARIANTS} (the fewest templates of a "
        f"language), got {captions_per_image}")
  width, height = _check_image_size(image_size)
  output_dir = os.fspath(output_dir)
  _prepare_output_dir(output_dir, overwrite, "--xm3600_dir", _owned_by_xm3600)
  keys, lines = [], []
  for index in range(num_images):
    rng = np.random.default_rng((_XM3600_STREAM, seed, index))
    scene = scenes.sample_scene(rng)
    jpeg = scenes.encode_jpeg(
        scenes.render_scene(scene, width, height, rng))
    key = xm3600_image_key(seed, index)
    files.write_bytes(xm3600_data.image_path(output_dir, key), jpeg)
    line = {xm3600_data.IMAGE_KEY: key}
    for lang in captions.LANGUAGES:
      variants = captions.caption_variants(scene, lang)
      chosen = rng.choice(len(variants), captions_per_image, replace=False)
      texts = [variants[i] for i in sorted(chosen)]
      line[lang] = {
          xm3600_data.CAPTION: texts,
          xm3600_data.CAPTION_TOKENIZED: [captions.tokenize_caption(c, lang)
                                          for c in texts],
      }
    keys.append(key)
    lines.append(json.dumps(line, ensure_ascii=False))
  files.write_text(files.join(output_dir, xm3600_data.CAPTIONS_FILE),
                   "\n".join(lines) + "\n")
  return Xm3600Summary(output_dir=output_dir, image_keys=tuple(keys),
                       captions_per_image=captions_per_image, seed=seed)


# The zero-shot classification set ---------------------------------------------

ZEROSHOT_IMAGES_DIR = "images"
ZEROSHOT_CLASSES_DIR = "classes"
# Backgrounds of the prompts that describe each class (the next colours).
ZEROSHOT_PROMPT_BACKGROUNDS = 3


def zeroshot_image_key(seed: int, index: int) -> str:
  """A 16-hex-digit image key, unique per (seed, index)."""
  return hashlib.sha256(
      f"demo-zeroshot/{seed}/{index}".encode()).hexdigest()[:16]


def zeroshot_prompts(colour: str, lang: str) -> list[str]:
  """Captions of scenes with one shape of `colour`, in `lang`.

  One per shape and size, centred, on each of the ZEROSHOT_PROMPT_BACKGROUNDS
  colours after `colour`: the demo models know caption-like text only, so
  these stand for the class's name (bare colour words score near chance).
  """
  start = scenes.COLOURS.index(colour)
  backgrounds = [scenes.COLOURS[(start + i) % len(scenes.COLOURS)]
                 for i in range(1, ZEROSHOT_PROMPT_BACKGROUNDS + 1)]
  prompts = []
  for shape in scenes.SHAPES:
    for size in scenes.SIZES:
      for background in backgrounds:
        scene = scenes.Scene(
            shapes=(scenes.SceneShape(shape, colour, size, "centre",
                                      (0.5, 0.5), 0.2, 0.0),),
            background=scenes.Background(background, "plain"))
        prompts.append(captions.caption_variants(scene, lang)[0])
  return prompts


def zeroshot_classes(lang: str) -> str:
  """The class-name file of `lang` (eval.zeroshot's format): one line per
  colour, `<colour><TAB><prompt> | <prompt> | ...`."""
  return "".join(
      f"{colour}\t{' | '.join(zeroshot_prompts(colour, lang))}\n"
      for colour in scenes.COLOURS)


def _owned_by_zeroshot(name: str) -> bool:
  return name in (ZEROSHOT_IMAGES_DIR, ZEROSHOT_CLASSES_DIR)


def generate_zeroshot(
    output_dir: str | os.PathLike[str],
    *,
    images_per_class: int = 30,
    seed: int = 0,
    image_size: Sequence[int] = (64, 64),
    overwrite: bool = False,
) -> ZeroShotSummary:
  """Writes a labelled zero-shot set: the class of an image is its colour.

  `images/<colour>/<key>.jpg` (the image-folder layout of `eval.zeroshot`)
  holds `images_per_class` scenes of one shape each, in that colour (the
  shapes in turn, random size, place and background);
  `classes/<lang>.txt` describes each class in each of the 36 languages
  (`zeroshot_classes`). The scenes come from a random stream of their own,
  apart from the corpus's and XM3600's.

  Raises:
    ValueError: on a bad option or a non-empty `output_dir`.
  """
  if images_per_class <= 0:
    raise ValueError("--zeroshot_images_per_class must be positive, got "
                     f"{images_per_class}")
  width, height = _check_image_size(image_size)
  output_dir = os.fspath(output_dir)
  _prepare_output_dir(output_dir, overwrite, "--zeroshot_dir",
                      _owned_by_zeroshot)
  counts = dict.fromkeys(scenes.COLOURS, 0)
  # Scene after scene, each kept if its colour still lacks images: every
  # class gets the same number, all a function of the seed.
  index = 0
  while min(counts.values()) < images_per_class:
    rng = np.random.default_rng((_ZEROSHOT_STREAM, seed, index))
    scene = scenes.sample_scene(rng,
                                scenes.SHAPES[index % len(scenes.SHAPES)])
    colour = scene.shapes[0].colour
    if counts[colour] < images_per_class:
      counts[colour] += 1
      files.write_bytes(
          files.join(output_dir, ZEROSHOT_IMAGES_DIR, colour,
                     f"{zeroshot_image_key(seed, index)}.jpg"),
          scenes.encode_jpeg(scenes.render_scene(scene, width, height, rng)))
    index += 1
  for lang in captions.LANGUAGES:
    files.write_text(
        files.join(output_dir, ZEROSHOT_CLASSES_DIR, f"{lang}.txt"),
        zeroshot_classes(lang))
  return ZeroShotSummary(output_dir, images_per_class, captions.LANGUAGES)


# Command line -----------------------------------------------------------------


def _build_parser() -> argparse.ArgumentParser:
  parser = cli.ArgumentParser(
      prog="python -m demo.corpus",
      description=("Write the synthetic demo corpus (webdataset tar shards "
                   "of shape scenes with captions in the 36 XM3600 "
                   "languages, a share of them deliberately bad) and, "
                   "optionally, a mini XM3600 evaluation set."))
  parser.add_argument("--output", required=True, metavar="DIR",
                      help="directory (local or gs://) for the shards and "
                      "corpus.json; must be empty or missing unless "
                      "--overwrite")
  parser.add_argument("--num_examples", type=int, default=10000,
                      help="examples to write, clean and bad (default "
                      "10000)")
  parser.add_argument("--seed", type=int, default=0,
                      help="seed of everything random (default 0); the same "
                      "seed gives byte-identical files")
  parser.add_argument("--xm3600_dir", metavar="DIR",
                      help="also write a mini XM3600 set here (official "
                      "layout), and make some bad examples copies of its "
                      "images (block-listed)")
  parser.add_argument("--image_size", default="64x64",
                      help="WIDTHxHEIGHT of clean images (default 64x64; "
                      "e.g. 640x480)")
  parser.add_argument("--examples_per_shard", type=int, default=1000,
                      help="examples per tar shard (default 1000)")
  parser.add_argument("--bad_fraction", type=float, default=0.05,
                      help="share of bad examples, each with one defect "
                      "(default 0.05)")
  parser.add_argument("--mismatch_fraction", type=float,
                      default=DEFAULT_MISMATCH_FRACTION,
                      help="share of clean examples whose caption describes "
                      "another scene (listed under 'mismatched' in "
                      "corpus.json; default %(default)s)")
  parser.add_argument("--lang_mix", default=None,
                      help="caption language shares, e.g. 'en=0.5,de=0.1'; "
                      "languages not named share the rest evenly (default "
                      "en=0.5)")
  parser.add_argument("--xm3600_num_images", type=int, default=100,
                      help="images in the mini XM3600 set (default 100)")
  parser.add_argument("--xm3600_captions_per_image", type=int, default=2,
                      help="captions per image and language in the mini "
                      "XM3600 set (default 2)")
  parser.add_argument("--zeroshot_dir", metavar="DIR",
                      help="also write a zero-shot classification set here: "
                      "images/<colour>/*.jpg (one shape per image; its "
                      "colour is the class) and classes/<lang>.txt (each "
                      "class described in each language)")
  parser.add_argument("--zeroshot_images_per_class", type=int, default=30,
                      help="images per colour in the zero-shot set (default "
                      "30)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace the files an earlier run wrote in the "
                      "output directories instead of refusing")
  return parser


def _print_progress(done: int, total: int, started: float) -> None:
  print(f"  {done}/{total} examples ({time.perf_counter() - started:.1f} s)",
        flush=True)


def _print_summary(summary: CorpusSummary, seconds: float) -> None:
  print(f"wrote {summary.num_examples} examples ({summary.num_clean} clean, "
        f"{len(summary.mismatched)} of them mismatched, {summary.num_bad} "
        f"bad) in {len(summary.shards)} shards to "
        f"{summary.output_dir} in {seconds:.1f} s")
  for kind, count in summary.defect_counts.items():
    reason = EXPECTED_REASONS[Defect(kind)]
    print(f"  defect {kind:<22} {count:>5}  -> {reason}")
  near = summary.reason_counts.get(str(Reason.NEAR_DUPLICATE_OF_EVAL), 0)
  if near:
    print(f"  near-copies of XM3600 images {near:>5}  -> "
          f"{Reason.NEAR_DUPLICATE_OF_EVAL}")
  print("  languages: " + " ".join(
      f"{lang}={count}" for lang, count in summary.language_counts.items()))


def main(argv: Sequence[str] | None = None) -> int:
  """Runs the command line; returns the exit status."""
  args = _build_parser().parse_args(argv)
  started = time.perf_counter()
  try:
    image_size = parse_image_size(args.image_size)
    # Every corpus option is checked before the XM3600 set is written.
    check_corpus_options(args.num_examples, image_size,
                         args.examples_per_shard, args.bad_fraction,
                         args.lang_mix, args.mismatch_fraction)
    check_output_dir(args.output, args.overwrite, "--output")
    if args.zeroshot_dir is not None:
      check_output_dir(args.zeroshot_dir, args.overwrite, "--zeroshot_dir")
    blocklist = None
    if args.xm3600_dir is not None:
      xm = generate_xm3600(
          args.xm3600_dir, num_images=args.xm3600_num_images, seed=args.seed,
          image_size=image_size,
          captions_per_image=args.xm3600_captions_per_image,
          overwrite=args.overwrite)
      print(f"wrote mini XM3600: {xm.num_images} images x "
            f"{len(captions.LANGUAGES)} languages x "
            f"{xm.captions_per_image} captions to {xm.output_dir}",
            flush=True)
      blocklist = xm.output_dir
    if args.zeroshot_dir is not None:
      zs = generate_zeroshot(
          args.zeroshot_dir, images_per_class=args.zeroshot_images_per_class,
          seed=args.seed, image_size=image_size, overwrite=args.overwrite)
      print(f"wrote zero-shot set: {zs.num_images} images of "
            f"{len(scenes.COLOURS)} colours, classes in "
            f"{len(zs.languages)} languages to {zs.output_dir}", flush=True)
    summary = generate_corpus(
        args.output, num_examples=args.num_examples, seed=args.seed,
        image_size=image_size, examples_per_shard=args.examples_per_shard,
        bad_fraction=args.bad_fraction, lang_mix=args.lang_mix,
        mismatch_fraction=args.mismatch_fraction,
        blocklist_source_dir=blocklist, overwrite=args.overwrite,
        progress=lambda done, total: _print_progress(done, total, started))
  except (ValueError, OSError) as e:
    return cli.fail(e)
  _print_summary(summary, time.perf_counter() - started)
  return 0


if __name__ == "__main__":
  sys.exit(main())
