"""Benchmark (b): the Grain input pipeline versus an equivalent tf.data one.

Both read the same records (serialised `tf.train.Example`s with a 640x480
JPEG and tokens): Grain from the ArrayRecord shards through
`trainer.input_pipeline.make_train_iterator`, tf.data from a TFRecord copy
of the same bytes (tf.data has no ArrayRecord reader; TFRecord is its native
format). Each pipeline shuffles, parses, decodes, squashes the image to
224x224 with values in [-1, 1], pads the tokens to 16 with a sticky EOS and
batches 256 examples. Variants:

- grain-inprocess: `num_workers=0` (batches made in 2 threads of this process)
- grain-2workers: `mp_prefetch` with 2 worker processes
- tfdata: TFRecordDataset -> shuffle -> repeat -> parallel map (AUTOTUNE) ->
  batch -> prefetch, full-size `decode_jpeg`
- tfdata-dct: the same with `decode_jpeg(ratio=...)`, the DCT-domain
  downscaling that `trainer.input_pipeline.decode_image` also uses
  (libjpeg-turbo's M/8 scaling through simplejpeg), so that the comparison
  separates that trick from the rest

Reported, as medians over rounds in which the variants take turns: examples/s
over the timed batches (start-up and 2 warm-up batches excluded), CPU time
per example over the same batches (this process, its threads and its worker
processes), both as ratios to tfdata, and the start-up time; then a
single-thread breakdown of the per-example work.

  python -m benchmarks.loader_bench [--records 2000] [--rounds 3]
"""

import argparse
import io
import os
import pathlib
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grain  # pylint: disable=g-import-not-at-top
import numpy as np
from PIL import Image
import psutil

from dataformat import image_codec
from dataformat import records
from dataformat import shards
from vocabularies import vocabulary
from trainer import configs
from trainer import input_pipeline

IMAGE_SIZE = 224
TEXT_LEN = 16
BATCH = 256
VOCAB = "bench"
HEIGHT, WIDTH = 480, 640
# Distinct images; records cycle through them (decoding costs the same).
DISTINCT_IMAGES = 100
WARMUP_BATCHES = 2


def photo_jpeg(rng: np.random.Generator) -> bytes:
  """A photo-like 640x480 JPEG: smooth colour fields plus sensor-like noise.

  About 110 KB at quality 90, close to web photos of that size (flat
  synthetic squares would compress to 2 KB and decode unrealistically fast).
  """
  base = Image.fromarray(rng.integers(0, 256, (6, 8, 3), np.uint8)).resize(
      (WIDTH, HEIGHT), Image.BICUBIC)
  pixels = np.asarray(base, np.int16) + rng.normal(
      0, 12, (HEIGHT, WIDTH, 3)).astype(np.int16)
  out = io.BytesIO()
  Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
      out, format="JPEG", quality=90)
  return out.getvalue()


