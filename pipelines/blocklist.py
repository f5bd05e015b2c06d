"""Block-lists of images to keep out of a dataset, by stored-pixel hash.

An image is blocked when its stored pixels (decoded, resized to the build's
`--image_size` shorter side) hash as a block-listed image's do
(`images.pixel_sha256`). Hashing pixels, not file bytes, catches an eval
image that was re-saved with different metadata or in another lossless
format.

A block-list is either a directory of images (searched recursively, e.g.
the XM3600 `images/` folder), which are decoded, resized and hashed, or a
text file written by this module's command: a first line

  # pipelines.blocklist format 2, image_size 256

then one hex SHA-256 per line (blank lines and `#` comments are ignored).
The hashes hold for that image size only; files without the line (format 1,
hashes of full-size pixels) are refused. Hashing a directory of thousands of
images takes a while; to do it once:

  python -m pipelines.blocklist --output xm3600.sha256 /data/xm3600/images
"""

import argparse
from collections.abc import Iterable, Iterator
import hashlib
import os
import re
import sys

from apache_beam.io.filesystems import FileSystems

from pipelines import images
from pipelines.reasons import Rejection

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")

FORMAT_VERSION = 2
_HASH_RE = re.compile(r"[0-9a-f]{64}")
_HEADER_RE = re.compile(
    r"# pipelines\.blocklist format (\d+), image_size (\d+)")


def header(image_size: int) -> str:
  """The first line of a block-list file (no newline)."""
  return (f"# pipelines.blocklist format {FORMAT_VERSION}, "
          f"image_size {image_size}")


def parse_hashes(lines: Iterable[str], source: str = "<lines>") -> set[str]:
  """Parses block-list lines into hashes.

  Raises:
    ValueError: if a line is neither blank, a `#` comment nor a hex SHA-256.
  """
  hashes = set()
  for number, line in enumerate(lines, start=1):
    line = line.split("#", 1)[0].strip().lower()
    if not line:
      continue
    if not _HASH_RE.fullmatch(line):
      raise ValueError(
          f"{source}:{number}: not a hex SHA-256: {line[:80]!r}")
    hashes.add(line)
  return hashes


def parse_blocklist_file(text: str, source: str, image_size: int) -> set[str]:
  """The hashes of a block-list file's text, checking its format line.

  Raises:
    ValueError: one line naming the file, if its format is not this
      module's, its hashes are of another image size, or a line is bad.
  """
  lines = text.splitlines()
  match = _HEADER_RE.fullmatch(lines[0].strip()) if lines else None
  if match is None:
    raise ValueError(
        f"block-list {source} has no '# pipelines.blocklist format "
        f"{FORMAT_VERSION}' first line: an old file of full-size pixel hashes "
        f"no longer matches; re-create it with python -m pipelines.blocklist")
  version, size = int(match.group(1)), int(match.group(2))
  if version != FORMAT_VERSION:
    raise ValueError(f"block-list {source} is in format {version}; this "
                     f"version reads format {FORMAT_VERSION}")
  if size != image_size:
    raise ValueError(
        f"block-list {source} hashes images stored at a {size} px shorter "
        f"side, this build stores {image_size} px; re-create it with "
        f"python -m pipelines.blocklist --image_size {image_size}")
  return parse_hashes(lines, source)


def _is_directory(path: str) -> bool:
  if FileSystems.get_scheme(path) is None:
    if not os.path.exists(path):
      raise ValueError(f"block-list {path} does not exist")
    return os.path.isdir(path)
  # Object stores have no directories: a path there is one if it ends in "/"
  # or names no object.
  return path.endswith("/") or not FileSystems.exists(path)


def image_paths(directory: str) -> list[str]:
  """The image files under `directory`, recursively, sorted."""
  pattern = FileSystems.join(directory.rstrip("/"), "**")
  matched = FileSystems.match([pattern])[0].metadata_list
  return sorted(m.path for m in matched
                if m.path.lower().endswith(IMAGE_EXTENSIONS))


