"""Grain input pipeline: a dataset directory to training batches of one process.

One function builds the dataset in a fixed order (as in MaxText): source ->
shuffle -> repeat -> shard per process -> map (parse, decode, resize, pad the
tokens) -> batch -> prefetch in worker processes. Every random choice derives
from one seed, so a process's stream of batches is a function of (dataset,
config, seed, process index, process count), and the iterator's state is
checkpointable with `grain.checkpoint`.

A batch is a dict of numpy arrays: "image" float32 [b, H, W, 3] in [-1, 1]
(or float32 [b, D] when the image field is `image/embedding`, for LiT
datasets) and "text" int32 [b, L].
"""

import bisect
from collections.abc import Mapping, Sequence
import concurrent.futures
import dataclasses
import io
import itertools
import signal
from typing import Any

from absl import flags
from array_record.python import array_record_module
import grain
import ml_collections
import numpy as np
from PIL import Image

from dataformat import image_codec
from dataformat import records
from dataformat import shards
from trainer import batch_memory
from vocabularies import vocabulary

IMAGE = "image"
TEXT = "text"

RESIZE = "resize"
RESIZE_BILINEAR = "resize_bilinear"
CENTER_CROP = "center_crop"
RANDOM_CROP = "random_crop"
IMAGE_MODES = (RESIZE, RESIZE_BILINEAR, CENTER_CROP, RANDOM_CROP)
# Smallest random crop side, as a fraction of the image's shorter side.
RANDOM_CROP_MIN_FRACTION = 0.6

# Elements (batches) each process keeps ready ahead of the training step.
_PREFETCH_BATCHES = 2
# Shards opened at once to count their records at start-up.
_OPEN_THREADS = 16


def _train_shards(data_config: ml_collections.ConfigDict) -> list[str]:
  """`shards.dataset_shards` of the configured training dataset and split."""
  if not data_config.train_dir:
    raise ValueError("no training dataset: set data.train_dir "
                     "(--config.data.train_dir=DIR)")
  return shards.dataset_shards(data_config.train_dir, data_config.split)


def _damaged_shard_error(path: str, error: Exception) -> ValueError:
  """The error for a shard that ArrayRecord cannot open or read."""
  reason = (str(error).strip().splitlines() or
            ["not a readable ArrayRecord file (truncated?)"])[0]
  return ValueError(f"dataset shard {path} is damaged: {reason} "
                    "(python -m pipelines.verify checks every shard)")


@dataclasses.dataclass(frozen=True)
class _WholeShard:
  """All records of one shard, as ArrayRecord's `FileInstruction`."""

  filename: str
  examples_in_shard: int
  skip: int = 0

  @property
  def take(self) -> int:
    return self.examples_in_shard


def _count_records(path: str) -> int:
  # A file ArrayRecord cannot parse (e.g. a truncated one) still opens; it is
  # not ok(), reads as empty records and raises only on close.
  try:
    reader = array_record_module.ArrayRecordReader(path)
    try:
      if reader.ok():
        return reader.num_records()
    finally:
      reader.close()
  except RuntimeError as e:
    raise _damaged_shard_error(path, e) from None
  raise _damaged_shard_error(path, RuntimeError())


class ShardSource(grain.sources.RandomAccessDataSource):
  """The records of ArrayRecord shards, in order; errors name the shard.

  A damaged shard (truncated, or with changed bytes: ArrayRecord checks each
  chunk's hash as it reads it) raises a ValueError naming it when it is
  opened or when a record in a damaged chunk is read, instead of ArrayRecord's
  bare RuntimeError (whose message is empty for a truncated file). Checking
  each shard's sha256 from the manifest before training would catch the same
  damage but read the whole dataset first (about 0.6 GB/s per core here).
  """

  def __init__(self, shards: Sequence[str]):
    with concurrent.futures.ThreadPoolExecutor(_OPEN_THREADS) as pool:
      counts = list(pool.map(_count_records, shards))
    self._shards = list(shards)
    self._ends = list(itertools.accumulate(counts))
    self._source = grain.sources.ArrayRecordDataSource(
        [_WholeShard(path, n) for path, n in zip(shards, counts)])

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index) -> bytes:
    try:
      return self._source[index]
    except RuntimeError as e:
      shard = self._shards[bisect.bisect_right(self._ends, int(index))]
      raise _damaged_shard_error(shard, e) from None


def deterministic_image_mode(mode: str) -> str:
  """The preprocessing to evaluate a model trained with `mode`: no random crop."""
  return CENTER_CROP if mode == RANDOM_CROP else mode


# big_vision's value_range(-1, 1) of each byte value, in its order of
# operations: x / 255 * 2 - 1 (the other modes' x * (2 / 255) - 1 differs
# in the last bit for 111 of the 256).
_BIG_VISION_VALUE_RANGE = (np.arange(256, dtype=np.float32) / np.float32(255)
                           * np.float32(2) - np.float32(1))


