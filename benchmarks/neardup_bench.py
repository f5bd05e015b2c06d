"""Benchmark: near-duplicate eval-image matching on real photographs.

The photographs are the ones that ship inside PyPI wheels (scikit-image's
skimage/data, scikit-learn's datasets/images, matplotlib's sample_data;
installed with the `dev` extra, nothing downloads). Every other photo (by
name) is block-listed as an "eval" image; every photo, block-listed or not,
gets transformed copies: resized 0.3x-2x, JPEG quality 30-95, WebP, rotated
up to 3 degrees, colour-shifted, greyscale, mirrored, and cropped by up to 10%
per side. It reports, as Markdown on stdout:

- recall: the share of each block-listed photo's copies matched to it, per
  transform group (crops apart);
- false matches over all (eval image, distinct training image) pairs, where
  distinct means another photo or a copy of another photo; and the margins:
  the largest distance of a matched copy, the smallest of a distinct pair;
- the CPU time per image of the training signature (on the stored 256 px
  image, as the build computes it, and on the decoded original) next to
  decode's, of an index lookup, and of an eval image's signatures;
- the lookup time of the index with --index_eval_images (default 100,000)
  eval images of random signatures, against a linear scan;
- with --demo_dir (a `python -m demo.corpus` output with its mini XM3600 set,
  as scripts/demo.sh makes it): the share of the demo's training scenes the
  filter would remove, exact copies of XM3600 images aside.

  python -m benchmarks.neardup_bench [--demo_dir demo_out]
      [--index_eval_images 100000]
"""

import argparse
import collections
import glob
import io
import os
import statistics
import time

import matplotlib
import numpy as np
from PIL import Image
from PIL import ImageEnhance
import skimage
import sklearn

from pipelines import image_signature
from pipelines import images
from pipelines import signature_index
from pipelines.readers import dispatch
from pipelines.reasons import Rejection

# Photographs only: scikit-image's drawings, charts and test patterns (logo,
# horse, phantom, chessboards, colour wheel) are left out, and so is
# motorcycle_right.png, the other half of a stereo pair: a near-duplicate of
# motorcycle_left.png by construction.
_SKIMAGE_PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
    "clock_motion.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
    "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
    "motorcycle_left.png", "page.png", "retina.jpg", "rocket.jpg", "text.png")
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")
_MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)
_CROPS_PER_PHOTO = 10
_MAX_CROP = 0.1
_TIMING_REPEATS = 5


def photo_paths() -> list[str]:
  """The photographs' paths inside the installed packages, sorted by name."""
  dirs = [(os.path.join(os.path.dirname(skimage.__file__), "data"),
           _SKIMAGE_PHOTOS),
          (os.path.join(os.path.dirname(sklearn.__file__), "datasets",
                        "images"), _SKLEARN_PHOTOS),
          (os.path.join(matplotlib.get_data_path(), "sample_data"),
           _MATPLOTLIB_PHOTOS)]
  return sorted((os.path.join(d, name) for d, names in dirs for name in names),
                key=os.path.basename)


def _read(path: str) -> bytes:
  with open(path, "rb") as f:
    return f.read()


def _encoded(image: Image.Image, fmt: str, **options) -> np.ndarray:
  buffer = io.BytesIO()
  image.save(buffer, format=fmt, **options)
  return images.decode_image(buffer.getvalue()).pixels


def _straightened(image: Image.Image, degrees: float) -> Image.Image:
  """Rotated and cropped to the largest centred rectangle without corners."""
  width, height = image.size
  angle = abs(np.radians(degrees))
  # The inscribed rectangle of the same aspect ratio, for small angles.
  scale = 1 / (np.cos(angle) + np.sin(angle) * max(width, height)
               / min(width, height))
  inner_w, inner_h = width * scale, height * scale
  box = (round((width - inner_w) / 2), round((height - inner_h) / 2),
         round((width + inner_w) / 2), round((height + inner_h) / 2))
  return image.rotate(degrees, Image.Resampling.BICUBIC).crop(box)


