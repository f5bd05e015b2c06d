"""Benchmark: ArrayRecord compression for the dataset's shards.

Writes the same records, shaped as a build stores them (a 341x256 JPEG at
quality 95 of a photo-like image, a caption and its tokens, serialised as
`tf.train.Example`), with `group_size:1` and each compression, then reads
them all back. Reports CPU milliseconds per record for writing and for
reading (medians over rounds in which the options take turns) and bytes per
record.

  python -m benchmarks.shard_write_bench [--records 2000] [--rounds 5]
"""

import argparse
import os
import statistics
import tempfile
import time

from array_record.python import array_record_module
import numpy as np

from benchmarks import loader_bench
from dataformat import records
from dataformat import shards
from pipelines import images
from vocabularies import vocabulary

OPTIONS = ("group_size:1", "group_size:1,uncompressed",
           "group_size:1,snappy", "group_size:1,zstd:1")


def stored_records(count: int) -> list[bytes]:
  """`count` serialised records of distinct photo-like images."""
  rng = np.random.default_rng(0)
  serialized = []
  for i in range(count):
    pixels = images.decode_image(loader_bench.photo_jpeg(rng)).pixels
    stored = images.resize_shorter_side(pixels, images.DEFAULT_SHORTER_SIDE)
    serialized.append(records.serialize_record(records.Record(
        key=f"{i:08d}", text=f"a caption of example number {i}", lang="en",
        image_encoded=images.encode_jpeg(stored),
        image_height=stored.shape[0], image_width=stored.shape[1],
        tokens={loader_bench.VOCAB: [
            *rng.integers(3, 32_000, rng.integers(4, 24)).tolist(),
            vocabulary.EOS_ID]})))
  return serialized


def write_and_read(path: str, options: str,
                   serialized: list[bytes]) -> tuple[float, float]:
  """(write, read) CPU seconds of all `serialized` with `options`."""
  began = time.process_time()
  writer = array_record_module.ArrayRecordWriter(path, options)
  for record in serialized:
    writer.write(record)
  writer.close()
  written = time.process_time()
  reader = array_record_module.ArrayRecordReader(path)
  assert reader.read_all() == serialized
  reader.close()
  return written - began, time.process_time() - written


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--records", type=int, default=2000)
  parser.add_argument("--rounds", type=int, default=5)
  args = parser.parse_args()
  serialized = stored_records(args.records)
  times = {options: ([], []) for options in OPTIONS}
  sizes = {}
  with tempfile.TemporaryDirectory() as directory:
    for _ in range(args.rounds):
      for options in OPTIONS:
        path = os.path.join(directory, "shard" + shards.SHARD_SUFFIX)
        write, read = write_and_read(path, options, serialized)
        times[options][0].append(write)
        times[options][1].append(read)
        sizes[options] = os.path.getsize(path)
  mean_record = sum(map(len, serialized)) / len(serialized)
  print(f"{args.records} records of {mean_record / 1e3:.1f} KB on average; "
        f"medians of {args.rounds} rounds\n")
  print("| writer options | write CPU ms / record | read CPU ms / record "
        "| bytes / record |")
  print("|---|---|---|---|")
  for options in OPTIONS:
    write, read = (1e3 * statistics.median(t) / args.records
                   for t in times[options])
    marker = " (the build's)" if options == shards.WRITER_OPTIONS else ""
    print(f"| `{options}`{marker} | {write:.3f} | {read:.3f} "
          f"| {sizes[options] / args.records:.0f} |")


if __name__ == "__main__":
  main()
