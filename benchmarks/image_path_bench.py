"""Benchmark: the dataset build's image path, old (Pillow) against new.

Reports, as Markdown on stdout:

1. candidates: CPU milliseconds per 640x480 photo-like JPEG of decode ->
   resize to a 256 px shorter side -> duplicate hash -> JPEG q95 encode, for
   Pillow (the old path), OpenCV alone, simplejpeg (libjpeg-turbo) with
   OpenCV's area resize (the package's path, Pillow's header checks
   included), and the same with libjpeg-turbo's DCT-domain M/8 downscaling;
2. quality: median PSNR of each resize against a float Lanczos resize and
   the exact area average, over the photo-like images and matplotlib's
   sample photograph;
3. aliasing: a zone plate downscaled by each, as RMS grey-level deviation
   where its rings are above the output's Nyquist frequency; the images are
   saved side by side as a PNG (`--zone_plate_png`);
4. the whole `python -m pipelines.build_dataset` command (default options:
   no vocabulary, no block-list, one worker), old kernel
   (`benchmarks.baseline_image_path`) against the new, in CPU seconds of the
   process and its children per input example, on the 640x480 demo corpus
   and on a web mix (longer side 100 to 1600 px; JPEG, PNG and WebP): whole
   runs, and per example at scale (the slope from a run on the first quarter
   of the corpus, `benchmarks.marginal`); the kernel alone
   (`process.process_batch` in a loop) likewise.

Runs of the configurations alternate within each repeat and every figure is
a median, so other load on the machine falls on all alike.

  python -m benchmarks.image_path_bench [--num_examples 1000] [--repeats 3]
"""

import argparse
from collections.abc import Callable, Sequence
import hashlib
import io
import pathlib
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

import cv2
import matplotlib.cbook
import numpy as np
from PIL import Image
import simplejpeg

from benchmarks import baseline_image_path
from benchmarks import loader_bench
from benchmarks import marginal
from demo import corpus as demo_corpus
from pipelines import build_dataset
from pipelines import images
from pipelines import langid
from pipelines import process
from pipelines.readers import dispatch

SIZE = images.DEFAULT_SHORTER_SIDE
QUALITY = images.DEFAULT_JPEG_QUALITY
CANDIDATE_IMAGES = 40
# The web mix: longer side uniform in [100, 1600] px, these aspect ratios
# (either way up), and these shares of formats. Photos are JPEG or lossy
# WebP; PNGs are smooth graphics-like fields (PNG photos are rare and huge).
WEB_LONGER_SIDE = (100, 1600)
WEB_ASPECTS = (1.0, 4 / 3, 3 / 2, 16 / 9)
WEB_FORMATS = (("JPEG", 0.75), ("PNG", 0.15), ("WEBP", 0.10))


def _cpu_seconds() -> float:
  usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                resource.RUSAGE_CHILDREN)]
  return sum(u.ru_utime + u.ru_stime for u in usage)


def cpu_time(function: Callable[[], object]) -> float:
  """CPU seconds of this process and its waited-for children."""
  start = _cpu_seconds()
  function()
  return _cpu_seconds() - start


# --- 1. candidates ----------------------------------------------------------


def _pillow_old(data: bytes) -> bytes:
  pixels = images.decode_image(data).pixels
  images.pixel_sha256(pixels)
  resized = baseline_image_path.resize_shorter_side(pixels, SIZE)
  return baseline_image_path.encode_jpeg(resized, QUALITY)


def _pillow_direct(data: bytes) -> bytes:
  with Image.open(io.BytesIO(data)) as image:
    image.load()
    height, width = images.shorter_side_size(image.height, image.width, SIZE)
    resized = image.convert("RGB").resize((width, height),
                                          Image.Resampling.BICUBIC)
  pixels = np.asarray(resized)
  images.pixel_sha256(pixels)
  return baseline_image_path.encode_jpeg(pixels, QUALITY)


