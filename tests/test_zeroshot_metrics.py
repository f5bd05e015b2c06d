"""Tests for eval/zeroshot_metrics.py against hand-computed references."""

import numpy as np
import pytest

from eval import zeroshot_metrics

CLASSES = ("cat", "dog", "fox")


def test_class_embedding_is_the_normalised_mean_of_normalised_prompts():
  rng = np.random.default_rng(0)
  texts = rng.normal(size=(7, 5)).astype(np.float32) * 3
  text_class = [0, 0, 1, 2, 2, 2, 1]
  got = zeroshot_metrics.class_embeddings(texts, text_class, 3)
  unit = texts / np.linalg.norm(texts, axis=1, keepdims=True)
  for c in range(3):
    mean = unit[[i for i, k in enumerate(text_class) if k == c]].mean(axis=0)
    np.testing.assert_allclose(got[c], mean / np.linalg.norm(mean),
                               rtol=1e-6)


def test_synonyms_weigh_by_their_prompts_not_their_length():
  # Class 0 has two synonyms x one template; a long vector counts once.
  texts = np.array([[10.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
  got = zeroshot_metrics.class_embeddings(texts, [0, 0, 1], 2)
  np.testing.assert_allclose(got[0], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)
  np.testing.assert_allclose(got[1], [np.sqrt(0.5), np.sqrt(0.5)], rtol=1e-6)


def test_a_class_without_prompts_is_refused():
  with pytest.raises(ValueError, match="class 1 has no prompt"):
    zeroshot_metrics.class_embeddings(np.ones((2, 3)), [0, 2], 3)


def test_accuracy_confusions_and_ties_by_hand():
  scores = np.array([
      [0.9, 0.1, 0.0],  # cat, right.
      [0.5, 0.5, 0.1],  # cat, tied with dog: wrong, predicted dog, rank 1.
      [0.2, 0.3, 0.1],  # cat, rank 2 (fox last): top-5 hit only.
      [0.0, 0.8, 0.8],  # dog, tied with fox: wrong, predicted fox.
      [0.1, 0.7, 0.2],  # dog, right.
      [0.3, 0.3, 0.3],  # fox, three-way tie: predicted cat (first wrong).
  ])
  labels = np.array([0, 0, 0, 1, 1, 2])
  np.testing.assert_array_equal(
      zeroshot_metrics.true_class_ranks(scores, labels), [0, 1, 1, 1, 0, 2])
  np.testing.assert_array_equal(
      zeroshot_metrics.predictions(scores, labels), [0, 1, 1, 2, 1, 0])
  got = zeroshot_metrics.classification_metrics(scores, labels, CLASSES)
  assert got["top1"] == pytest.approx(2 / 6)
  assert got["top5"] == 1.0  # Three classes: every image within 5.
  assert got["per_class"] == {
      "cat": {"top1": pytest.approx(1 / 3), "num_images": 3},
      "dog": {"top1": 0.5, "num_images": 2},
      "fox": {"top1": 0.0, "num_images": 1}}
  assert got["mean_per_class_top1"] == pytest.approx((1 / 3 + 0.5 + 0) / 3)
  assert got["confusions"] == [
      {"true": "cat", "predicted": "dog", "count": 2,
       "fraction": pytest.approx(2 / 3)},
      {"true": "dog", "predicted": "fox", "count": 1, "fraction": 0.5},
      {"true": "fox", "predicted": "cat", "count": 1, "fraction": 1.0}]
  assert got["num_images"] == 6


def test_top5_counts_five_better_classes_as_a_miss():
  scores = np.array([[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
                     [1.0, 0.9, 0.8, 0.7, 0.5, 0.6, 0.4]])
  got = zeroshot_metrics.classification_metrics(
      scores, np.array([5, 5]), [str(i) for i in range(7)])
  assert (got["top1"], got["top5"]) == (0.0, 0.5)


def test_chance_and_mean_over_languages():
  assert zeroshot_metrics.chance_accuracy(6) == {"top1": pytest.approx(1 / 6),
                                                 "top5": pytest.approx(5 / 6)}
  assert zeroshot_metrics.chance_accuracy(3)["top5"] == 1.0
  mean = zeroshot_metrics.mean_accuracy({
      "en": {"top1": 0.5, "top5": 1.0, "mean_per_class_top1": 0.4},
      "de": {"top1": 0.25, "top5": 0.5, "mean_per_class_top1": 0.2}})
  assert mean == {"top1": 0.375, "top5": 0.75,
                  "mean_per_class_top1": pytest.approx(0.3)}


@pytest.mark.parametrize("labels, message", [
    ([0, 3], r"labels must be in \[0, 3\)"),
    ([0], r"scores have shape \(2, 3\), expected \(1, 3\)"),
])
def test_bad_labels_are_refused(labels, message):
  with pytest.raises(ValueError, match=message):
    zeroshot_metrics.classification_metrics(np.zeros((2, 3)),
                                            np.array(labels), CLASSES)