def hash_images(paths: Iterable[str], *,
                image_size: int = images.DEFAULT_SHORTER_SIDE,
                max_pixels: int = images.DEFAULT_MAX_PIXELS
                ) -> Iterator[tuple[str, str]]:
  """Yields (path, SHA-256 of the pixels as stored at `image_size`).

  Raises:
    ValueError: if an image cannot be decoded: a block-list that silently
      skipped an eval image would leak it into training data.
  """
  for path in paths:
    with FileSystems.open(path) as f:
      data = f.read()
    try:
      decoded = images.decode_image(data, max_pixels=max_pixels)
    except Rejection as e:
      raise ValueError(f"block-list image {path} is unusable: {e}") from None
    yield path, images.pixel_sha256(
        images.resize_shorter_side(decoded.pixels, image_size))


def load_blocklist(path: str, *,
                   image_size: int = images.DEFAULT_SHORTER_SIDE,
                   max_pixels: int = images.DEFAULT_MAX_PIXELS
                   ) -> frozenset[str]:
  """Loads one block-list, a hash file or a directory of images, for a
  build that stores images at an `image_size` shorter side.

  Raises:
    ValueError: if the path holds no hashes or images, or a bad line or image.
  """
  if _is_directory(path):
    paths = image_paths(path)
    if not paths:
      raise ValueError(f"block-list {path} holds no image files "
                       f"({', '.join(IMAGE_EXTENSIONS)})")
    return frozenset(h for _, h in hash_images(
        paths, image_size=image_size, max_pixels=max_pixels))
  with FileSystems.open(path) as f:
    text = f.read().decode("utf-8", errors="replace")
  return frozenset(parse_blocklist_file(text, path, image_size))


def load_blocklists(paths: Iterable[str], *,
                    image_size: int = images.DEFAULT_SHORTER_SIDE,
                    max_pixels: int = images.DEFAULT_MAX_PIXELS
                    ) -> frozenset[str]:
  """The union of several block-lists."""
  hashes = set()
  for path in paths:
    hashes |= load_blocklist(path, image_size=image_size,
                             max_pixels=max_pixels)
  return frozenset(hashes)


def blocklist_sha256(hashes: Iterable[str]) -> str:
  """A digest of a set of hashes, independent of order and of its sources."""
  return hashlib.sha256(
      "".join(f"{h}\n" for h in sorted(hashes)).encode()).hexdigest()


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(
      prog="python -m pipelines.blocklist",
      description="Hash the images of directories (e.g. XM3600's images/) "
      "into a block-list file for `build_dataset --blocklist`.")
  parser.add_argument("directories", nargs="+", metavar="DIR",
                      help="directories of images, searched recursively; "
                      "local paths or gs:// prefixes")
  parser.add_argument("--output", required=True,
                      help="the block-list file to write: a format line, then "
                      "one hex SHA-256 of stored pixels per line, sorted")
  parser.add_argument("--image_size", type=int,
                      default=images.DEFAULT_SHORTER_SIDE, metavar="PX",
                      help="the --image_size of the builds that will use the "
                      "file: images are hashed as stored at that shorter side")
  args = parser.parse_args(argv)
  try:
    if args.image_size < 1:
      raise ValueError(
          f"--image_size must be positive, got {args.image_size}")
    paths = [p for d in args.directories for p in image_paths(d)]
    if not paths:
      raise ValueError(
          f"no image files under {', '.join(args.directories)}")
    hashes = set()
    for done, (_, sha) in enumerate(
        hash_images(paths, image_size=args.image_size), start=1):
      hashes.add(sha)
      if done % 500 == 0 or done == len(paths):
        print(f"hashed {done}/{len(paths)} images", file=sys.stderr)
    with FileSystems.create(args.output) as f:
      f.write("".join(f"{line}\n" for line in [header(args.image_size)]
                      + sorted(hashes)).encode())
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {len(hashes)} hashes ({len(paths)} images) to {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