def write_datasets(directory: pathlib.Path, num_records: int,
                   num_shards: int = 4) -> None:
  """The ArrayRecord dataset and its TFRecord copy, unless already there."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  if (directory / "COMPLETED").exists():
    return
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.default_rng(0)
  jpegs = [photo_jpeg(rng) for _ in range(DISTINCT_IMAGES)]
  serialized = [
      records.serialize_record(records.Record(
          key=f"{i:08d}", text=f"caption {i}", lang="en",
          image_encoded=jpegs[i % DISTINCT_IMAGES], image_height=HEIGHT,
          image_width=WIDTH,
          tokens={VOCAB: list(rng.integers(3, 32_000, rng.integers(4, 24)))
                  + [vocabulary.EOS_ID]}))
      for i in range(num_records)
  ]
  for shard in range(num_shards):
    shard_records = serialized[shard::num_shards]
    shards.write_array_record(
        str(directory / shards.shard_name("train", shard, num_shards)),
        shard_records)
    with tf.io.TFRecordWriter(
        str(directory / f"train-{shard:05d}-of-{num_shards:05d}.tfrecord")
    ) as writer:
      for record in shard_records:
        writer.write(record)
  shards.write_completed(str(directory))


def grain_iterator(directory: pathlib.Path, num_workers: int):
  config = configs.base_config().data
  config.update(dict(train_dir=str(directory), vocab_name=VOCAB,
                     text_len=TEXT_LEN, image_size=IMAGE_SIZE,
                     num_workers=num_workers))
  return input_pipeline.make_train_iterator(config, BATCH, seed=0)


def tfdata_iterator(directory: pathlib.Path, dct_scaling: bool,
                    shuffle_buffer: int):
  """The tf.data pipeline with the same output as the Grain one.

  A shuffle buffer of the whole dataset matches Grain's global shuffle.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  features = {
      records.IMAGE_ENCODED: tf.io.FixedLenFeature([], tf.string),
      records.tokens_field(VOCAB): tf.io.VarLenFeature(tf.int64),
  }
  ratios = (1, 2, 4, 8)

  def decode(encoded):
    if not dct_scaling:
      return tf.io.decode_jpeg(encoded, channels=3)
    # The largest ratio whose output still covers IMAGE_SIZE on both sides.
    shorter = tf.reduce_min(tf.image.extract_jpeg_shape(encoded)[:2])
    index = tf.reduce_sum(tf.cast(
        shorter // tf.constant(ratios[1:]) >= IMAGE_SIZE, tf.int32))
    return tf.switch_case(index, [
        lambda r=r: tf.io.decode_jpeg(encoded, channels=3, ratio=r)
        for r in ratios])

  def to_example(serialized):
    parsed = tf.io.parse_single_example(serialized, features)
    image = tf.image.resize(decode(parsed[records.IMAGE_ENCODED]),
                            (IMAGE_SIZE, IMAGE_SIZE), antialias=True)
    tokens = tf.cast(tf.sparse.to_dense(parsed[records.tokens_field(VOCAB)]),
                     tf.int32)
    tokens = tf.cond(
        tf.size(tokens) > TEXT_LEN,
        lambda: tf.concat([tokens[:TEXT_LEN - 1], [vocabulary.EOS_ID]], 0),
        lambda: tokens)
    tokens = tf.pad(tokens, [[0, TEXT_LEN - tf.size(tokens)]],
                    constant_values=vocabulary.EOS_ID)
    return {input_pipeline.IMAGE: image * (2 / 255) - 1,
            input_pipeline.TEXT: tf.ensure_shape(tokens, [TEXT_LEN])}

  files = sorted(str(p) for p in directory.glob("train-*.tfrecord"))
  ds = (tf.data.TFRecordDataset(files, num_parallel_reads=len(files))
        .shuffle(shuffle_buffer, seed=0)
        .repeat()
        .map(to_example, num_parallel_calls=tf.data.AUTOTUNE,
             deterministic=True)
        .batch(BATCH, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE))
  return ds.as_numpy_iterator()


def cpu_seconds() -> float:
  """User + system CPU time of this process and its live children."""
  process = psutil.Process()
  total = 0.0
  for p in [process] + process.children(recursive=True):
    try:
      times = p.cpu_times()
    except psutil.NoSuchProcess:
      continue
    total += times.user + times.system
  return total


def measure(make_iterator, timed_batches: int) -> tuple[float, float, float]:
  """(start-up s, examples/s, CPU ms per example) after warm-up.

  CPU time (all threads and worker processes) measures the work per example
  whatever share of this shared machine the variant got; examples/s
  measures what a trainer would see.
  """
  began = time.perf_counter()
  iterator = make_iterator()
  next(iterator)
  startup = time.perf_counter() - began
  for _ in range(WARMUP_BATCHES - 1):
    next(iterator)
  began, cpu_began = time.perf_counter(), cpu_seconds()
  for _ in range(timed_batches):
    batch = next(iterator)
  examples = timed_batches * BATCH
  rate = examples / (time.perf_counter() - began)
  cpu_ms = 1e3 * (cpu_seconds() - cpu_began) / examples
  assert batch[input_pipeline.IMAGE].shape == (BATCH, IMAGE_SIZE,
                                               IMAGE_SIZE, 3)
  if hasattr(iterator, "close"):
    iterator.close()
  return startup, rate, cpu_ms


def per_example_breakdown(directory: pathlib.Path, n: int = 100) -> dict:
  """Single-thread milliseconds per example of each stage."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  source = grain.sources.ArrayRecordDataSource(
      shards.dataset_shards(directory, "train"))
  timings = {}

  def timed(name, fn, items):
    began = time.perf_counter()
    out = [fn(item) for item in items]
    timings[name] = 1e3 * (time.perf_counter() - began) / len(items)
    return out

  raw = timed("read (ArrayRecord)", lambda i: source[i], range(n))
  parsed = timed("parse tf.train.Example", records.parse_record, raw)
  jpegs = [r.image_encoded for r in parsed]

  def pil_decode(encoded, draft):
    image = Image.open(io.BytesIO(encoded))
    if draft:
      image.draft("RGB", (IMAGE_SIZE, IMAGE_SIZE))
    return image.convert("RGB")

  timed("PIL decode, full size", lambda b: pil_decode(b, False), jpegs)
  decoded = timed("PIL decode, DCT-scaled (draft)",
                  lambda b: pil_decode(b, True), jpegs)
  resized = timed("PIL resize to 224 (antialiased bilinear)",
                  lambda im: im.resize((IMAGE_SIZE, IMAGE_SIZE),
                                       Image.BILINEAR), decoded)
  scaled = timed("libjpeg-turbo decode, DCT-scaled (simplejpeg, trainer)",
                 lambda b: image_codec.decode_jpeg(b, IMAGE_SIZE, IMAGE_SIZE),
                 jpegs)
  timed("OpenCV area resize of float32 pixels to 224 (trainer)",
        lambda p: image_codec.resize_area(p.astype(np.float32), IMAGE_SIZE,
                                          IMAGE_SIZE), scaled)
  floats = timed("to float32 in [-1, 1]",
                 lambda im: np.asarray(im, np.float32) * np.float32(2 / 255)
                 - np.float32(1), resized)
  began = time.perf_counter()
  np.stack(floats)
  timings["stack into a batch"] = 1e3 * (time.perf_counter() - began) / n
  timed("whole RecordToExample (Grain map)",
        lambda r: input_pipeline.decode_image(r.image_encoded, IMAGE_SIZE),
        parsed)
  timed("tf decode_jpeg, full size",
        lambda b: tf.io.decode_jpeg(b, channels=3).numpy(), jpegs)
  timed("tf decode_jpeg, ratio=2",
        lambda b: tf.io.decode_jpeg(b, channels=3, ratio=2).numpy(), jpegs)
  return timings


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--records", type=int, default=2000,
                      help="records in the benchmark dataset")
  parser.add_argument("--rounds", type=int, default=3,
                      help="rounds; the variants take turns in each")
  parser.add_argument("--timed_batches", type=int, default=6,
                      help="batches of 256 timed per variant and round")
  parser.add_argument("--data_dir", default="/tmp/loader_bench_data",
                      help="where the datasets are written (reused if there)")
  args = parser.parse_args()
  directory = pathlib.Path(args.data_dir) / str(args.records)
  write_datasets(directory, args.records)

  variants = {
      "grain-inprocess": lambda: grain_iterator(directory, 0),
      "grain-2workers": lambda: grain_iterator(directory, 2),
      "tfdata": lambda: tfdata_iterator(directory, False, args.records),
      "tfdata-dct": lambda: tfdata_iterator(directory, True, args.records),
  }
  results = {name: [] for name in variants}
  for round_index in range(args.rounds):
    for name, make in variants.items():
      results[name].append(measure(make, args.timed_batches))
      startup, rate, cpu_ms = results[name][-1]
      print(f"round {round_index + 1}: {name}: {rate:.1f} ex/s, "
            f"{cpu_ms:.2f} CPU ms/example (start-up {startup:.1f} s)",
            flush=True)

  def median(name, index):
    return statistics.median(run[index] for run in results[name])

  print("\n| variant | examples/s (median) | x tfdata | CPU ms / example "
        "(median) | x tfdata | start-up s |")
  print("|---|---|---|---|---|---|")
  for name in variants:
    print(f"| {name} | {median(name, 1):.1f} | "
          f"{median(name, 1) / median('tfdata', 1):.2f} | "
          f"{median(name, 2):.2f} | "
          f"{median(name, 2) / median('tfdata', 2):.2f} | "
          f"{median(name, 0):.1f} |")
  print("\nSingle-thread ms per example:\n")
  print("| stage | ms |")
  print("|---|---|")
  for stage, ms in per_example_breakdown(directory).items():
    print(f"| {stage} | {ms:.2f} |")


if __name__ == "__main__":
  main()
