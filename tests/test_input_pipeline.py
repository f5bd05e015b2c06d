"""Tests for trainer.input_pipeline."""

import collections
import io
import json
import os
import shutil

import grain
import ml_collections
import numpy as np
from PIL import Image
import pytest

from dataformat import records
from dataformat import shards
from tests.fixtures import faults
from tests.fixtures import photos
from tests.fixtures import records as synthetic
from vocabularies import vocabulary
from trainer import configs
from trainer import input_pipeline

NUM_RECORDS = 64


def data_config(train_dir, **overrides) -> ml_collections.ConfigDict:
  config = configs.base_config().data
  config.update(dict(train_dir=str(train_dir),
                     vocab_name=synthetic.VOCAB_NAME, text_len=6,
                     image_size=16))
  config.update(overrides)
  return config


def take(iterator, n):
  return [next(iterator) for _ in range(n)]


def record_indices(batches) -> list[int]:
  return [synthetic.index_of_tokens(text)
          for batch in batches for text in batch[input_pipeline.TEXT]]


def test_batches_have_the_model_input_shapes_and_ranges(records_dataset):
  iterator = input_pipeline.make_train_iterator(
      data_config(records_dataset), 8, seed=0)
  batch = next(iterator)
  assert set(batch) == {input_pipeline.IMAGE, input_pipeline.TEXT}
  image, text = batch[input_pipeline.IMAGE], batch[input_pipeline.TEXT]
  assert image.shape == (8, 16, 16, 3) and image.dtype == np.float32
  assert -1.0 <= image.min() < 0.0 < image.max() <= 1.0
  assert text.shape == (8, 6) and text.dtype == np.int32
  # Four stored ids (the last EOS), padded with EOS to the text length.
  np.testing.assert_array_equal(text[:, 3:], vocabulary.EOS_ID)
  assert (text[:, :3] != vocabulary.EOS_ID).all()


def test_texts_longer_than_text_len_keep_eos_last(records_dataset):
  iterator = input_pipeline.make_train_iterator(
      data_config(records_dataset, text_len=2), 4, seed=0)
  text = next(iterator)[input_pipeline.TEXT]
  np.testing.assert_array_equal(text[:, 1], vocabulary.EOS_ID)


def test_decoded_image_shows_the_coloured_square():
  red = synthetic.COLOURS["red"]
  encoded = synthetic.jpeg_square(red, 64, 96)
  for mode in (input_pipeline.RESIZE, input_pipeline.CENTER_CROP):
    image = input_pipeline.decode_image(encoded, 32, mode)
    assert image.shape == (32, 32, 3)
    centre = (image[16, 16] + 1) * 255 / 2
    np.testing.assert_allclose(centre, red, atol=12)
    corner = (image[0, 0] + 1) * 255 / 2
    np.testing.assert_allclose(corner, 128, atol=12)


@pytest.mark.parametrize("data, message", [
    (b"", "empty image data"),
    (b"<html>not found</html>", "not a recognised image format"),
])
def test_undecodable_images_say_what_is_wrong(data, message):
  with pytest.raises(ValueError) as raised:
    input_pipeline.decode_image(data, 16)
  assert str(raised.value) == message


def test_center_crop_keeps_aspect_and_resize_squashes():
  # A 40x80 image whose left half is black and right half white.
  pixels = np.zeros((40, 80, 3), np.uint8)
  pixels[:, 40:] = 255
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="PNG")
  squashed = input_pipeline.decode_image(out.getvalue(), 20,
                                         input_pipeline.RESIZE)
  cropped = input_pipeline.decode_image(out.getvalue(), 20,
                                        input_pipeline.CENTER_CROP)
  # Squashed: half the columns black. Cropped: the central 40x40 square,
  # again half and half, but from columns 20..60 of the original.
  assert squashed[:, 2].max() < -0.9 and squashed[:, 17].min() > 0.9
  assert cropped[:, 2].max() < -0.9 and cropped[:, 17].min() > 0.9
  wide = np.zeros((40, 80, 3), np.uint8)
  wide[:, :10] = 255  # White only in the part the centre crop drops.
  out = io.BytesIO()
  Image.fromarray(wide).save(out, format="PNG")
  assert input_pipeline.decode_image(
      out.getvalue(), 20, input_pipeline.CENTER_CROP).max() < -0.9
  assert input_pipeline.decode_image(
      out.getvalue(), 20, input_pipeline.RESIZE).max() > 0.9