def _opencv(data: bytes) -> bytes:
  pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  height, width = images.shorter_side_size(*pixels.shape[:2], SIZE)
  resized = cv2.resize(pixels, (width, height), interpolation=cv2.INTER_AREA)
  hashlib.sha256(resized.tobytes()).hexdigest()
  return cv2.imencode(".jpg", resized, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])[1]


def _package(data: bytes) -> bytes:
  pixels = images.resize_shorter_side(images.decode_image(data).pixels, SIZE)
  images.pixel_sha256(pixels)
  return images.encode_jpeg(pixels, QUALITY)


def _dct_decode(data: bytes, margin: float) -> np.ndarray:
  """libjpeg-turbo's smallest M/8 scale keeping both sides >= margin x the
  target."""
  height, width, _, _ = simplejpeg.decode_jpeg_header(data)
  target = images.shorter_side_size(height, width, SIZE)
  return simplejpeg.decode_jpeg(
      data, min_height=int(np.ceil(margin * target[0])),
      min_width=int(np.ceil(margin * target[1])))


def _dct(margin: float) -> Callable[[bytes], bytes]:
  def run(data: bytes) -> bytes:
    pixels = images.resize_shorter_side(_dct_decode(data, margin), SIZE)
    images.pixel_sha256(pixels)
    return images.encode_jpeg(pixels, QUALITY)
  return run


CANDIDATES = {
    "Pillow: decode, sha256 full size, BICUBIC, encode (old path)": _pillow_old,
    "Pillow, resizing the decoded image directly": _pillow_direct,
    "OpenCV: imdecode, INTER_AREA, imencode": _opencv,
    "simplejpeg + OpenCV INTER_AREA, sha256 resized (new path)": _package,
    "the same, DCT-scaled decode (smallest M/8 >= target)": _dct(1.0),
    "the same, DCT-scaled decode (smallest M/8 >= 1.4 x target)": _dct(1.4),
}


def candidate_ms(jpegs: Sequence[bytes], repeats: int) -> dict[str, float]:
  """Median CPU ms per image of each candidate, candidates alternating."""
  times = {name: [] for name in CANDIDATES}
  for _ in range(repeats):
    for name, run in CANDIDATES.items():
      if name.endswith("(old path)"):
        # The package's own checks and Pillow decoding, as before.
        with baseline_image_path.installed():
          seconds = cpu_time(lambda: [run(d) for d in jpegs])  # pylint: disable=cell-var-from-loop
      else:
        seconds = cpu_time(lambda: [run(d) for d in jpegs])  # pylint: disable=cell-var-from-loop
      times[name].append(1000 * seconds / len(jpegs))
  return {name: statistics.median(t) for name, t in times.items()}


# --- 2. quality --------------------------------------------------------------


def lanczos_reference(pixels: np.ndarray, height: int,
                      width: int) -> np.ndarray:
  """Float Lanczos-3 resize of each channel (no rounding)."""
  return np.stack([np.asarray(Image.fromarray(
      pixels[..., c].astype(np.float32), "F").resize(
          (width, height), Image.Resampling.LANCZOS))
                   for c in range(3)], axis=-1)


def _area_matrix(n_in: int, n_out: int) -> np.ndarray:
  scale = n_in / n_out
  edges = np.arange(n_out + 1) * scale
  pixel = np.arange(n_in)[None, :]
  overlap = (np.minimum(edges[1:, None], pixel + 1)
             - np.maximum(edges[:-1, None], pixel))
  return np.clip(overlap, 0, None) / scale


