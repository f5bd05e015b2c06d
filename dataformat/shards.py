"""A dataset directory's files: their names, the shards, the rejected file.

A dataset directory holds

  <split>-XXXXX-of-YYYYY.array_record  the records; shard = stable hash of the
                                       key, records sorted by key inside
  rejected.jsonl                       {key, source, reason, detail, url} per
                                       line, ordered by shard (of the key),
                                       then key
  stats.png                            languages, caption lengths, image
                                       sizes, rejections by reason, scores
  manifest.json                        counts, shards, options (deterministic)
  COMPLETED                            written last

and, while a local build runs, `records.spill/` (`pipelines.spill`).

ArrayRecord reads and writes local files only, so shards are written to a
local temporary file and copied through `dataformat.files` (which serves
gs:// too), and remote shards are copied to a local file to be read. Object
stores have no directories: a dataset is there when its COMPLETED marker or
manifest is.
"""

from collections.abc import Iterable, Iterator
import dataclasses
import hashlib
import json
import os
import tempfile

from array_record.python import array_record_module

from dataformat import files

# One record per chunk, so readers have random access; not compressed: the
# JPEG bytes that make up most of a record do not compress, and trying
# (zstd, ArrayRecord's default) costs 0.09 ms more CPU a record to write for
# no smaller files (BENCHMARKS.md, "Shard compression").
WRITER_OPTIONS = "group_size:1,uncompressed"
MANIFEST = "manifest.json"
REJECTED = "rejected.jsonl"
STATS_PLOT = "stats.png"
COMPLETED = "COMPLETED"
REJECTED_PARTS_DIR = "rejected.parts"
SPILL_DIR = "records.spill"
SHARD_SUFFIX = ".array_record"
_READ_BATCH = 256


def shard_index(key: str, num_shards: int) -> int:
  """The shard of `key`: a stable hash (SHA-256, not Python's `hash`)."""
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % num_shards


def shard_name(split: str, index: int, num_shards: int) -> str:
  """'train', 3, 16 -> 'train-00003-of-00016.array_record'."""
  return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


def shard_pattern(split: str = "*") -> str:
  """The glob of the shard names of `split` (of every split by default)."""
  return f"{split}-?????-of-?????{SHARD_SUFFIX}"


def rejected_part_name(index: int, num_shards: int) -> str:
  """The per-shard rejected file, relative to the dataset directory."""
  return f"{REJECTED_PARTS_DIR}/{index:05d}-of-{num_shards:05d}.jsonl"


@dataclasses.dataclass(frozen=True)
class ShardInfo:
  """A written shard: its file name (in the dataset directory), count, hash."""

  file: str
  count: int
  sha256: str


@dataclasses.dataclass(frozen=True, order=True)
class RejectedExample:
  """One line of the rejected-examples file; `url` is "" where unknown."""

  key: str
  source: str
  reason: str
  detail: str
  url: str = ""

  def to_json_line(self) -> str:
    return json.dumps(dataclasses.asdict(self), ensure_ascii=False) + "\n"


# ArrayRecord files --------------------------------------------------------


def write_array_record(destination: str, records: Iterable[bytes]) -> ShardInfo:
  """Writes records, in the order given, as an ArrayRecord file.

  The file is written locally with `WRITER_OPTIONS` and then copied to
  `destination`.

  Raises:
    OSError: naming `destination`, if writing fails (a full disk).
  """
  fd, local_path = tempfile.mkstemp(suffix=SHARD_SUFFIX)
  os.close(fd)
  try:
    writer = array_record_module.ArrayRecordWriter(local_path, WRITER_OPTIONS)
    count = 0
    for record in records:
      writer.write(record)
      count += 1
    writer.close()
    sha = files.copy(local_path, destination)
  except RuntimeError as e:  # ArrayRecord's I/O errors, e.g. a full disk.
    raise OSError(f"writing {destination} failed: {e}") from e
  finally:
    os.remove(local_path)
  return ShardInfo(file=files.basename(destination), count=count, sha256=sha)


def _local_records(path: str) -> Iterator[bytes]:
  reader = array_record_module.ArrayRecordReader(path)
  if not reader.ok():  # It opens files it cannot parse, e.g. truncated ones.
    raise RuntimeError("not a readable ArrayRecord file (truncated?)")
  try:
    total = reader.num_records()
    for start in range(0, total, _READ_BATCH):
      yield from reader.read(start, min(start + _READ_BATCH, total))
  finally:
    reader.close()


