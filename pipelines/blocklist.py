"""Block-lists of images to keep out of a dataset: exact and near copies.

A block-list names eval images by key (their path under the directory they
came from) with, for each, the SHA-256 of its pixels as the build stores them
(decoded and resized to the build's `--image_size` shorter side:
`images.pixel_sha256`) and its perceptual signatures
(`image_signature.eval_signatures`, of the full-size pixels). A training image
stored with the same pixels is BLOCKLISTED_IMAGE; one whose signature lies
within the match radius of an eval image's is NEAR_DUPLICATE_OF_EVAL
(`near_duplicates.EvalImageFilter`). Hashing pixels, not file bytes, catches an
eval image re-saved with other metadata; the signatures catch it resized,
re-encoded, cropped, mirrored or recoloured.

A block-list is either a directory of images (searched recursively, e.g. the
XM3600 `images/` folder), which are decoded, hashed and signed when the build
starts, or a file that `python -m pipelines.blocklist` wrote from such
directories once:

  python -m pipelines.blocklist --output xm3600.blocklist [--image_size 224] \
      /data/xm3600/images

The file is JSON lines: a header `{"format": "blocklist", "version": 3,
"image_size": ..., "signature": ..., "signature_version": ...}`, then one line
per image `{"key": ..., "sha256": ..., "hashes": ..., "colour": ...}` (hashes:
base64 of little-endian uint64s; colour: base64 of int8 rows of
`image_signature.COLOUR_VALUES`). The SHA-256s hold for the header's image
size only: a build storing another size refuses the file. Older files
(version 1: hex SHA-256 lines; version 2: no image size) are refused.

A build writes the entries of all its block-lists into one such file where
its workers can read it (`write_for_workers`): the job carries that file's
name and SHA-256 (`BlocklistFile`), not the signatures.
"""

import base64
from collections.abc import Iterable, Iterator, Sequence
import dataclasses
import hashlib
import json
import os
import sys

import numpy as np

from dataformat import cli
from dataformat import files
from pipelines import image_signature
from pipelines import images
from pipelines.image_signature import Signatures
from pipelines.near_duplicates import EvalImage
from pipelines.reasons import Rejection

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
FORMAT = "blocklist"
VERSION = 3


def _is_directory(path: str) -> bool:
  if not files.is_uri(path):
    if not files.exists(path):
      raise ValueError(f"block-list {path} does not exist")
    return os.path.isdir(path)
  # Object stores have no directories: a path there is one if it ends in "/"
  # or names no object.
  return path.endswith("/") or not files.isfile(path)


def image_paths(directory: str) -> list[str]:
  """The image files under `directory`, recursively, sorted."""
  return [path for path in files.find(directory)
          if path.lower().endswith(IMAGE_EXTENSIONS)]


def _decoded(path: str, max_pixels: int) -> images.DecodedImage:
  try:
    return images.decode_image(files.read_bytes(path), max_pixels=max_pixels)
  except Rejection as e:
    # A block-list that silently skipped an eval image would leak it into
    # training data.
    raise ValueError(f"block-list image {path} is unusable: {e}") from None


def eval_image(key: str, path: str, image_size: int,
               max_pixels: int = images.DEFAULT_MAX_PIXELS) -> EvalImage:
  """The block-list entry of the image file `path`, named `key`.

  Raises:
    ValueError: if the image cannot be decoded.
  """
  pixels = _decoded(path, max_pixels).pixels
  return EvalImage(
      key, images.pixel_sha256(images.resize_shorter_side(pixels, image_size)),
      image_signature.eval_signatures(pixels))


def eval_images(directory: str,
                image_size: int = images.DEFAULT_SHORTER_SIDE,
                max_pixels: int = images.DEFAULT_MAX_PIXELS
                ) -> Iterator[EvalImage]:
  """Yields the block-list entry of each image under `directory`, for builds
  that store images at an `image_size` shorter side.

  Keys are the paths relative to `directory` (e.g. XM3600's file names).

  Raises:
    ValueError: if the directory holds no images, or one cannot be decoded.
  """
  paths = image_paths(directory)
  if not paths:
    raise ValueError(f"block-list {directory} holds no image files "
                     f"({', '.join(IMAGE_EXTENSIONS)})")
  prefix = directory.rstrip("/") + "/"
  for path in paths:
    key = path[len(prefix):] if path.startswith(prefix) else path
    yield eval_image(key, path, image_size, max_pixels)