def area_reference(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
  """The exact area average in float64, computed independently of OpenCV."""
  rows = _area_matrix(pixels.shape[0], height)
  cols = _area_matrix(pixels.shape[1], width)
  return np.stack([rows @ pixels[..., c].astype(np.float64) @ cols.T
                   for c in range(3)], axis=-1)


def psnr(image: np.ndarray, reference: np.ndarray) -> float:
  mse = np.mean((image.astype(np.float64) - reference) ** 2)
  return float(10 * np.log10(255 ** 2 / mse))


RESIZES = {
    "Pillow BICUBIC (old)": lambda d: baseline_image_path.resize_shorter_side(
        simplejpeg.decode_jpeg(d), SIZE),
    "OpenCV INTER_AREA (new)": lambda d: images.resize_shorter_side(
        simplejpeg.decode_jpeg(d), SIZE),
    "DCT M/8 >= target + INTER_AREA": lambda d: images.resize_shorter_side(
        _dct_decode(d, 1.0), SIZE),
    "DCT M/8 >= 1.4 x target + INTER_AREA": lambda d: (
        images.resize_shorter_side(_dct_decode(d, 1.4), SIZE)),
}


def quality(sets: dict[str, Sequence[bytes]]) -> dict[str, dict[str, tuple]]:
  """{set: {resize: (median PSNR vs Lanczos, vs area)}}."""
  out = {}
  for set_name, jpegs in sets.items():
    scores = {name: [] for name in RESIZES}
    for data in jpegs:
      full = simplejpeg.decode_jpeg(data)
      height, width = images.shorter_side_size(*full.shape[:2], SIZE)
      refs = (lanczos_reference(full, height, width),
              area_reference(full, height, width))
      for name, resize in RESIZES.items():
        resized = resize(data)
        scores[name].append([psnr(resized, r) for r in refs])
    out[set_name] = {name: tuple(np.median(np.array(s), axis=0))
                     for name, s in scores.items()}
  return out


# --- 3. aliasing ---------------------------------------------------------------


def zone_plate(height: int, width: int) -> np.ndarray:
  """Rings whose frequency grows with the radius, to Nyquist at the sides."""
  y, x = np.mgrid[0:height, 0:width].astype(np.float64)
  k = np.pi / width
  rings = 127.5 + 127.5 * np.cos(k * ((x - width / 2) ** 2
                                      + (y - height / 2) ** 2))
  return np.repeat(np.round(rings).astype(np.uint8)[..., None], 3, axis=-1)


def aliasing_rms(plate: np.ndarray, resized: np.ndarray) -> float:
  """RMS deviation from grey where the rings exceed the output's Nyquist."""
  height, width = plate.shape[:2]
  scale = height / resized.shape[0]
  y, x = np.mgrid[0:resized.shape[0], 0:resized.shape[1]]
  frequency = np.hypot((x + 0.5) * scale - width / 2,
                       (y + 0.5) * scale - height / 2) / width
  above = (frequency > 1.2 * 0.5 / scale) & (frequency < 0.5)
  return float(np.sqrt(np.mean((resized[..., 0][above] - 127.5) ** 2)))


def zone_plates(png_path: pathlib.Path) -> dict[str, float]:
  """Aliasing of each resize on a 640x480 zone plate; saves the images."""
  plate = zone_plate(480, 640)
  height, width = images.shorter_side_size(480, 640, SIZE)
  plate_jpeg = images.encode_jpeg(plate, 100)
  rows = np.arange(height) * 480 // height
  cols = np.arange(width) * 640 // width
  resized = {
      "Pillow BICUBIC (old)": baseline_image_path.resize_shorter_side(
          plate, SIZE),
      "OpenCV INTER_AREA (new)": images.resize_shorter_side(plate, SIZE),
      "DCT M/8 >= target + INTER_AREA (from a q100 JPEG)": (
          images.resize_shorter_side(_dct_decode(plate_jpeg, 1.0), SIZE)),
      "every n-th pixel, no filter": plate[rows][:, cols],
  }
  png_path.parent.mkdir(parents=True, exist_ok=True)
  gap = np.full((height, 8, 3), 255, np.uint8)
  row = [x for r in resized.values() for x in (r, gap)][:-1]
  Image.fromarray(np.concatenate(row, axis=1)).save(png_path)
  return {name: aliasing_rms(plate, r) for name, r in resized.items()}


# --- 4. the whole command ------------------------------------------------------


def _web_image(rng: np.random.Generator) -> tuple[bytes, str]:
  longer = int(rng.integers(WEB_LONGER_SIDE[0], WEB_LONGER_SIDE[1] + 1))
  shorter = max(1, round(longer / WEB_ASPECTS[rng.integers(len(WEB_ASPECTS))]))
  width, height = (longer, shorter) if rng.random() < 0.6 else (shorter,
                                                                  longer)
  names, shares = zip(*WEB_FORMATS)
  image_format = names[rng.choice(len(names), p=shares)]
  base = Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8)).resize(
      (width, height), Image.Resampling.BICUBIC)
  out = io.BytesIO()
  if image_format == "PNG":
    base.save(out, format="PNG")
    return out.getvalue(), "png"
  noisy = np.asarray(base, np.int16) + rng.normal(
      0, 8, (height, width, 3)).astype(np.int16)
  photo = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
  if image_format == "JPEG":
    photo.save(out, format="JPEG", quality=int(rng.integers(75, 96)))
    return out.getvalue(), "jpg"
  photo.save(out, format="WEBP", quality=80)
  return out.getvalue(), "webp"


