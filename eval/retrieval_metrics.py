"""Image-text retrieval recall@k from a similarity matrix (pure numpy).

Inputs: `similarity` [num_images, num_captions] (any score where larger
means more similar, e.g. cosine similarity of the embeddings) and
`caption_image` [num_captions], the index of each caption's image. An image
may have several captions or none.

- Image->text: each image with at least one caption is a query; it is a hit
  at k if any of its captions is among the k most similar captions.
- Text->image: each caption is a query; it is a hit at k if its image is
  among the k most similar images.

Ties are broken against the query (pessimistic): a candidate that scores
exactly as high as the query's best positive is ranked before it. So a rank
is the number of wrong candidates scoring at least as high as the best right
one, which is independent of the order of images and captions, and a model
that gives everything the same score gets recall 0, not a lucky hit.
"""

from collections.abc import Mapping, Sequence
import fractions
import math

import numpy as np

I2T = "i2t"
T2I = "t2i"
DIRECTIONS = (I2T, T2I)
KS = (1, 5, 10)


def recall_key(k: int) -> str:
  """The metric name of recall at `k` ("r1", "r5", ...)."""
  return f"r{k}"


def _check_inputs(similarity: np.ndarray,
                  caption_image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  similarity = np.asarray(similarity)
  caption_image = np.asarray(caption_image)
  if similarity.ndim != 2:
    raise ValueError(f"similarity must be [num_images, num_captions], got "
                     f"shape {similarity.shape}")
  num_images, num_captions = similarity.shape
  if caption_image.shape != (num_captions,):
    raise ValueError(f"caption_image must have shape ({num_captions},), got "
                     f"{caption_image.shape}")
  if not np.issubdtype(caption_image.dtype, np.integer):
    raise ValueError(f"caption_image must hold integers, got "
                     f"{caption_image.dtype}")
  if num_captions and (caption_image.min() < 0 or
                       caption_image.max() >= num_images):
    raise ValueError(f"caption_image must be in [0, {num_images})")
  if not np.all(np.isfinite(similarity)):
    raise ValueError("similarity has non-finite values")
  return similarity, caption_image


def image_to_text_ranks(similarity: np.ndarray,
                        caption_image: np.ndarray) -> np.ndarray:
  """0-based rank of each image's best caption, ties against the image.

  Returns:
    int64 [number of images with a caption], in image order: for image i,
    the number of other images' captions c with similarity[i, c] >= the
    largest similarity of any of i's own captions.
  """
  similarity, caption_image = _check_inputs(similarity, caption_image)
  num_images, num_captions = similarity.shape
  own = similarity[caption_image, np.arange(num_captions)]
  best = np.full(num_images, -np.inf)
  np.maximum.at(best, caption_image, own)
  at_least_best = np.sum(similarity >= best[:, None], axis=1)
  # An image's own captions scoring >= its best are exactly those equal to it.
  own_at_best = np.bincount(caption_image, weights=own == best[caption_image],
                            minlength=num_images)
  has_caption = np.bincount(caption_image, minlength=num_images) > 0
  return (at_least_best - own_at_best)[has_caption].astype(np.int64)


def text_to_image_ranks(similarity: np.ndarray,
                        caption_image: np.ndarray) -> np.ndarray:
  """0-based rank of each caption's image, ties against the caption.

  Returns:
    int64 [num_captions]: for caption c of image g, the number of images
    i != g with similarity[i, c] >= similarity[g, c].
  """
  similarity, caption_image = _check_inputs(similarity, caption_image)
  target = similarity[caption_image, np.arange(similarity.shape[1])]
  # The target image itself is counted once by the comparison.
  return (np.sum(similarity >= target[None, :], axis=0) - 1).astype(np.int64)


def recall_at_k(ranks: np.ndarray, k: int) -> float:
  """The fraction of queries whose 0-based rank is below `k`."""
  ranks = np.asarray(ranks)
  if k < 1:
    raise ValueError(f"k must be positive, got {k}")
  if ranks.size == 0:
    raise ValueError("recall needs at least one query")
  return float(np.mean(ranks < k))


def retrieval_recalls(similarity: np.ndarray, caption_image: np.ndarray,
                      ks: Sequence[int] = KS) -> dict[str, dict[str, float]]:
  """{"i2t": {"r1": ..., ...}, "t2i": {...}}: recall@k in both directions."""
  ranks = {I2T: image_to_text_ranks(similarity, caption_image),
           T2I: text_to_image_ranks(similarity, caption_image)}
  return {direction: {recall_key(k): recall_at_k(ranks[direction], k)
                      for k in ks}
          for direction in DIRECTIONS}


def chance_recalls(num_images: int, caption_image: np.ndarray,
                   ks: Sequence[int] = KS) -> dict[str, dict[str, float]]:
  """Expected recall@k of a uniformly random ranking, both directions.

  Text->image: min(k, N) / N for N images. Image->text: for an image with m
  of the M captions, the chance that a random k of them include one of its
  own is 1 - C(M - m, k) / C(M, k) (about k * m / M when k * m << M),
  averaged over the images with a caption.
  """
  caption_image = np.asarray(caption_image)
  if num_images < 1 or caption_image.size == 0:
    raise ValueError("chance levels need at least one image and one caption")
  num_captions = caption_image.size
  counts = np.bincount(caption_image, minlength=num_images)
  # Images with the same number of captions share one exact value.
  sizes, images = np.unique(counts[counts > 0], return_counts=True)

  def i2t(k: int) -> float:
    if k >= num_captions:
      return 1.0
    total = math.comb(num_captions, k)
    missed = sum(int(n) * fractions.Fraction(
        math.comb(num_captions - int(m), k), total)
                 for m, n in zip(sizes, images))
    return float(1 - missed / int(images.sum()))

  return {I2T: {recall_key(k): i2t(k) for k in ks},
          T2I: {recall_key(k): min(k, num_images) / num_images for k in ks}}


def mean_recalls(
    per_language: Mapping[str, Mapping[str, Mapping[str, float]]]
) -> dict[str, dict[str, float]]:
  """The plain mean over languages of each direction's recall@k.

  Each value of `per_language` holds "i2t" and "t2i" dicts of the same keys
  (as `retrieval_recalls` returns); other entries are ignored.
  """
  if not per_language:
    raise ValueError("the mean needs at least one language")
  rows = list(per_language.values())
  return {direction: {key: float(np.mean([row[direction][key]
                                          for row in rows]))
                      for key in rows[0][direction]}
          for direction in DIRECTIONS}
