"""Writing a dataset directory: shards, rejected examples, manifest, marker.

A dataset directory holds

  <split>-XXXXX-of-YYYYY.array_record  the records; shard = stable hash of the
                                       key, records sorted by key inside
  rejected.jsonl                       {key, source, reason, detail, url} per
                                       line,
                                       ordered by shard (of the key), then key
  stats.png                            languages, caption lengths, image
                                       sizes, rejections by reason, scores
  manifest.json                        counts, shards, options (deterministic)
  COMPLETED                            written last

Everything written depends only on the input and the options, so two builds
of the same input give byte-identical directories. ArrayRecord needs a local
file, so shards are written to a local temporary file and then copied with
Beam's FileSystems, which also serves gs:// outputs.
"""

import collections
from collections.abc import Iterable, Iterator, Mapping, Sequence
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
from typing import Any, BinaryIO

from apache_beam.io.filesystems import FileSystems
from array_record.python import array_record_module
import numpy as np

from pipelines.reasons import DUPLICATE_REASONS
from pipelines.reasons import REASONS

WRITER_OPTIONS = "group_size:1"
MANIFEST = "manifest.json"
REJECTED = "rejected.jsonl"
STATS_PLOT = "stats.png"
COMPLETED = "COMPLETED"
REJECTED_PARTS_DIR = "rejected.parts"
SHARD_SUFFIX = ".array_record"
_COPY_CHUNK_BYTES = 8 << 20
_READ_BATCH = 256
# Image size histogram cells are this many pixels wide, up to the limit.
IMAGE_SIZE_BIN = 32
IMAGE_SIZE_LIMIT = 2048