def write_web_mix(source_tars: Sequence[str], output: pathlib.Path,
                  seed: int = 0) -> int:
  """The demo corpus's captions with web-mix images, as webdataset tars."""
  rng = np.random.default_rng(seed)
  output.mkdir(parents=True)
  count = 0
  for index, shard in enumerate(source_tars):
    with tarfile.open(output / f"web-{index:05d}.tar", "w") as tar:
      for raw in dispatch.read_examples(shard):
        image, extension = _web_image(rng)
        for name, data in ((f"{raw.key}.{extension}", image),
                           (f"{raw.key}.txt", raw.caption or b"")):
          info = tarfile.TarInfo(name)
          info.size = len(data)
          tar.addfile(info, io.BytesIO(data))
        count += 1
  return count


OLD = "benchmarks.baseline_image_path"
NEW = "pipelines.build_dataset"


def _command(module: str, corpus: pathlib.Path,
             output: pathlib.Path) -> Callable[[], object]:
  """A build_dataset run (old or new kernel) with default options."""
  argv = [sys.executable, "-m", module, "--input", str(corpus / "*.tar"),
          "--output", str(output), "--overwrite"]
  return lambda: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)


def kernel_run(raws, identifier, old: bool) -> Callable[[], None]:
  """process_batch over all examples in batches, with the old or new path."""
  def run():
    config = process.ProcessConfig()
    batch = build_dataset.BATCH_SIZE
    for i in range(0, len(raws), batch):
      process.process_batch(raws[i:i + batch], config, identifier, [])

  def run_old():
    with baseline_image_path.installed():
      run()
  return run_old if old else run