def test_resize_is_the_exact_area_mean_without_rounding():
  # A 2x reduction of a lossless image: each output pixel is the plain mean of
  # a 2x2 block, computed here in float64 and never rounded to a grey level.
  pixels = np.random.default_rng(0).integers(0, 256, (48, 48, 3), np.uint8)
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="PNG")
  image = input_pipeline.decode_image(out.getvalue(), 24)
  blocks = pixels.astype(np.float64).reshape(24, 2, 24, 2, 3).mean((1, 3))
  np.testing.assert_allclose(image, blocks / 127.5 - 1, rtol=0, atol=1e-6)
  # Block means of four bytes fall on quarter grey levels, which uint8
  # output could not hold.
  assert np.any((blocks % 1) != 0)


def big_vision_preprocess(tf, encoded: bytes, size: int) -> np.ndarray:
  """big_vision's `decode|resize(size)|value_range(-1, 1)`, op by op.

  The TensorFlow calls of `pp/ops_image.py` (`get_decode`, `get_resize` with
  its defaults method="bilinear", antialias=False) and `pp/ops_general.py`
  (`get_value_range`).
  """
  image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
  resized = tf.image.resize(image, [size, size], method="bilinear",
                            antialias=False)
  # get_resize returns the input's dtype: clipped, then cast (truncated).
  image = tf.cast(tf.clip_by_value(resized, 0, 255), image.dtype)
  image = (tf.cast(image, tf.float32) - 0.0) / (255.0 - 0.0)
  return (-1 + image * (1 - (-1))).numpy()


@pytest.mark.parametrize("path", photos.JPEGS + photos.PNGS,
                         ids=os.path.basename)
def test_resize_bilinear_is_big_vision_preprocessing(path):
  tf = pytest.importorskip("tensorflow")
  encoded = photos.read(path)
  for size in (224, 384):
    image = input_pipeline.decode_image(encoded, size,
                                        input_pipeline.RESIZE_BILINEAR)
    assert image.shape == (size, size, 3) and image.dtype == np.float32
    # Equal on every image and size here: the same pixels decoded, the same
    # float32 resize, the same truncation. A last-bit difference in the
    # resize (another TensorFlow build) could carry a value across an
    # integer, and so change its truncated byte by one level, 2/255, at a
    # rare pixel; never more.
    difference = np.abs(image - big_vision_preprocess(tf, encoded, size))
    one_level = np.abs(difference - 2 / 255) < 1e-6
    assert np.all((difference < 1e-6) | one_level)
    assert one_level.mean() <= 1e-3


def test_resize_bilinear_decodes_pillows_jpegs_at_full_size():
  # Stripes one row high, which a reduced DCT scale would average away.
  pixels = np.zeros((64, 96, 3), np.uint8)
  pixels[::2] = 255
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, format="JPEG", quality=95)
  # Two stray bytes before a marker: libjpeg-turbo's warning makes the strict
  # decoder refuse the file, and Pillow decodes it.
  start_of_scan = out.getvalue().index(b"\xff\xda")
  damaged = (out.getvalue()[:start_of_scan] + b"\0\0" +
             out.getvalue()[start_of_scan:])
  png = io.BytesIO()
  Image.open(io.BytesIO(damaged)).convert("RGB").save(png, format="PNG")
  mode = input_pipeline.RESIZE_BILINEAR
  np.testing.assert_array_equal(
      input_pipeline.decode_image(damaged, 24, mode),
      input_pipeline.decode_image(png.getvalue(), 24, mode))


def test_an_unknown_image_mode_is_refused():
  encoded = synthetic.jpeg_square(synthetic.COLOURS["red"], 16, 16)
  with pytest.raises(ValueError, match="image mode must be one of .*'zoom'"):
    input_pipeline.decode_image(encoded, 16, "zoom")


def test_random_crop_follows_its_rng():
  encoded = synthetic.jpeg_square(synthetic.COLOURS["blue"], 64, 96)

  def crop(seed):
    return input_pipeline.decode_image(encoded, 24, input_pipeline.RANDOM_CROP,
                                       np.random.default_rng(seed))

  np.testing.assert_array_equal(crop(1), crop(1))
  assert any(not np.array_equal(crop(1), crop(s)) for s in range(2, 6))


