"""Tests for eval.retrieval_metrics."""

import itertools

import numpy as np
import pytest

from eval import retrieval_metrics as rm


def reference_i2t_ranks(similarity, caption_image):
  """Sorts each image's captions, wrong ones first among equals."""
  ranks = []
  for image in range(similarity.shape[0]):
    if image not in caption_image:
      continue
    order = sorted(range(similarity.shape[1]),
                   key=lambda c: (-similarity[image, c],
                                  caption_image[c] == image))
    ranks.append(next(position for position, c in enumerate(order)
                      if caption_image[c] == image))
  return np.asarray(ranks)


def reference_t2i_ranks(similarity, caption_image):
  """Sorts the images for each caption, wrong ones first among equals."""
  ranks = []
  for caption, target in enumerate(caption_image):
    order = sorted(range(similarity.shape[0]),
                   key=lambda i: (-similarity[i, caption], i == target))
    ranks.append(order.index(target))
  return np.asarray(ranks)


def random_case(seed):
  """A small problem with many ties and some images without captions."""
  rng = np.random.default_rng(seed)
  num_images = int(rng.integers(1, 8))
  caption_image = rng.integers(0, num_images, int(rng.integers(1, 15)))
  if seed % 2:
    similarity = rng.integers(0, 3, (num_images, caption_image.size))
    similarity = similarity.astype(np.float32)
  else:
    similarity = rng.normal(size=(num_images, caption_image.size))
  return similarity, caption_image


# Several captions per image: image 0 has captions 0 and 1, image 1 has 2,
# image 2 has 3 and 4.
SEVERAL_SIM = np.array([[9, 1, 8, 3, 2],
                        [5, 4, 3, 6, 1],
                        [2, 7, 0, 1, 6]], np.float32) / 10
SEVERAL_CAPTION_IMAGE = np.array([0, 0, 1, 2, 2])


def test_several_captions_per_image_by_hand():
  # Image 1's caption (0.3) is beaten by 0.5, 0.4, 0.6; image 2's best
  # (0.6) ties with nothing and is beaten by 0.7.
  np.testing.assert_array_equal(
      rm.image_to_text_ranks(SEVERAL_SIM, SEVERAL_CAPTION_IMAGE), [0, 3, 1])
  np.testing.assert_array_equal(
      rm.text_to_image_ranks(SEVERAL_SIM, SEVERAL_CAPTION_IMAGE),
      [0, 2, 1, 2, 0])
  recalls = rm.retrieval_recalls(SEVERAL_SIM, SEVERAL_CAPTION_IMAGE,
                                 ks=(1, 2, 3))
  assert recalls == {
      "i2t": {"r1": pytest.approx(1 / 3), "r2": pytest.approx(2 / 3),
              "r3": pytest.approx(2 / 3)},
      "t2i": {"r1": pytest.approx(2 / 5), "r2": pytest.approx(3 / 5),
              "r3": 1.0}}


def test_ties_count_against_the_query():
  similarity = np.array([[5, 5, 2],
                         [5, 5, 5]], np.float32)
  caption_image = np.array([0, 1, 1])
  # Image 0 ties with image 1's caption 1; image 1's best ties with
  # caption 0; captions 0 and 1 tie with the other image.
  np.testing.assert_array_equal(
      rm.image_to_text_ranks(similarity, caption_image), [1, 1])
  np.testing.assert_array_equal(
      rm.text_to_image_ranks(similarity, caption_image), [1, 1, 0])


def test_constant_similarity_never_hits_at_one():
  caption_image = np.array([0, 0, 1, 2, 2, 2])
  similarity = np.zeros((3, 6))
  np.testing.assert_array_equal(
      rm.image_to_text_ranks(similarity, caption_image), [4, 5, 3])
  np.testing.assert_array_equal(
      rm.text_to_image_ranks(similarity, caption_image), [2] * 6)
  recalls = rm.retrieval_recalls(similarity, caption_image)
  assert recalls["i2t"]["r1"] == recalls["t2i"]["r1"] == 0.0
  assert recalls["i2t"]["r10"] == recalls["t2i"]["r10"] == 1.0


def test_one_caption_per_image_by_hand():
  similarity = np.array([[3, 1, 2],
                         [1, 2, 3],
                         [2, 3, 1]], np.float32)
  caption_image = np.arange(3)
  np.testing.assert_array_equal(
      rm.image_to_text_ranks(similarity, caption_image), [0, 1, 2])
  np.testing.assert_array_equal(
      rm.text_to_image_ranks(similarity, caption_image), [0, 1, 2])
  recalls = rm.retrieval_recalls(similarity, caption_image, ks=(1, 2))
  assert recalls["i2t"] == recalls["t2i"] == {
      "r1": pytest.approx(1 / 3), "r2": pytest.approx(2 / 3)}


def test_one_caption_per_image_directions_are_transposes():
  rng = np.random.default_rng(0)
  similarity = rng.integers(0, 4, (9, 9)).astype(np.float64)
  identity = np.arange(9)
  np.testing.assert_array_equal(
      rm.image_to_text_ranks(similarity, identity),
      rm.text_to_image_ranks(similarity.T, identity))