def whole_runs(corpora: dict[str, pathlib.Path], work: pathlib.Path,
               repeats: int) -> dict[str, dict[str, float]]:
  """{corpus: {configuration: median CPU ms per example}}.

  The commands also run on the first quarter of each corpus, for the
  per-example cost at scale (`benchmarks.marginal`).
  """
  identifier = langid.LanguageIdentifier()
  identifier.load()
  results = {}
  for corpus_name, corpus_dir in corpora.items():
    raws = [e for shard in sorted(corpus_dir.glob("*.tar"))
            for e in dispatch.read_examples(str(shard))]
    n = len(raws)
    part_dir = work / f"{corpus_dir.name}_part"
    n_part = marginal.first_part(corpus_dir, part_dir)
    runs = {
        "build_dataset, old": _command(OLD, corpus_dir, work / "old"),
        "build_dataset, new": _command(NEW, corpus_dir, work / "new"),
        "build_dataset, old, part": _command(OLD, part_dir, work / "old_part"),
        "build_dataset, new, part": _command(NEW, part_dir, work / "new_part"),
        "kernel, old": kernel_run(raws, identifier, old=True),
        "kernel, new": kernel_run(raws, identifier, old=False),
    }
    times = {name: [] for name in runs}
    for _ in range(repeats):
      for name, run in runs.items():
        times[name].append(1000 * cpu_time(run) / n)
    result = {name: statistics.median(t) for name, t in times.items()}
    for which in ("old", "new"):
      result[f"marginal, {which}"] = marginal.per_example(
          result[f"build_dataset, {which}"] * n,
          result.pop(f"build_dataset, {which}, part") * n, n, n_part)
    results[corpus_name] = result
  return results


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--num_examples", type=int, default=1000,
                      help="examples in each corpus of the whole-command runs")
  parser.add_argument("--repeats", type=int, default=3,
                      help="runs of each configuration; medians are reported")
  parser.add_argument("--zone_plate_png", type=pathlib.Path,
                      default=pathlib.Path("benchmarks/results/zone_plate.png"))
  args = parser.parse_args(argv)
  rng = np.random.default_rng(0)
  jpegs = [loader_bench.photo_jpeg(rng) for _ in range(CANDIDATE_IMAGES)]
  with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
    photograph = f.read()
  candidates = candidate_ms(jpegs, args.repeats)
  scores = quality({f"{CANDIDATE_IMAGES} photo-like 640x480": jpegs,
                    "grace_hopper.jpg (512x600 photograph)": [photograph]})
  aliasing = zone_plates(args.zone_plate_png)
  with tempfile.TemporaryDirectory() as tmp:
    work = pathlib.Path(tmp)
    demo = demo_corpus.generate_corpus(
        work / "demo", num_examples=args.num_examples, seed=0,
        image_size=(640, 480), examples_per_shard=250)
    write_web_mix([str(s) for s in demo.shards], work / "web")
    whole = whole_runs({"640x480 demo corpus": work / "demo",
                        "web mix": work / "web"}, work, args.repeats)
  report(candidates, scores, aliasing, whole, args)


def report(candidates, scores, aliasing, whole, args) -> None:
  """Prints the results as Markdown."""
  print(f"## Candidates ({CANDIDATE_IMAGES} photo-like 640x480 JPEGs, "
        f"-> {SIZE} px shorter side, q{QUALITY}; median of {args.repeats})\n")
  old = candidates[next(iter(CANDIDATES))]
  print("| candidate | CPU ms per image | x old |")
  print("|---|---|---|")
  for name, ms in candidates.items():
    print(f"| {name} | {ms:.2f} | {ms / old:.2f} |")
  print("\n## Resize quality (median PSNR, dB)\n")
  print("| images | resize | vs float Lanczos | vs exact area average |")
  print("|---|---|---|---|")
  for set_name, by_resize in scores.items():
    for name, (lanczos, area) in by_resize.items():
      print(f"| {set_name} | {name} | {lanczos:.2f} | {area:.2f} |")
  print(f"\n## Zone plate 640x480 -> {SIZE} px ({args.zone_plate_png})\n")
  print("| resize | RMS above Nyquist (grey levels) |")
  print("|---|---|")
  for name, rms in aliasing.items():
    print(f"| {name} | {rms:.1f} |")
  print(f"\n## CPU ms per input example (median of {args.repeats})\n")
  print("| corpus | what | old | new | new / old |")
  print("|---|---|---|---|---|")
  for corpus_name, t in whole.items():
    for what, key in (("whole build_dataset command", "build_dataset"),
                      ("command, per example at scale (first quarter -> "
                       "whole)", "marginal"),
                      ("kernel (process_batch loop)", "kernel")):
      old, new = t[f"{key}, old"], t[f"{key}, new"]
      print(f"| {corpus_name} | {what} | {old:.2f} | {new:.2f} | "
            f"{new / old:.2f} |")
    print(f"| {corpus_name} | kernel / command per example at scale | "
          f"{t['kernel, old'] / t['marginal, old']:.2f} | "
          f"{t['kernel, new'] / t['marginal, new']:.2f} | |")


if __name__ == "__main__":
  main()