def test_same_seed_same_batches_other_seed_other_order(records_dataset):
  config = data_config(records_dataset)

  def first_batches(seed):
    return take(input_pipeline.make_train_iterator(config, 8, seed), 3)

  first, again = first_batches(3), first_batches(3)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a[input_pipeline.IMAGE],
                                  b[input_pipeline.IMAGE])
    np.testing.assert_array_equal(a[input_pipeline.TEXT],
                                  b[input_pipeline.TEXT])
  assert record_indices(first) != record_indices(first_batches(4))


def test_each_epoch_visits_every_record_once_in_a_new_order(records_dataset):
  iterator = input_pipeline.make_train_iterator(
      data_config(records_dataset), 16, seed=0)
  per_epoch = NUM_RECORDS // 16
  epoch1 = record_indices(take(iterator, per_epoch))
  epoch2 = record_indices(take(iterator, per_epoch))
  assert sorted(epoch1) == sorted(epoch2) == list(range(NUM_RECORDS))
  assert epoch1 != epoch2 and epoch1 != sorted(epoch1)


def test_processes_read_disjoint_halves_of_each_epoch(records_dataset):
  config = data_config(records_dataset)
  halves = [
      record_indices(take(input_pipeline.make_train_iterator(
          config, 8, seed=0, process_index=p, process_count=2), 4))
      for p in range(2)
  ]
  assert not set(halves[0]) & set(halves[1])
  assert sorted(halves[0] + halves[1]) == list(range(NUM_RECORDS))


def test_restored_iterator_state_continues_the_stream(records_dataset):
  config = data_config(records_dataset)
  iterator = input_pipeline.make_train_iterator(config, 8, seed=0)
  take(iterator, 5)  # Past the first epoch (8 batches of 8 = 64).
  state = iterator.get_state()
  expected = record_indices(take(iterator, 6))
  resumed = input_pipeline.make_train_iterator(config, 8, seed=0)
  resumed.set_state(state)
  assert record_indices(take(resumed, 6)) == expected


def test_language_weights_set_the_language_mix(records_dataset):
  # The dataset is half English; weights 1:1 between en and ja make ja as
  # frequent as en, and drop de and fr.
  config = data_config(records_dataset, lang_weights={"en": 1.0, "ja": 1.0,
                                                      "de": 0.0})
  texts = [text for batch in take(
      input_pipeline.make_train_iterator(config, 16, seed=0), 4)
           for text in batch[input_pipeline.TEXT]]
  counts = collections.Counter(synthetic.lang_of_tokens(t) for t in texts)
  assert counts == {"en": 32, "ja": 32}
  # ja has 8 records: each is seen 4 times in 32 draws.
  ja = collections.Counter(synthetic.index_of_tokens(t) for t in texts
                           if synthetic.lang_of_tokens(t) == "ja")
  assert sorted(ja.values()) == [4] * 8


def test_language_weights_naming_absent_languages_fail(records_dataset):
  config = data_config(records_dataset, lang_weights={"en": 1.0, "sw": 2.0})
  with pytest.raises(ValueError, match="sw"):
    input_pipeline.make_train_iterator(config, 8, seed=0)


def test_lit_datasets_yield_image_embeddings(lit_records_dataset):
  config = data_config(lit_records_dataset,
                       image_field=records.IMAGE_EMBEDDING)
  batch = next(input_pipeline.make_train_iterator(config, 4, seed=0))
  image = batch[input_pipeline.IMAGE]
  assert image.shape == (4, 16) and image.dtype == np.float32
  np.testing.assert_array_equal(image.sum(axis=1), 1.0)


@pytest.mark.parametrize("override, message", [
    (dict(vocab_name="mc4"), "no tokens of vocabulary 'mc4'"),
    (dict(image_mode="zoom"), "image_mode"),
    (dict(image_field="image/png"), "image_field"),
])
def test_bad_data_configs_fail_with_a_clear_message(records_dataset, override,
                                                    message):
  config = data_config(records_dataset, **override)
  with pytest.raises(ValueError, match=message):
    next(input_pipeline.make_train_iterator(config, 4, seed=0))