def _pillow_pixels(encoded: bytes, need: int) -> np.ndarray:
  """RGB pixels by Pillow, JPEGs at a reduced DCT scale like decode_jpeg's
  (none when `need` is 0)."""
  try:
    image = Image.open(io.BytesIO(encoded))
  except Image.UnidentifiedImageError:
    # PIL's message names the stream object, not what is wrong.
    raise ValueError("not a recognised image format") from None
  if need:
    image.draft("RGB", (need, need))
  if image.mode != "RGB":  # Converting an RGB image would only copy it.
    image = image.convert("RGB")
  return np.asarray(image)


def _rgb_pixels(encoded: bytes, need: int, fast_dct: bool) -> np.ndarray:
  """RGB pixels; JPEGs by libjpeg-turbo at the smallest DCT scale keeping
  both sides at least `need` (0: full size), others and those it refuses
  (damaged ones) by Pillow."""
  if image_codec.is_jpeg(encoded):
    try:
      return image_codec.decode_jpeg(encoded, need, need, fast_dct=fast_dct)
    except ValueError:
      pass  # Pillow decodes it or says what is wrong.
  return _pillow_pixels(encoded, need)


def decode_image(encoded: bytes, size: int, mode: str = RESIZE,
                 rng: np.random.Generator | None = None) -> np.ndarray:
  """Decodes image bytes to float32 [size, size, 3] with values in [-1, 1].

  Modes: "resize" squashes the whole image to a square (SigLIP's geometry);
  "center_crop" resizes the shorter side to `size` and takes the central
  square; "random_crop" takes a square of random side (at least
  RANDOM_CROP_MIN_FRACTION of the shorter side) at a random place, drawn from
  `rng`, and resizes it. For these, JPEGs are decoded by libjpeg-turbo at the
  smallest DCT scale M/8 that keeps both sides at least what the output needs
  (the dataset build's decoder, `dataformat.image_codec`), other formats and
  JPEGs it refuses (damaged ones) by Pillow; the square is area-resized.

  "resize_bilinear" squashes the whole image to a square as big_vision's
  `decode|resize(size)|value_range(-1, 1)` does, the preprocessing its
  released checkpoints were trained and evaluated with: JPEGs decoded at full
  size with TensorFlow's default inverse DCT (libjpeg's IFAST), bilinearly
  resized without antialiasing (`tf.image.resize`), truncated to uint8 (the
  op casts back to the decoded image's dtype), then scaled.

  Raises:
    ValueError: if `encoded` is empty or in no format PIL recognises, or
      `mode` is not one of IMAGE_MODES.
    OSError: if the image is truncated or its data is damaged.
  """
  if mode not in IMAGE_MODES:
    raise ValueError(f"image mode must be one of {IMAGE_MODES}, got {mode!r}")
  if not encoded:
    raise ValueError("empty image data")
  if mode == RESIZE_BILINEAR:
    pixels = _rgb_pixels(encoded, 0, fast_dct=True)
    resized = image_codec.resize_bilinear(pixels, size, size)
    # The cast back to uint8 of big_vision's resize truncates; the bilinear
    # weights are convex, so no value is out of range.
    return _BIG_VISION_VALUE_RANGE[resized.astype(np.uint8)]
  need = size if mode != RANDOM_CROP else int(size / RANDOM_CROP_MIN_FRACTION)
  pixels = _rgb_pixels(encoded, need, fast_dct=False)
  height, width = pixels.shape[:2]
  if mode == CENTER_CROP:
    side = min(width, height)
    left, top = (width - side) // 2, (height - side) // 2
    pixels = pixels[top:top + side, left:left + side]
  elif mode == RANDOM_CROP:
    short = min(width, height)
    side = int(rng.integers(int(short * RANDOM_CROP_MIN_FRACTION), short + 1))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    pixels = pixels[top:top + side, left:left + side]
  # Area-resizing float pixels is both exact (no rounding back to uint8) and
  # faster in OpenCV than resizing uint8 ones (BENCHMARKS.md, trainer input).
  resized = image_codec.resize_area(pixels.astype(np.float32), size, size)
  return resized * np.float32(2 / 255) - np.float32(1)