def test_oracle_similarity_is_perfect():
  caption_image = np.array([2, 0, 1, 1, 0, 2, 2])
  oracle = (caption_image[None, :] == np.arange(3)[:, None]).astype(float)
  assert rm.retrieval_recalls(oracle, caption_image) == {
      "i2t": {"r1": 1.0, "r5": 1.0, "r10": 1.0},
      "t2i": {"r1": 1.0, "r5": 1.0, "r10": 1.0}}


@pytest.mark.parametrize("seed", range(60))
def test_matches_brute_force_reference(seed):
  similarity, caption_image = random_case(seed)
  i2t = rm.image_to_text_ranks(similarity, caption_image)
  t2i = rm.text_to_image_ranks(similarity, caption_image)
  np.testing.assert_array_equal(
      i2t, reference_i2t_ranks(similarity, caption_image))
  np.testing.assert_array_equal(
      t2i, reference_t2i_ranks(similarity, caption_image))
  ks = range(1, similarity.shape[1] + 2)
  recalls = rm.retrieval_recalls(similarity, caption_image, ks=ks)
  for k in ks:
    assert recalls["i2t"][f"r{k}"] == np.mean(i2t < k)
    assert recalls["t2i"][f"r{k}"] == np.mean(t2i < k)


@pytest.mark.parametrize("seed", range(10))
def test_independent_of_image_and_caption_order(seed):
  similarity, caption_image = random_case(seed)
  rng = np.random.default_rng(seed + 100)
  image_order = rng.permutation(similarity.shape[0])
  caption_order = rng.permutation(similarity.shape[1])
  new_index = np.argsort(image_order)
  shuffled = similarity[image_order][:, caption_order]
  shuffled_caption_image = new_index[caption_image[caption_order]]
  assert (rm.retrieval_recalls(shuffled, shuffled_caption_image) ==
          rm.retrieval_recalls(similarity, caption_image))


def test_images_without_captions_are_candidates_not_queries():
  # Image 1 has no caption: it is no image->text query, but it still
  # outranks image 0 for caption 0.
  similarity = np.array([[0.5, 0.9],
                         [0.7, 0.1],
                         [0.0, 0.8]])
  caption_image = np.array([0, 2])
  np.testing.assert_array_equal(
      rm.image_to_text_ranks(similarity, caption_image), [1, 0])
  np.testing.assert_array_equal(
      rm.text_to_image_ranks(similarity, caption_image), [1, 1])


def test_chance_levels_match_enumerating_every_ranking():
  caption_image = np.array([0, 0, 1, 2, 2, 2])
  num_captions = caption_image.size
  hits = {k: [] for k in (1, 2, 4)}
  for order in itertools.permutations(range(num_captions)):
    for image in range(3):
      for k in hits:
        hits[k].append(any(caption_image[c] == image for c in order[:k]))
  chance = rm.chance_recalls(3, caption_image, ks=(1, 2, 4))
  for k, values in hits.items():
    assert chance["i2t"][f"r{k}"] == pytest.approx(np.mean(values))
  assert chance["t2i"] == {"r1": pytest.approx(1 / 3),
                           "r2": pytest.approx(2 / 3), "r4": 1.0}


def test_chance_for_one_caption_per_image_is_k_over_n():
  chance = rm.chance_recalls(50, np.arange(50))
  assert chance["i2t"] == chance["t2i"]
  assert chance["t2i"] == pytest.approx({"r1": 0.02, "r5": 0.1, "r10": 0.2})


def test_mean_is_the_plain_mean_over_languages():
  per_language = {
      "de": {"i2t": {"r1": 0.2}, "t2i": {"r1": 0.4}, "num_images": 3},
      "en": {"i2t": {"r1": 0.6}, "t2i": {"r1": 0.0}, "num_images": 9},
  }
  assert rm.mean_recalls(per_language) == {
      "i2t": {"r1": pytest.approx(0.4)}, "t2i": {"r1": pytest.approx(0.2)}}


@pytest.mark.parametrize("similarity, caption_image, message", [
    (np.zeros(3), np.zeros(3, int), "similarity must be"),
    (np.zeros((2, 3)), np.zeros(2, int), "caption_image must have shape"),
    (np.zeros((2, 3)), np.zeros(3), "must hold integers"),
    (np.zeros((2, 3)), np.array([0, 1, 2]), r"must be in \[0, 2\)"),
    (np.array([[0.0, np.nan]]), np.array([0, 0]), "non-finite"),
])
def test_bad_inputs_are_rejected(similarity, caption_image, message):
  with pytest.raises(ValueError, match=message):
    rm.retrieval_recalls(similarity, caption_image)


def test_recall_needs_queries_and_positive_k():
  with pytest.raises(ValueError, match="at least one query"):
    rm.recall_at_k(np.array([], int), 1)
  with pytest.raises(ValueError, match="k must be positive"):
    rm.recall_at_k(np.array([0]), 0)