def test_incomplete_or_missing_datasets_are_refused(records_dataset,
                                                    tmp_path):
  with pytest.raises(ValueError, match="does not exist"):
    shards.dataset_shards(tmp_path / "nothing", "train")
  incomplete = tmp_path / "incomplete"
  shutil.copytree(records_dataset, incomplete)
  (incomplete / "COMPLETED").unlink()
  with pytest.raises(ValueError, match="COMPLETED"):
    shards.dataset_shards(incomplete, "train")
  with pytest.raises(ValueError, match="no 'validation' shards"):
    shards.dataset_shards(records_dataset, "validation")


@pytest.mark.parametrize("num_workers", [
    0, pytest.param(2, marks=pytest.mark.slow)])
@pytest.mark.parametrize("damage", [faults.TRUNCATED, faults.FLIPPED])
def test_a_damaged_shard_is_named_instead_of_read(records_dataset, tmp_path,
                                                   damage, num_workers):
  dataset = shutil.copytree(records_dataset, tmp_path / "dataset")
  shard = dataset / "train-00001-of-00002.array_record"
  faults.damage_shard(shard, damage)
  config = data_config(dataset, num_workers=num_workers)
  with pytest.raises(ValueError) as raised:
    iterator = input_pipeline.make_train_iterator(config, 4, seed=0)
    try:
      take(iterator, 2 * NUM_RECORDS // 4)  # Two epochs: every record.
    finally:
      iterator.close()
  message = str(raised.value)
  assert message.startswith(f"dataset shard {shard} is damaged: ")
  assert message.endswith("(python -m pipelines.verify checks every shard)")
  assert "\n" not in message
  if damage == faults.TRUNCATED:
    assert "not a readable ArrayRecord file" in message
  else:
    assert "hash mismatch" in message


@pytest.mark.slow
def test_worker_processes_give_the_same_batches_and_resume(records_dataset):
  in_process = input_pipeline.make_train_iterator(
      data_config(records_dataset), 8, seed=0)
  expected = take(in_process, 10)
  workers = input_pipeline.make_train_iterator(
      data_config(records_dataset, num_workers=2), 8, seed=0)
  try:
    got = take(workers, 4)
    state = workers.get_state()
  finally:
    workers.close()
  for a, b in zip(expected, got):
    np.testing.assert_array_equal(a[input_pipeline.IMAGE],
                                  b[input_pipeline.IMAGE])
  # The state restores with any worker count.
  assert state == {input_pipeline.NEXT_INDEX: 4}
  for num_workers in (0, 1, 2):
    resumed = input_pipeline.make_train_iterator(
        data_config(records_dataset, num_workers=num_workers), 8, seed=0)
    try:
      resumed.set_state(state)
      assert record_indices(take(resumed, 6)) == record_indices(expected[4:])
    finally:
      resumed.close()


@pytest.mark.slow
@pytest.mark.parametrize("num_workers", [0, 2])
def test_states_of_grains_own_iterators_restore(records_dataset, num_workers):
  # Checkpoints saved before the iterator kept its own state hold Grain's:
  # a different shape with worker processes than without.
  config = data_config(records_dataset)
  expected = take(input_pipeline.make_train_iterator(config, 8, seed=0), 10)
  ds = (input_pipeline.make_train_dataset(config, seed=0)
        .batch(8, drop_remainder=True).to_iter_dataset())
  if num_workers:
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
  grains = iter(ds)
  try:
    take(grains, 5)
    state = json.loads(json.dumps(grains.get_state()))
  finally:
    grains.close()
  assert input_pipeline.next_batch_index(state) == 5
  resumed = input_pipeline.make_train_iterator(config, 8, seed=0)
  resumed.set_state(state)
  assert record_indices(take(resumed, 5)) == record_indices(expected[5:])


def test_a_state_of_another_iterator_is_refused():
  with pytest.raises(ValueError, match=r"the saved data iterator state has "
                     r"no 'next_index' \(its keys: \['position'\]\)"):
    input_pipeline.next_batch_index({"position": 3})


def test_example_spec_gives_the_shapes_of_one_example(records_dataset,
                                                       lit_records_dataset):
  assert input_pipeline.example_spec(data_config(records_dataset)) == {
      input_pipeline.IMAGE: ((16, 16, 3), np.float32),
      input_pipeline.TEXT: ((6,), np.int32)}
  lit = data_config(lit_records_dataset, image_field=records.IMAGE_EMBEDDING,
                    lang_weights={"en": 1.0})
  assert input_pipeline.example_spec(lit)[input_pipeline.IMAGE] == (
      (16,), np.float32)