class RecordToExample(grain.transforms.RandomMap):
  """Serialised record -> {"image", "text"} arrays ready for the model."""

  def __init__(self, *, image_field: str, image_size: int, image_mode: str,
               vocab_name: str, text_len: int):
    if image_field not in (records.IMAGE_ENCODED, records.IMAGE_EMBEDDING):
      raise ValueError(
          f"image_field must be {records.IMAGE_ENCODED!r} or "
          f"{records.IMAGE_EMBEDDING!r}, got {image_field!r}")
    if image_mode not in IMAGE_MODES:
      raise ValueError(
          f"image_mode must be one of {IMAGE_MODES}, got {image_mode!r}")
    self._image_field = image_field
    self._image_size = image_size
    self._image_mode = image_mode
    self._vocab_name = vocab_name
    self._text_len = text_len

  def random_map(self, element: bytes, rng: np.random.Generator) -> dict:
    record = records.parse_record(element)
    if self._vocab_name not in record.tokens:
      raise ValueError(
          f"record {record.key!r} has no tokens of vocabulary "
          f"{self._vocab_name!r} (it has {sorted(record.tokens)})")
    if self._image_field == records.IMAGE_EMBEDDING:
      if record.image_embedding is None:
        raise ValueError(f"record {record.key!r} has no image embedding")
      image = record.image_embedding.astype(np.float32)
    else:
      image = decode_image(record.image_encoded, self._image_size,
                           self._image_mode, rng)
    # Padding with EOS (pad_id == eos_id) puts EOS last, where the text tower
    # pools.
    text = vocabulary.pad_or_truncate(
        record.tokens[self._vocab_name], self._text_len, vocabulary.EOS_ID,
        vocabulary.EOS_ID)
    return {IMAGE: image, TEXT: np.asarray(text, np.int32)}


def language_indices(source: Sequence[bytes]) -> dict[str, np.ndarray]:
  """Record indices of `source` grouped by language (one pass over it)."""
  by_lang = {}
  for index in range(len(source)):
    by_lang.setdefault(records.parse_record(source[index]).lang,
                       []).append(index)
  return {lang: np.asarray(indices, np.int64)
          for lang, indices in sorted(by_lang.items())}


class _Subset(grain.sources.RandomAccessDataSource):
  """The records of `source` at `indices`, in that order."""

  def __init__(self, source: Sequence[bytes], indices: np.ndarray):
    self._source = source
    self._indices = indices

  def __len__(self) -> int:
    return len(self._indices)

  def __getitem__(self, index) -> bytes:
    return self._source[int(self._indices[index])]


def _language_mixture(source: Sequence[bytes], lang_weights: Mapping[str,
                                                                     float],
                      seed: int) -> grain.MapDataset:
  """An endless stream drawing languages in proportion to `lang_weights`.

  Each language's records are shuffled and repeated on their own, so a rare
  language with a large weight is revisited more often than a common one.
  Languages not in `lang_weights` (or weighted 0) are left out. Finding each
  record's language reads the whole dataset once at start-up (about 0.2 ms
  per record here).
  """
  by_lang = language_indices(source)
  weights = {lang: float(w) for lang, w in sorted(lang_weights.items())
             if w > 0}
  if not weights:
    raise ValueError("lang_weights has no positive weight")
  missing = sorted(set(weights) - set(by_lang))
  if missing:
    raise ValueError(f"lang_weights names languages with no records: "
                     f"{missing}; the dataset has {sorted(by_lang)}")
  streams = [
      grain.MapDataset.source(_Subset(source, by_lang[lang]))
      .shuffle(seed=(seed + 1 + k) % 2**32).repeat()
      for k, lang in enumerate(weights)
  ]
  return grain.MapDataset.mix(streams, list(weights.values()))


def make_train_dataset(data_config: ml_collections.ConfigDict, *, seed: int,
                       process_index: int = 0,
                       process_count: int = 1) -> grain.MapDataset:
  """The endless, shuffled stream of examples that this process trains on.

  Process `p` of `P` reads elements p, p + P, p + 2P, ... of one global
  stream, so the processes together see every record once per epoch.
  """
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} is not in "
                     f"[0, {process_count})")
  source = ShardSource(_train_shards(data_config))
  lang_weights = data_config.lang_weights
  if lang_weights:
    ds = _language_mixture(source, lang_weights, seed)
  else:
    ds = grain.MapDataset.source(source).shuffle(seed=seed).repeat()
  ds = ds[process_index::process_count]
  return ds.random_map(_record_to_example(data_config), seed=seed)


def _record_to_example(
    data_config: ml_collections.ConfigDict) -> RecordToExample:
  return RecordToExample(
      image_field=data_config.image_field,
      image_size=data_config.image_size,
      image_mode=data_config.image_mode,
      vocab_name=data_config.vocab_name,
      text_len=data_config.text_len)


def example_spec(
    data_config: ml_collections.ConfigDict
) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
  """(shape, dtype) of each field of one example, from the first record."""
  source = ShardSource(_train_shards(data_config))
  example = _record_to_example(data_config).random_map(
      source[0], np.random.default_rng(0))
  return {name: (value.shape, value.dtype) for name, value in example.items()}