def iter_array_record(path: str) -> Iterator[bytes]:
  """Yields the records of an ArrayRecord file, in order.

  Files that are not local are copied to a local temporary file first.

  Raises:
    RuntimeError: if the file is damaged (ArrayRecord checks its hashes).
  """
  if not files.is_uri(path):
    yield from _local_records(path)
    return
  with tempfile.TemporaryDirectory() as tmp:
    local_path = os.path.join(tmp, "shard" + SHARD_SUFFIX)
    files.copy(path, local_path)
    yield from _local_records(local_path)


def read_array_record(path: str) -> list[bytes]:
  """All records of an ArrayRecord file, in order."""
  return list(iter_array_record(path))


# The rejected-examples file -----------------------------------------------


def write_rejected_part(destination: str,
                        rejected: Iterable[RejectedExample]) -> None:
  """Writes rejected examples as JSON lines, sorted."""
  files.write_text(destination,
                   "".join(r.to_json_line() for r in sorted(rejected)))


def remove_rejected_parts(output_dir: str) -> None:
  """Deletes the per-shard rejected files once they are concatenated."""
  files.rmtree(files.join(output_dir, REJECTED_PARTS_DIR))


def read_rejected(path: str) -> list[RejectedExample]:
  """Reads a rejected-examples file."""
  return [RejectedExample(**json.loads(line))
          for line in files.read_text(path).splitlines()]


# The directory -------------------------------------------------------------


def write_completed(output_dir: str) -> None:
  """Writes the COMPLETED marker; call it after everything else is written."""
  files.write_bytes(files.join(output_dir, COMPLETED), b"")


def is_completed(output_dir: str) -> bool:
  return files.exists(files.join(output_dir, COMPLETED))


def dataset_files(output_dir: str) -> list[str]:
  """The files of a (possibly partial) dataset build in `output_dir`."""
  found = files.glob(files.join(output_dir, shard_pattern()))
  found += [path for path in (files.join(output_dir, name) for name in
                              (MANIFEST, REJECTED, STATS_PLOT, COMPLETED))
            if files.isfile(path)]
  return sorted(found)


def _has_build_leftovers(output_dir: str) -> bool:
  return any(files.glob(files.join(output_dir, d, "*"))
             for d in (REJECTED_PARTS_DIR, SPILL_DIR))


def prepare_output_dir(output_dir: str, overwrite: bool) -> None:
  """Makes `output_dir` ready for a build.

  The files of an earlier build, completed or not (a build that was killed
  leaves shards without the COMPLETED marker), are only replaced when
  `overwrite` is set. The COMPLETED marker goes first, then the other files
  (so no stale shard of a build with more shards survives).

  Raises:
    FileExistsError: if `output_dir` holds files of an earlier build and not
      `overwrite`.
  """
  if not overwrite:
    if is_completed(output_dir):
      raise FileExistsError(
          f"{output_dir} already holds a completed dataset; "
          "pass --overwrite to replace it")
    if dataset_files(output_dir) or _has_build_leftovers(output_dir):
      raise FileExistsError(
          f"{output_dir} holds an incomplete dataset (no {COMPLETED} marker: "
          "an earlier build did not finish); pass --overwrite to replace it")
  files.remove(files.join(output_dir, COMPLETED))
  for stale in dataset_files(output_dir):
    files.remove(stale)
  remove_rejected_parts(output_dir)
  files.rmtree(files.join(output_dir, SPILL_DIR))
  files.makedirs(output_dir)


def check_complete(data_dir: str) -> None:
  """Raises unless `data_dir` holds a complete dataset (its COMPLETED marker).

  Raises:
    ValueError: naming `data_dir`: it does not exist, or it is incomplete.
  """
  if is_completed(data_dir):
    return
  # Object stores have no directories to test: a dataset with neither its
  # marker nor its manifest is not there at all.
  missing = (not files.exists(files.join(data_dir, MANIFEST))
             if files.is_uri(data_dir) else not os.path.isdir(data_dir))
  if missing:
    raise ValueError(f"dataset directory {data_dir} does not exist")
  raise ValueError(f"dataset {data_dir} is incomplete (no {COMPLETED} marker)")


def dataset_shards(data_dir: str, split: str) -> list[str]:
  """The sorted ArrayRecord shard paths of `split` in a complete dataset.

  Raises:
    ValueError: if `data_dir` is not a complete dataset or has no such split.
  """
  data_dir = os.fspath(data_dir)
  check_complete(data_dir)
  shards = files.glob(files.join(data_dir, shard_pattern(split)))
  if not shards:
    raise ValueError(f"dataset {data_dir} has no {split!r} shards")
  return shards
