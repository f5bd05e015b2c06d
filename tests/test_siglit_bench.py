"""The SigLiT benchmark compares like with like: twin configs and datasets."""

import ml_collections
import numpy as np
import pytest

from benchmarks import siglit_bench
from trainer import configs
from trainer import input_pipeline

PAIRS = siglit_bench.make_pairs(b16_depth=2, b16_batch=16)


def _without_image_side(config: ml_collections.ConfigDict) -> dict:
  flat = config.to_dict()
  del flat["data"]["image_field"]
  del flat["model"]["image"]
  del flat["model"]["out_dim"]
  return flat


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_pair_differs_only_in_the_image_side(name):
  pair = PAIRS[name]
  assert _without_image_side(pair.siglit) == _without_image_side(pair.siglip)
  assert pair.siglit.model.image is None
  assert pair.siglip.model.image is not None


def test_datasets_hold_the_same_texts_with_jpegs_or_embeddings(tmp_path):
  pair = PAIRS["demo"]
  dirs = siglit_bench.write_datasets(tmp_path, pair)
  examples = []
  for config, train_dir in zip((pair.siglip, pair.siglit), dirs):
    data = ml_collections.ConfigDict(config.data.to_dict())
    data.train_dir, data.vocab_name = train_dir, siglit_bench.VOCAB
    examples.append(input_pipeline.make_train_dataset(data, seed=0)[:8])
  for with_jpeg, with_embedding in zip(*examples):
    np.testing.assert_array_equal(with_jpeg[input_pipeline.TEXT],
                                  with_embedding[input_pipeline.TEXT])
    assert with_jpeg[input_pipeline.IMAGE].shape == (64, 64, 3)
    embedding = with_embedding[input_pipeline.IMAGE]
    assert embedding.shape == (pair.siglit.model.out_dim[1],)
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)


def test_first_batch_forever_repeats_the_first_batch(records_dataset):
  data = configs.base_config().data
  data.update(dict(train_dir=str(records_dataset), vocab_name="synthetic",
                   text_len=8, image_size=32))
  parent = input_pipeline.make_train_iterator(data, 4, seed=0)
  fixed = siglit_bench.FirstBatchForever(parent)
  first = next(fixed)
  assert next(fixed) is first
  assert fixed.get_state() == parent.get_state()
  fixed.close()