def _init_worker(worker_index: int, worker_count: int) -> None:
  """Runs in each worker process before it reads anything."""
  del worker_index, worker_count
  batch_memory.keep_freed_memory()
  # The main process decides when to stop (on SIGTERM it checkpoints first)
  # and then stops its workers; a signal sent to the whole process group
  # must not kill them under it.
  signal.signal(signal.SIGTERM, signal.SIG_IGN)
  signal.signal(signal.SIGINT, signal.SIG_IGN)


# The saved iterator state: the index of the next batch.
NEXT_INDEX = "next_index"


def next_batch_index(state: Mapping[str, Any]) -> int:
  """The index of the next batch in a saved iterator state.

  Besides `_BatchIterator`'s own state, reads the states Grain's iterators
  saved before it: in-process prefetch {"next_index": n}; with N worker
  processes, an interleave state whose workers' next indices add up to n
  (worker i reads batches i, i + N, i + 2N, ...).

  Raises:
    ValueError: for a state of neither kind.
  """
  if NEXT_INDEX in state:
    return int(state[NEXT_INDEX])
  workers = state.get("iterators_in_use_states")
  if workers and all(isinstance(w, Mapping) and NEXT_INDEX in w
                     for w in workers):
    return sum(int(w[NEXT_INDEX]) for w in workers)
  raise ValueError(f"the saved data iterator state has no {NEXT_INDEX!r} "
                   f"(its keys: {sorted(state)}): not a state this trainer "
                   "saved")


class _BatchIterator(grain.DatasetIterator):
  """The batches of a MapDataset from a position, made with `num_workers`.

  Its state is the index of the next batch alone, so a run resumes exactly
  with another worker count: the states of Grain's in-process and
  multi-process iterators differ in shape. (grain.experimental's
  ElasticIterator keeps such a state too, but takes no `worker_init_fn`.)
  """

  def __init__(self, batches: grain.MapDataset, num_workers: int):
    super().__init__()
    self._batches = batches
    self._num_workers = num_workers
    self._next_index = 0
    self._iterator = None  # Started by the first `next`.

  def _start(self) -> grain.DatasetIterator:
    if not self._num_workers:
      batch_memory.keep_freed_memory()
    ds = self._batches[self._next_index:].to_iter_dataset(grain.ReadOptions(
        num_threads=1 if self._num_workers else 2,
        prefetch_buffer_size=_PREFETCH_BATCHES))
    if self._num_workers:
      if not flags.FLAGS.is_parsed():
        # Grain 0.2.18 reads an absl flag when it starts workers
        # (google/grain#1355); programs without absl.app never parse flags.
        flags.FLAGS.mark_as_parsed()
      ds = ds.mp_prefetch(
          grain.MultiprocessingOptions(
              num_workers=self._num_workers,
              per_worker_buffer_size=_PREFETCH_BATCHES),
          worker_init_fn=_init_worker)
    return iter(ds)

  def __next__(self) -> dict[str, np.ndarray]:
    self._assert_not_closed()
    if self._iterator is None:
      self._iterator = self._start()
    batch = next(self._iterator)
    self._next_index += 1
    return batch

  def get_state(self) -> dict[str, int]:
    return {NEXT_INDEX: self._next_index}

  def set_state(self, state: Mapping[str, Any]) -> None:
    self._next_index = next_batch_index(state)
    self._stop()

  def _stop(self) -> None:
    if self._iterator is not None:
      self._iterator.close()
      self._iterator = None

  def close(self) -> None:
    self._stop()
    super().close()


def make_train_iterator(data_config: ml_collections.ConfigDict,
                        batch_size_per_process: int, seed: int,
                        process_index: int = 0,
                        process_count: int = 1) -> grain.DatasetIterator:
  """A checkpointable iterator over this process's training batches.

  With `data_config.num_workers` > 0, batches are made in that many worker
  processes (`mp_prefetch`); with 0, in threads of this process. The batches
  are the same either way, and a state saved with one worker count restores
  with any other. The processes making batches keep freed memory for reuse
  (`batch_memory.keep_freed_memory`); in this process, a batch's arrays are
  reused once nothing refers to them any more (`batch_memory.PooledStack`).
  """
  if batch_size_per_process <= 0:
    raise ValueError(
        f"batch size per process must be positive, got {batch_size_per_process}")
  ds = make_train_dataset(data_config, seed=seed, process_index=process_index,
                          process_count=process_count)
  # Batching before the worker split makes each worker build whole batches of
  # the one global order, so the output does not depend on num_workers.
  # Worker processes stack into shared memory (Grain's own batching), whose
  # segments cannot be reused.
  batch_fn = None if data_config.num_workers else batch_memory.PooledStack()
  return _BatchIterator(
      ds.batch(batch_size_per_process, drop_remainder=True, batch_fn=batch_fn),
      data_config.num_workers)
