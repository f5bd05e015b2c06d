"""Zero-shot classification math: class embeddings, top-k, confusions.

Pure numpy on embeddings, so each number can be checked by hand.

Ties count against the image: a wrong class scoring exactly as high as the
true class ranks before it (as `eval.retrieval_metrics` ranks ties against
the query). The predicted class is the first (lowest index) wrong class
among the best-scoring ones when the true class shares the top score, else
the best-scoring class.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

KS = (1, 5)
TOP1, TOP5 = "top1", "top5"


def topk_key(k: int) -> str:
  """"top1" for k = 1."""
  return f"top{k}"


def l2_normalize(x: np.ndarray) -> np.ndarray:
  """Rows of `x` scaled to unit length (zero rows stay zero)."""
  norms = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.where(norms == 0, 1, norms)


def class_embeddings(text_embeddings: np.ndarray,
                     text_class: Sequence[int] | np.ndarray,
                     num_classes: int) -> np.ndarray:
  """[num_classes, dim] class embeddings from prompt embeddings.

  Each class embedding is the L2-normalised mean of the L2-normalised
  embeddings of its prompts (every template with every synonym).

  Args:
    text_embeddings: [num_texts, dim] prompt embeddings.
    text_class: the class of each prompt.
    num_classes: the number of classes.

  Raises:
    ValueError: if a class has no prompt or a prompt's class is out of range.
  """
  text_class = np.asarray(text_class, np.int64)
  if len(text_class) != len(text_embeddings):
    raise ValueError(f"{len(text_embeddings)} prompt embeddings but "
                     f"{len(text_class)} prompt classes")
  if len(text_class) and (text_class.min() < 0 or
                          text_class.max() >= num_classes):
    raise ValueError(f"prompt classes must be in [0, {num_classes})")
  counts = np.bincount(text_class, minlength=num_classes)
  if (counts == 0).any():
    raise ValueError(f"class {int(np.argmin(counts))} has no prompt")
  sums = np.zeros((num_classes, text_embeddings.shape[1]), np.float64)
  np.add.at(sums, text_class, l2_normalize(
      np.asarray(text_embeddings, np.float64)))
  return l2_normalize(sums / counts[:, None]).astype(np.float32)


def true_class_ranks(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """0-based rank of each image's true class, ties against it.

  Args:
    scores: [num_images, num_classes] image-class similarities.
    labels: [num_images] the true class of each image.
  """
  labels = np.asarray(labels, np.int64)
  true = scores[np.arange(len(labels)), labels][:, None]
  beats = scores >= true
  beats[np.arange(len(labels)), labels] = False
  return beats.sum(axis=1)


def predictions(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """Each image's predicted class under the module's tie rule."""
  labels = np.asarray(labels, np.int64)
  rows = np.arange(len(labels))
  wrong = scores.copy()
  wrong[rows, labels] = -np.inf
  best_wrong = np.argmax(wrong, axis=1)
  true_wins = scores[rows, labels] > wrong[rows, best_wrong]
  return np.where(true_wins, labels, best_wrong)


def classification_metrics(scores: np.ndarray, labels: np.ndarray,
                           class_names: Sequence[str],
                           num_confusions: int = 10) -> dict[str, Any]:
  """Top-1/top-5 accuracy, per-class accuracy and the top confusions.

  Args:
    scores: [num_images, num_classes] image-class similarities.
    labels: [num_images] the true class of each image.
    class_names: one name per class (the keys of "per_class").
    num_confusions: how many (true, predicted) pairs to list.

  Returns:
    {"top1", "top5": fractions of images; "mean_per_class_top1": the mean
    of the per-class top-1 accuracies; "per_class": {name: {"top1",
    "num_images"}}; "confusions": the most frequent wrong (true, predicted)
    pairs as [{"true", "predicted", "count", "fraction"}] (fraction of the
    true class's images), most frequent first, ties by class order;
    "num_images"}.

  Raises:
    ValueError: on mismatched shapes or labels outside the classes.
  """
  scores = np.asarray(scores)
  labels = np.asarray(labels, np.int64)
  num_classes = len(class_names)
  if scores.ndim != 2 or scores.shape != (len(labels), num_classes):
    raise ValueError(f"scores have shape {scores.shape}, expected "
                     f"({len(labels)}, {num_classes})")
  if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
    raise ValueError(f"labels must be in [0, {num_classes})")
  ranks = true_class_ranks(scores, labels)
  predicted = predictions(scores, labels)
  counts = np.bincount(labels, minlength=num_classes)
  hits = np.bincount(labels, weights=ranks == 0, minlength=num_classes)
  per_class_top1 = np.divide(hits, counts, out=np.zeros(num_classes),
                             where=counts > 0)
  confusion = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(confusion, (labels, predicted), 1)
  np.fill_diagonal(confusion, 0)
  pairs = sorted(((int(confusion[t, p]), t, p)
                  for t, p in zip(*np.nonzero(confusion))),
                 key=lambda item: (-item[0], item[1], item[2]))
  return {
      **{topk_key(k): float(np.mean(ranks < k)) if len(labels) else 0.0
         for k in KS},
      "mean_per_class_top1": float(np.mean(per_class_top1[counts > 0]))
                             if counts.any() else 0.0,
      "per_class": {name: {TOP1: float(per_class_top1[i]),
                           "num_images": int(counts[i])}
                    for i, name in enumerate(class_names)},
      "confusions": [{"true": class_names[t], "predicted": class_names[p],
                      "count": count, "fraction": count / int(counts[t])}
                     for count, t, p in pairs[:num_confusions]],
      "num_images": int(len(labels)),
  }


def chance_accuracy(num_classes: int) -> dict[str, float]:
  """Top-k accuracy of a uniformly random ranking: min(k, C) / C."""
  return {topk_key(k): min(k, num_classes) / num_classes for k in KS}


def mean_accuracy(per_language: Mapping[str, Mapping[str, Any]]
                  ) -> dict[str, float]:
  """Plain mean over the languages of top-k and mean per-class accuracy."""
  keys = [topk_key(k) for k in KS] + ["mean_per_class_top1"]
  return {key: float(np.mean([row[key] for row in per_language.values()]))
          for key in keys}