def transforms(pixels: np.ndarray, seed: int
               ) -> list[tuple[str, str, np.ndarray]]:
  """(group, name, pixels) of the transformed copies of one photo."""
  image = Image.fromarray(pixels)
  width, height = image.size
  copies = []

  def add(group, name, result):
    if isinstance(result, Image.Image):
      result = np.asarray(result.convert("RGB"))
    copies.append((group, name, result))

  for factor in (0.3, 0.5, 0.75, 1.5, 2.0):
    add("resize", f"resize {factor}x", image.resize(
        (max(8, round(width * factor)), max(8, round(height * factor))),
        Image.Resampling.BICUBIC))
  for quality in (30, 50, 75, 95):
    add("jpeg", f"jpeg q{quality}", _encoded(image, "JPEG", quality=quality))
  for quality in (50, 80):
    add("webp", f"webp q{quality}", _encoded(image, "WEBP", quality=quality))
  for degrees in (-3.0, -1.5, 1.5, 3.0):
    add("rotate", f"straightened {degrees:+g} deg",
        _straightened(image, degrees))
    add("rotate, blank corners", f"rotate {degrees:+g} deg, black corners",
        image.rotate(degrees, Image.Resampling.BICUBIC))
  gains = np.array([1.08, 1.0, 0.92], np.float32)
  add("colour", "colour gains 1.08/1/0.92", np.clip(
      pixels * gains + 0.5, 0, 255).astype(np.uint8))
  add("colour", "saturation 1.25", ImageEnhance.Color(image).enhance(1.25))
  add("colour", "brightness 0.9 contrast 1.1", ImageEnhance.Contrast(
      ImageEnhance.Brightness(image).enhance(0.9)).enhance(1.1))
  add("greyscale", "greyscale", image.convert("L"))
  mirrored = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  add("flip", "mirrored", mirrored)
  add("flip", "mirrored, 0.5x, jpeg q75", _encoded(mirrored.resize(
      (width // 2, height // 2), Image.Resampling.BICUBIC), "JPEG",
      quality=75))
  rng = np.random.default_rng(seed)
  for i in range(_CROPS_PER_PHOTO):
    left, top, right, bottom = rng.uniform(0, _MAX_CROP, 4)
    box = (round(left * width), round(top * height),
           width - round(right * width), height - round(bottom * height))
    add("crop", f"crop {i}", _encoded(image.crop(box), "JPEG", quality=90))
  return copies


def training_signature(pixels: np.ndarray) -> image_signature.Signatures:
  """A training image's signatures as the build signs it: resized to 256."""
  return image_signature.image_signature(
      images.resize_shorter_side(pixels, images.DEFAULT_SHORTER_SIDE))


def _median_seconds(function, *args) -> float:
  times = []
  for _ in range(_TIMING_REPEATS):
    start = time.process_time()
    function(*args)
    times.append(time.process_time() - start)
  return statistics.median(times)


def photo_report(config: image_signature.MatchConfig) -> list[str]:
  """The recall, false-match and cost tables on the shipped photographs."""
  paths = photo_paths()
  names = [os.path.basename(p).rsplit(".", 1)[0] for p in paths]
  decoded = [images.decode_image(_read(p)).pixels for p in paths]
  eval_ids = list(range(0, len(paths), 2))
  index = signature_index.SignatureIndex.build(
      [names[i] for i in eval_ids],
      [image_signature.eval_signatures(decoded[i]) for i in eval_ids],
      config)
  copies = [(photo, group, name, training_signature(pixels))
            for photo, px in enumerate(decoded)
            for group, name, pixels in transforms(px, seed=photo)]
  copies += [(photo, "original", "original", training_signature(px))
             for photo, px in enumerate(decoded)]

  recalled = collections.Counter()
  total = collections.Counter()
  misses = []
  false_matches = []
  pairs = 0
  worst_true, best_false = 0, 64
  for photo, group, name, signature in copies:
    distances = index.distances(signature)
    matched = {m.key for m in index.matches(signature)}
    for eval_position, photo_id in enumerate(eval_ids):
      key = names[photo_id]
      if photo_id == photo:
        total[group] += 1
        recalled[group] += key in matched
        if key in matched:
          worst_true = max(worst_true, distances[eval_position])
        else:
          misses.append(f"{key} {name} (distance "
                        f"{distances[eval_position]})")
      else:
        pairs += 1
        best_false = min(best_false, distances[eval_position])
        if key in matched:
          false_matches.append(f"{names[photo]} {name} -> {key}")

  groups = [g for g in total
            if g not in ("crop", "original", "rotate, blank corners")]
  plain = sum(recalled[g] for g in groups), sum(total[g] for g in groups)
  lines = [
      f"{len(paths)} photographs ({len(eval_ids)} block-listed, "
      f"{len(index)} eval signatures), {len(copies)} training images "
      f"(the photos and their copies); match radius {config.radius} bits, "
      f"colour distance <= {config.max_colour_distance}.",
      "",
      "| copies | matched | recall |",
      "|---|---|---|",
  ]
  for group in groups + ["crop", "original", "rotate, blank corners"]:
    lines.append(f"| {group} | {recalled[group]}/{total[group]} | "
                 f"{recalled[group] / total[group]:.3f} |")
  lines.append(f"| all but crops | {plain[0]}/{plain[1]} | "
               f"{plain[0] / plain[1]:.3f} |")
  lines += [
      "",
      f"False matches: {len(false_matches)} of {pairs} (eval image, distinct "
      f"training image) pairs ({len(false_matches) / pairs:.1e}).",
      f"Largest hash distance of a matched copy: {worst_true}; smallest hash "
      f"distance of a distinct pair: {best_false}.",
  ]
  if misses:
    lines.append(f"Missed copies: {'; '.join(misses)}.")
  if false_matches:
    lines.append(f"False matches: {'; '.join(false_matches)}.")

  largest = max(range(len(paths)), key=lambda i: decoded[i].size)
  pixels = decoded[largest]
  jpeg = images.encode_jpeg(pixels, 90)
  decode_s = _median_seconds(images.decode_image, jpeg)
  signature_s = _median_seconds(image_signature.image_signature, pixels)
  stored = images.resize_shorter_side(pixels, images.DEFAULT_SHORTER_SIDE)
  stored_s = _median_seconds(image_signature.image_signature, stored)
  eval_s = _median_seconds(image_signature.eval_signatures, pixels)
  query = training_signature(pixels)
  lookup_s = _median_seconds(index.matches, query)
  lines += [
      "",
      f"CPU time per image ({names[largest]}, {pixels.shape[1]}x"
      f"{pixels.shape[0]}, as JPEG q90; median of {_TIMING_REPEATS}):",
      "",
      "| step | ms | vs decode |",
      "|---|---|---|",
      f"| decode (`images.decode_image`) | {decode_s * 1e3:.2f} | 1.00 |",
      f"| training signature of the stored {stored.shape[1]}x"
      f"{stored.shape[0]} image (what the build signs) | "
      f"{stored_s * 1e3:.2f} | {stored_s / decode_s:.2f} |",
      f"| training signature of the decoded image | {signature_s * 1e3:.2f} "
      f"| {signature_s / decode_s:.2f} |",
      f"| index lookup ({len(index)} signatures) | {lookup_s * 1e3:.3f} | "
      f"{lookup_s / decode_s:.3f} |",
      f"| eval signatures (`eval_signatures`, once per eval image) | "
      f"{eval_s * 1e3:.1f} | {eval_s / decode_s:.1f} |",
  ]
  return lines


def index_report(num_eval_images: int,
                 config: image_signature.MatchConfig) -> list[str]:
  """Lookup time with many eval images: the index against a scan.

  Random hashes (uniform bits), one colour grid shared by every row so that
  the colour check passes; 81 signatures per eval image as `eval_signatures`
  makes. Queries are stored hashes with 0 to radius + 2 bits flipped.
  """
  rng = np.random.default_rng(0)
  rows = num_eval_images * 81
  signatures = image_signature.Signatures(
      rng.integers(0, 2**64, rows, dtype=np.uint64, endpoint=False),
      np.broadcast_to(np.zeros(image_signature.COLOUR_VALUES, np.int8),
                      (rows, image_signature.COLOUR_VALUES)))
  start = time.perf_counter()
  index = signature_index.SignatureIndex(
      [str(i) for i in range(num_eval_images)],
      np.arange(rows) // 81, signatures, config)
  build_s = time.perf_counter() - start
  lookups, scans, same = [], [], 0
  for i in range(40):
    flips = rng.choice(64, i % (config.radius + 3), replace=False)
    query = image_signature.Signatures(
        signatures.hashes[rng.integers(rows)][None]
        ^ np.uint64(sum(1 << int(b) for b in flips)),
        signatures.colour[:1])
    start = time.process_time()
    found = index.matches(query)
    lookups.append(time.process_time() - start)
    if i < 5:
      start = time.process_time()
      same += found == index.scan(query)
      scans.append(time.process_time() - start)
  return [
      f"Index with {num_eval_images:,} eval images ({rows:,} random "
      f"signatures, {index.num_blocks} blocks): built in {build_s:.1f} s; "
      f"median lookup {statistics.median(lookups) * 1e3:.2f} ms CPU against "
      f"{statistics.median(scans) * 1e3:.0f} ms for a scan "
      f"(same answers on {same}/{len(scans)} queries checked).",
  ]


def demo_report(demo_dir: str,
                config: image_signature.MatchConfig) -> list[str]:
  """How many of the demo corpus's training scenes the filter removes."""
  eval_paths = sorted(glob.glob(os.path.join(demo_dir, "xm3600", "images",
                                             "*.jpg")))
  eval_pixels = [images.decode_image(_read(p)).pixels for p in eval_paths]
  exact = {images.pixel_sha256(px) for px in eval_pixels}
  index = signature_index.SignatureIndex.build(
      [os.path.basename(p) for p in eval_paths],
      [image_signature.eval_signatures(px) for px in eval_pixels], config)
  scenes = exact_copies = matched = 0
  examples = []
  for path in dispatch.match_input_files(
      os.path.join(demo_dir, "corpus", "*.tar")):
    for raw in dispatch.read_examples(path):
      try:
        pixels = images.decode_image(raw.image).pixels
      except Rejection:
        continue
      if min(pixels.shape[:2]) < 32:
        continue
      if images.pixel_sha256(pixels) in exact:
        exact_copies += 1
        continue
      scenes += 1
      found = index.matches(training_signature(pixels))
      if found:
        matched += 1
        if len(examples) < 5:
          examples.append(f"{raw.key} -> {found[0].key} (distance "
                          f"{found[0].distance})")
  return [
      f"Demo corpus ({demo_dir}): {len(eval_paths)} XM3600 demo images "
      f"block-listed; {exact_copies} exact copies left to the exact check; "
      f"of the other {scenes} decodable training scenes, {matched} "
      f"({matched / scenes:.2%}) matched a block-listed image.",
      *(["Examples: " + "; ".join(examples) + "."] if examples else []),
  ]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--demo_dir", default=None,
                      help="a demo output directory holding corpus/ and "
                      "xm3600/ (scripts/demo.sh's stage 1)")
  parser.add_argument("--radius", type=int,
                      default=image_signature.DEFAULT_RADIUS)
  parser.add_argument("--max_colour_distance", type=int,
                      default=image_signature.DEFAULT_MAX_COLOUR_DISTANCE)
  parser.add_argument("--index_eval_images", type=int, default=100_000,
                      help="eval images for the index lookup timing (0: "
                      "skip)")
  args = parser.parse_args()
  config = image_signature.MatchConfig(args.radius, args.max_colour_distance)
  print("\n".join(photo_report(config)))
  if args.index_eval_images:
    print()
    print("\n".join(index_report(args.index_eval_images, config)))
  if args.demo_dir:
    print()
    print("\n".join(demo_report(args.demo_dir, config)))


if __name__ == "__main__":
  main()