def shard_index(key: str, num_shards: int) -> int:
  """The shard of `key`: a stable hash (SHA-256, not Python's `hash`)."""
  digest = hashlib.sha256(key.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % num_shards


def shard_name(split: str, index: int, num_shards: int) -> str:
  """'train', 3, 16 -> 'train-00003-of-00016.array_record'."""
  return f"{split}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"


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


@contextlib.contextmanager
def _create(destination: str) -> Iterator[BinaryIO]:
  """`FileSystems.create`, whose write errors (a full disk) name the file."""
  try:
    with FileSystems.create(destination) as f:
      yield f
  except OSError as e:
    raise OSError(f"writing {destination} failed: {e}") from e


def copy_local_file(local_path: str, destination: str) -> str:
  """Copies a local file to any FileSystems path; returns its SHA-256."""
  sha = hashlib.sha256()
  with open(local_path, "rb") as src, _create(destination) as dst:
    while chunk := src.read(_COPY_CHUNK_BYTES):
      sha.update(chunk)
      dst.write(chunk)
  return sha.hexdigest()


def write_array_record(destination: str, records: Iterable[bytes]) -> ShardInfo:
  """Writes records, in the order given, as an ArrayRecord file.

  The file is written locally with `group_size:1` (one record per chunk, so
  readers have random access) and then copied to `destination`.
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
    sha = copy_local_file(local_path, destination)
  except RuntimeError as e:  # ArrayRecord's I/O errors, e.g. a full disk.
    raise OSError(f"writing {destination} failed: {e}") from e
  finally:
    os.remove(local_path)
  return ShardInfo(file=FileSystems.split(destination)[1], count=count,
                   sha256=sha)


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
  if FileSystems.get_scheme(path) is None:
    yield from _local_records(path)
    return
  with tempfile.TemporaryDirectory() as tmp:
    local_path = os.path.join(tmp, "shard" + SHARD_SUFFIX)
    with FileSystems.open(path) as src, open(local_path, "wb") as dst:
      shutil.copyfileobj(src, dst, _COPY_CHUNK_BYTES)
    yield from _local_records(local_path)


def read_array_record(path: str) -> list[bytes]:
  """All records of an ArrayRecord file, in order."""
  return list(iter_array_record(path))


def file_sha256(path: str) -> str:
  """The SHA-256 of any FileSystems file."""
  sha = hashlib.sha256()
  with FileSystems.open(path) as f:
    while chunk := f.read(_COPY_CHUNK_BYTES):
      sha.update(chunk)
  return sha.hexdigest()


def rejected_part_name(index: int, num_shards: int) -> str:
  return f"{REJECTED_PARTS_DIR}/{index:05d}-of-{num_shards:05d}.jsonl"


def write_rejected_part(destination: str,
                        rejected: Iterable[RejectedExample]) -> None:
  """Writes rejected examples as JSON lines, sorted."""
  text = "".join(r.to_json_line() for r in sorted(rejected))
  with _create(destination) as f:
    f.write(text.encode("utf-8"))


def concatenate(parts: Sequence[str], destination: str) -> None:
  """Writes the files `parts`, in order, into one file."""
  with _create(destination) as dst:
    for part in parts:
      with FileSystems.open(part) as src:
        while chunk := src.read(_COPY_CHUNK_BYTES):
          dst.write(chunk)


def remove_rejected_parts(output_dir: str) -> None:
  """Deletes the per-shard rejected files once they are concatenated."""
  parts_dir = FileSystems.join(output_dir, REJECTED_PARTS_DIR)
  if FileSystems.get_scheme(parts_dir) is None:
    shutil.rmtree(parts_dir, ignore_errors=True)
    return
  parts = FileSystems.match([FileSystems.join(parts_dir, "*")])[0]
  if parts.metadata_list:
    FileSystems.delete([m.path for m in parts.metadata_list])


def read_rejected(path: str) -> list[RejectedExample]:
  """Reads a rejected-examples file."""
  with FileSystems.open(path) as f:
    lines = f.read().decode("utf-8").splitlines()
  return [RejectedExample(**json.loads(line)) for line in lines]


@dataclasses.dataclass
class DatasetStats:
  """Histograms over kept examples; merged across shards.

  Attributes:
    languages: examples per language code.
    caption_chars: examples per caption length in characters.
    image_sizes: examples per (width bin, height bin) of the original image,
      bins `IMAGE_SIZE_BIN` pixels wide, the last bin holding all larger.
  """

  languages: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  caption_chars: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)
  image_sizes: collections.Counter = dataclasses.field(
      default_factory=collections.Counter)

  def add(self, lang: str, caption_chars: int, height: int,
          width: int) -> None:
    last_bin = IMAGE_SIZE_LIMIT // IMAGE_SIZE_BIN
    self.languages[lang] += 1
    self.caption_chars[caption_chars] += 1
    self.image_sizes[(min(width // IMAGE_SIZE_BIN, last_bin),
                      min(height // IMAGE_SIZE_BIN, last_bin))] += 1

  def merge(self, other: "DatasetStats") -> "DatasetStats":
    self.languages.update(other.languages)
    self.caption_chars.update(other.caption_chars)
    self.image_sizes.update(other.image_sizes)
    return self

  def language_histogram(self) -> dict[str, int]:
    """Examples per language, most frequent first, ties by code."""
    return dict(sorted(self.languages.items(), key=lambda kv: (-kv[1], kv[0])))


def _plot_rejections(ax, rejected: Mapping[str, int]) -> None:
  """Horizontal bars: rejected examples per reason, in check order."""
  reasons = [str(r) for r in REASONS if rejected.get(r)]
  counts = [rejected[r] for r in reasons]
  colours = ["tab:purple" if r in DUPLICATE_REASONS else "tab:red"
             for r in reasons]
  ax.barh(reasons, counts, color=colours)
  ax.invert_yaxis()
  for y, n in enumerate(counts):
    ax.annotate(str(n), (n, y), xytext=(3, 0), textcoords="offset points",
                va="center", fontsize=7)
  ax.set_title("Rejected, by reason (purple: duplicates)")
  ax.set_xlabel("examples")
  ax.tick_params(axis="y", labelsize=7)


def _plot_scores(ax, scores) -> None:
  """Each language's score histogram as a column, its cut-off marked."""
  langs = list(scores.histogram)
  bins = sorted({b for h in scores.histogram.values() for b in h})
  low, high = bins[0], bins[-1] + 1
  grid = np.zeros((high - low, len(langs)))
  for column, lang in enumerate(langs):
    histogram = scores.histogram[lang]
    total = sum(histogram.values())
    for b, n in histogram.items():
      grid[b - low, column] = n / total
  width = scores.bin_width
  ax.imshow(grid, origin="lower", aspect="auto", cmap="Blues",
            extent=(-0.5, len(langs) - 0.5, low * width, high * width))
  cut = [(i, scores.cutoffs[lang]) for i, lang in enumerate(langs)
         if lang in scores.cutoffs]
  if cut:
    ax.scatter([i for i, _ in cut], [c for _, c in cut], marker="_", s=60,
               color="tab:red", label="cut-off")
    ax.legend(loc="upper right", fontsize=7)
  ax.set_xticks(range(len(langs)), langs, rotation=90, fontsize=7)
  ax.set_title("Image-text score by language (share of pairs)")
  ax.set_ylabel("score")


def plot_stats(stats: DatasetStats, destination: str, title: str,
               rejected: Mapping[str, int] | None = None,
               scores: Any = None) -> None:
  """Draws the build's histograms as PNG.

  Top: languages, caption lengths and image sizes of the kept examples.
  Bottom: rejected examples by reason, and (given `scores`, a
  `score_filter.ScoreSummary`) each language's image-text score
  distribution with its cut-off.
  """
  # A bare Figure (no pyplot) keeps no global state and needs no backend
  # choice; it renders with Agg.
  from matplotlib import figure  # pylint: disable=g-import-not-at-top

  fig = figure.Figure(figsize=(16, 9), dpi=80)
  axes = fig.subplot_mosaic([["lang", "chars", "size"],
                             ["rejected", "scores", "scores"]])
  ax_lang, ax_chars, ax_size, ax_rejected, ax_scores = (
      axes[name] for name in ("lang", "chars", "size", "rejected", "scores"))
  fig.subplots_adjust(left=0.1, right=0.97, bottom=0.1, top=0.92,
                      wspace=0.3, hspace=0.45)
  langs = stats.language_histogram()
  ax_lang.bar(list(langs), list(langs.values()), color="tab:blue")
  ax_lang.set_title("Languages")
  ax_lang.set_ylabel("examples")
  ax_lang.tick_params(axis="x", labelrotation=90, labelsize=7)

  if stats.caption_chars:
    lengths = range(max(stats.caption_chars) + 1)
    ax_chars.stairs([stats.caption_chars[n] for n in lengths],
                    [*lengths, len(lengths)], fill=True, color="tab:green")
  ax_chars.set_title("Caption length")
  ax_chars.set_xlabel("characters")
  ax_chars.set_ylabel("examples")

  cells = sorted(stats.image_sizes)
  points = ax_size.scatter(
      [(w + 0.5) * IMAGE_SIZE_BIN for w, _ in cells],
      [(h + 0.5) * IMAGE_SIZE_BIN for _, h in cells],
      c=[stats.image_sizes[c] for c in cells], s=12, marker="s",
      cmap="viridis")
  ax_size.set_title(f"Original image size ({IMAGE_SIZE_BIN} px cells)")
  ax_size.set_xlabel("width")
  ax_size.set_ylabel("height")
  fig.colorbar(points, ax=ax_size, label="examples")

  _plot_rejections(ax_rejected, rejected or {})
  if scores is not None and scores.histogram:
    _plot_scores(ax_scores, scores)
  else:
    ax_scores.set_axis_off()
    ax_scores.text(0.5, 0.5, "no image-text score\n(--score_model)",
                   ha="center", va="center", transform=ax_scores.transAxes)
  fig.suptitle(title)
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png")
  with _create(destination) as f:
    f.write(buffer.getvalue())


def rejected_counts(counts: Mapping[str, int]) -> dict[str, int]:
  """Counts for every reason, in check order, zeros included."""
  unknown = set(counts) - set(REASONS)
  if unknown:
    raise ValueError(f"unknown rejection reasons: {sorted(unknown)}")
  return {str(r): int(counts.get(r, 0)) for r in REASONS}


def write_json(destination: str, value: Any) -> None:
  """Writes `value` as indented JSON with keys in their given order."""
  text = json.dumps(value, indent=2, ensure_ascii=False) + "\n"
  with _create(destination) as f:
    f.write(text.encode("utf-8"))


def read_json(path: str) -> Any:
  with FileSystems.open(path) as f:
    return json.loads(f.read().decode("utf-8"))


def write_completed(output_dir: str) -> None:
  """Writes the COMPLETED marker; call it after everything else is written."""
  with _create(FileSystems.join(output_dir, COMPLETED)) as f:
    f.write(b"")


def is_completed(output_dir: str) -> bool:
  return FileSystems.exists(FileSystems.join(output_dir, COMPLETED))


def directory_exists(path: str) -> bool:
  """Whether `path` is a local directory, or a prefix of remote files.

  Object stores such as GCS have no directory objects: `FileSystems.exists`
  is False for every "directory" there, so a remote one exists when some
  file lies under it.
  """
  if FileSystems.get_scheme(path) is None:
    return os.path.isdir(path)
  matched = FileSystems.match([FileSystems.join(path.rstrip("/"), "**")],
                              limits=[1])
  return bool(matched[0].metadata_list)


def dataset_files(output_dir: str) -> list[str]:
  """The files of a (possibly partial) dataset build in `output_dir`."""
  patterns = [FileSystems.join(output_dir, f"*-?????-of-?????{SHARD_SUFFIX}")]
  patterns += [FileSystems.join(output_dir, name)
               for name in (MANIFEST, REJECTED, STATS_PLOT, COMPLETED)]
  return sorted(m.path for result in FileSystems.match(patterns)
                for m in result.metadata_list)


def _has_rejected_parts(output_dir: str) -> bool:
  parts = FileSystems.match(
      [FileSystems.join(output_dir, REJECTED_PARTS_DIR, "*")])[0]
  return bool(parts.metadata_list)


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
    if dataset_files(output_dir) or _has_rejected_parts(output_dir):
      raise FileExistsError(
          f"{output_dir} holds an incomplete dataset (no {COMPLETED} marker: "
          "an earlier build did not finish); pass --overwrite to replace it")
  marker = FileSystems.join(output_dir, COMPLETED)
  if FileSystems.exists(marker):
    FileSystems.delete([marker])
  stale = dataset_files(output_dir)
  if stale:
    FileSystems.delete(stale)
  remove_rejected_parts(output_dir)
  if FileSystems.get_scheme(output_dir) is None:
    os.makedirs(output_dir, exist_ok=True)