def _b64(array: np.ndarray) -> str:
  return base64.b64encode(array.tobytes()).decode("ascii")


def header(image_size: int) -> dict:
  """The first line of a block-list file for builds storing `image_size`."""
  return {"format": FORMAT, "version": VERSION, "image_size": image_size,
          "signature": image_signature.SIGNATURE_NAME,
          "signature_version": image_signature.SIGNATURE_VERSION}


def entry_line(image: EvalImage) -> str:
  """One image's line of a block-list file (with its newline)."""
  return json.dumps({
      "key": image.key, "sha256": image.sha256,
      "hashes": _b64(image.signatures.hashes.astype("<u8")),
      "colour": _b64(image.signatures.colour)}) + "\n"


def file_bytes(entries: Iterable[EvalImage], image_size: int) -> bytes:
  """The block-list file of `entries`, for builds storing `image_size`."""
  return "".join([json.dumps(header(image_size)) + "\n",
                  *map(entry_line, entries)]).encode("utf-8")


def _check_header(line: str, source: str, image_size: int) -> None:
  try:
    found = json.loads(line)
  except json.JSONDecodeError:
    found = None
  if not isinstance(found, dict) or found.get("format") != FORMAT:
    raise ValueError(
        f"{source} is not a version {VERSION} block-list file (version 1 "
        f"holds only hex SHA-256 lines, no perceptual signatures): rebuild it "
        f"with python -m pipelines.blocklist --output {source} IMAGE_DIR, or "
        f"pass the image directory itself")
  if found.get("version") == VERSION and found.get("image_size") != image_size:
    raise ValueError(
        f"{source} hashes images stored at a {found.get('image_size')} px "
        f"shorter side, this build stores {image_size} px: rebuild it with "
        f"python -m pipelines.blocklist --image_size {image_size}, or pass "
        f"the image directory itself")
  if found != header(image_size):
    raise ValueError(
        f"{source} is block-list version {found.get('version')} with "
        f"signature {found.get('signature')} v"
        f"{found.get('signature_version')}; this build reads version "
        f"{VERSION} with {image_signature.SIGNATURE_NAME} v"
        f"{image_signature.SIGNATURE_VERSION}: rebuild it with python -m "
        f"pipelines.blocklist")


def parse_file(lines: Sequence[str], source: str = "<lines>",
               image_size: int = images.DEFAULT_SHORTER_SIDE
               ) -> list[EvalImage]:
  """Parses the lines of a block-list file made for `image_size`.

  Raises:
    ValueError: for an older or foreign format, another image size, or a bad
      line.
  """
  if not lines:
    raise ValueError(f"{source} is empty")
  _check_header(lines[0], source, image_size)
  entries = []
  for number, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    try:
      value = json.loads(line)
      hashes = np.frombuffer(base64.b64decode(value["hashes"], validate=True),
                             "<u8").astype(np.uint64)
      colour = np.frombuffer(base64.b64decode(value["colour"], validate=True),
                             np.int8).reshape(len(hashes),
                                              image_signature.COLOUR_VALUES)
      entry = EvalImage(str(value["key"]), str(value["sha256"]),
                        Signatures(hashes, colour))
    except (ValueError, KeyError, TypeError) as e:
      raise ValueError(f"{source}:{number}: not a block-list entry: "
                       f"{type(e).__name__}: {e}") from None
    entries.append(entry)
  return entries


def load_blocklist(path: str, *,
                   image_size: int = images.DEFAULT_SHORTER_SIDE,
                   max_pixels: int = images.DEFAULT_MAX_PIXELS
                   ) -> list[EvalImage]:
  """Loads one block-list, a block-list file or a directory of images, for a
  build that stores images at an `image_size` shorter side.

  Raises:
    ValueError: if the path holds no images, an old or bad file, a file for
      another image size, or a bad image.
  """
  if _is_directory(path):
    return list(eval_images(path, image_size, max_pixels))
  text = files.read_bytes(path).decode("utf-8", errors="replace")
  return parse_file(text.splitlines(), path, image_size)


