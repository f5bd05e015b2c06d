"""Block-lists of images to keep out of a dataset, by decoded-pixel hash.

A block-list is either a text file with one hex SHA-256 per line (as
`images.pixel_sha256` computes it; blank lines and `#` comments are ignored)
or a directory of images (searched recursively, e.g. the XM3600 `images/`
folder), which are decoded and hashed. Hashing decoded pixels, not file bytes,
catches an eval image that was re-saved with different metadata.

Hashing a directory of thousands of images takes a while; to do it once:

  python -m pipelines.blocklist --output xm3600.sha256 /data/xm3600/images
"""

import argparse
from collections.abc import Iterable, Iterator
import hashlib
import os
import re
import sys

from dataformat import files
from pipelines import images
from pipelines.reasons import Rejection

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")

_HASH_RE = re.compile(r"[0-9a-f]{64}")


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


def hash_images(paths: Iterable[str],
                max_pixels: int = images.DEFAULT_MAX_PIXELS
                ) -> Iterator[tuple[str, str]]:
  """Yields (path, pixel SHA-256) for each image file.

  Raises:
    ValueError: if an image cannot be decoded: a block-list that silently
      skipped an eval image would leak it into training data.
  """
  for path in paths:
    try:
      decoded = images.decode_image(files.read_bytes(path),
                                    max_pixels=max_pixels)
    except Rejection as e:
      raise ValueError(f"block-list image {path} is unusable: {e}") from None
    yield path, images.pixel_sha256(decoded.pixels)


def load_blocklist(path: str,
                   max_pixels: int = images.DEFAULT_MAX_PIXELS
                   ) -> frozenset[str]:
  """Loads one block-list: a hash file or a directory of images.

  Raises:
    ValueError: if the path holds no hashes or images, or a bad line or image.
  """
  if _is_directory(path):
    paths = image_paths(path)
    if not paths:
      raise ValueError(f"block-list {path} holds no image files "
                       f"({', '.join(IMAGE_EXTENSIONS)})")
    return frozenset(h for _, h in hash_images(paths, max_pixels))
  text = files.read_bytes(path).decode("utf-8", errors="replace")
  return frozenset(parse_hashes(text.splitlines(), path))


def load_blocklists(paths: Iterable[str],
                    max_pixels: int = images.DEFAULT_MAX_PIXELS
                    ) -> frozenset[str]:
  """The union of several block-lists."""
  hashes = set()
  for path in paths:
    hashes |= load_blocklist(path, max_pixels)
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
                      help="the block-list file to write: one hex SHA-256 of "
                      "decoded pixels per line, sorted")
  args = parser.parse_args(argv)
  try:
    paths = [p for d in args.directories for p in image_paths(d)]
    if not paths:
      raise ValueError(
          f"no image files under {', '.join(args.directories)}")
    hashes = set()
    for done, (_, sha) in enumerate(hash_images(paths), start=1):
      hashes.add(sha)
      if done % 500 == 0 or done == len(paths):
        print(f"hashed {done}/{len(paths)} images", file=sys.stderr)
    files.write_text(args.output, "".join(f"{h}\n" for h in sorted(hashes)))
  except (ValueError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {len(hashes)} hashes ({len(paths)} images) to {args.output}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