def load_blocklists(paths: Iterable[str], *,
                    image_size: int = images.DEFAULT_SHORTER_SIDE,
                    max_pixels: int = images.DEFAULT_MAX_PIXELS
                    ) -> list[EvalImage]:
  """The entries of several block-lists, in order."""
  return [e for path in paths
          for e in load_blocklist(path, image_size=image_size,
                                  max_pixels=max_pixels)]


@dataclasses.dataclass(frozen=True)
class BlocklistFile:
  """A block-list file written for a build's workers, named with its SHA-256.

  It stands in for the entries in a Beam job (`near_duplicates.
  EvalImageFilter`'s source): a few hundred bytes pickled, where the
  signatures take about 13 KB per eval image.
  """

  path: str
  sha256: str
  image_size: int

  def entries(self) -> list[EvalImage]:
    """The file's entries.

    Raises:
      ValueError: if the file is not the one written (its SHA-256 differs).
      OSError: if it cannot be read.
    """
    data = files.read_bytes(self.path)
    found = hashlib.sha256(data).hexdigest()
    if found != self.sha256:
      raise ValueError(
          f"block-list {self.path} has changed since the build wrote it "
          f"(sha256 {found}, expected {self.sha256}): launch the build again")
    return parse_file(data.decode("utf-8").splitlines(), self.path,
                      self.image_size)

  def blocked_hashes(self) -> list[str]:
    """The distinct pixel SHA-256s of the file's images, sorted."""
    return sorted({e.sha256 for e in self.entries()})


def write_for_workers(entries: Sequence[EvalImage], image_size: int,
                      directory: str) -> BlocklistFile:
  """Writes `entries` into `directory` as `<sha256>.blocklist`.

  Raises:
    OSError: naming the file, if writing fails.
  """
  data = file_bytes(entries, image_size)
  sha256 = hashlib.sha256(data).hexdigest()
  path = files.join(directory, f"{sha256}.blocklist")
  files.write_bytes(path, data)
  return BlocklistFile(path, sha256, image_size)


def blocklist_sha256(hashes: Iterable[str]) -> str:
  """A digest of a set of hashes, independent of order and of its sources."""
  return hashlib.sha256(
      "".join(f"{h}\n" for h in sorted(set(hashes))).encode()).hexdigest()


def main(argv: list[str] | None = None) -> int:
  parser = cli.ArgumentParser(
      prog="python -m pipelines.blocklist",
      description="Hash and sign the images of directories (e.g. XM3600's "
      "images/) into a block-list file for `build_dataset --blocklist`.")
  parser.add_argument("directories", nargs="+", metavar="DIR",
                      help="directories of images, searched recursively; "
                      "local paths or gs:// prefixes")
  parser.add_argument("--output", required=True,
                      help=f"the block-list file to write (version {VERSION}"
                      f" JSON lines: a header, then per image its key, "
                      f"stored-pixel SHA-256 and perceptual signatures)")
  parser.add_argument("--image_size", type=int,
                      default=images.DEFAULT_SHORTER_SIDE, metavar="PX",
                      help="the --image_size of the builds that will use the "
                      "file: images are hashed as stored at that shorter "
                      f"side (default {images.DEFAULT_SHORTER_SIDE})")
  args = parser.parse_args(argv)
  try:
    if args.image_size < 1:
      raise ValueError(
          f"--image_size must be positive, got {args.image_size}")
    total = sum(len(image_paths(d)) for d in args.directories)
    if not total:
      raise ValueError(
          f"no image files under {', '.join(args.directories)}")
    signed = []
    for directory in args.directories:
      for image in eval_images(directory, args.image_size):
        signed.append(image)
        if len(signed) % 500 == 0 or len(signed) == total:
          print(f"signed {len(signed)}/{total} images", file=sys.stderr)
    files.write_bytes(args.output, file_bytes(signed, args.image_size))
  except (ValueError, OSError) as e:
    return cli.fail(e)
  print(f"wrote {total} images to {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
