"""The per-example work of a dataset build, without Beam: raw pair -> Record.

`process_batch` is the build's kernel: decode and validate the image, decode
the caption, apply the filters, tag the language, reject near-duplicates of
block-listed eval images, tokenize with every vocabulary, and resize and
re-encode the image. The Beam pipeline
(`pipelines.build_dataset`) and the kernel-limit benchmark both call it.

Checks run in the order of `reasons.REASONS`, so an example with several
defects is rejected for the first one. Language identification and
tokenization run once per batch (both share work across a batch); the result
of every example is independent of the batch it came in.
"""

from collections.abc import Sequence
import dataclasses
import re

from dataformat.records import Record
from pipelines import captions
from pipelines import filters
from pipelines import images
from pipelines import langid
from pipelines import near_duplicates
from pipelines.readers import common
from pipelines.readers.common import RawExample
from pipelines.reasons import Reason
from pipelines.reasons import Rejection
from vocabularies.vocabulary import Vocabulary

DEFAULT_MAX_TOKENS = 64
_ADDRESS_RE = re.compile(r" at 0x[0-9a-fA-F]+")


@dataclasses.dataclass(frozen=True)
class ProcessConfig:
  """Everything besides the models that decides how an example is processed.

  Attributes:
    thresholds: the thresholds of the per-example filters.
    image_size: stored images are downsized so that their shorter side is at
      most this many pixels (aspect ratio kept; never upsampled).
    jpeg_quality: the stored images' JPEG quality.
    max_image_pixels: images with more pixels are DECOMPRESSION_BOMBs.
    max_tokens: stored token lists are truncated to this length, keeping EOS
      last.
  """

  thresholds: filters.FilterConfig = dataclasses.field(
      default_factory=filters.FilterConfig)
  image_size: int = images.DEFAULT_SHORTER_SIDE
  jpeg_quality: int = images.DEFAULT_JPEG_QUALITY
  max_image_pixels: int = images.DEFAULT_MAX_PIXELS
  max_tokens: int = DEFAULT_MAX_TOKENS

  def __post_init__(self):
    if self.image_size < 1:
      raise ValueError(f"image_size must be positive, got {self.image_size}")
    if not 1 <= self.jpeg_quality <= 100:
      raise ValueError(
          f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
    if self.max_image_pixels < 1:
      raise ValueError(
          f"max_image_pixels must be positive, got {self.max_image_pixels}")
    if self.max_tokens < 1:
      raise ValueError(f"max_tokens must be positive, got {self.max_tokens}")

  def to_json(self) -> dict:
    """The options as a JSON-ready dict, thresholds nested under `filters`."""
    return {
        "image_size": self.image_size,
        "jpeg_quality": self.jpeg_quality,
        "max_image_pixels": self.max_image_pixels,
        "max_tokens": self.max_tokens,
        "filters": self.thresholds.to_json(),
    }


def _raise_if(verdict: filters.Verdict) -> None:
  if verdict is not None:
    raise Rejection(*verdict)


def _text_field(metadata: dict, name: str) -> str:
  value = metadata.get(name)
  return value if isinstance(value, str) else ""


def _int_field(metadata: dict, name: str) -> int:
  value = metadata.get(name)
  # bool is an int too, and never a size.
  return value if isinstance(value, int) and not isinstance(value, bool) else 0


def source_url(raw: RawExample) -> str:
  """The URL the pair was fetched from, "" where the input does not say."""
  return _text_field(raw.metadata, common.URL)


def source_fields(raw: RawExample) -> dict[str, str | int]:
  """The `Record.source_*` fields from a raw pair's reader metadata.

  The source's own key is its `key` field where it has one (img2dataset's),
  else the key the reader gave the pair.
  """
  metadata = raw.metadata
  return {
      "source_url": source_url(raw),
      "source_key": _text_field(metadata, common.SOURCE_KEY) or raw.key,
      "source_sha256": _text_field(metadata, common.SHA256),
      "source_width": _int_field(metadata, common.ORIGINAL_WIDTH),
      "source_height": _int_field(metadata, common.ORIGINAL_HEIGHT),
  }


def _untokenized_record(raw: RawExample, text: str | Rejection,
                        language: langid.LanguagePrediction | None,
                        config: ProcessConfig,
                        eval_filter: near_duplicates.EvalImageFilter | None
                        ) -> Record:
  """Validates, filters and re-encodes one example (tokens come later).

  Raises:
    Rejection: the first check the example fails.
  """
  failure = common.download_failure(raw.metadata)
  if failure is not None:
    raise Rejection(Reason.DOWNLOAD_FAILED, failure)
  decoded = images.decode_image(raw.image, config.max_image_pixels)
  if isinstance(text, Rejection):
    raise text
  height, width = decoded.original_height, decoded.original_width
  _raise_if(filters.image_reject_reason(height, width, config.thresholds))
  _raise_if(filters.caption_reject_reason(text, config.thresholds))
  _raise_if(filters.language_reject_reason(language.lang, language.score,
                                           config.thresholds))
  pixels = images.resize_shorter_side(decoded.pixels, config.image_size)
  sha256 = images.pixel_sha256(pixels)
  if eval_filter is not None:
    # The stored size is plenty for a 32x32 thumbnail, and far cheaper to
    # sign than the original.
    _raise_if(eval_filter.reject_reason(pixels, sha256))
  return Record(
      key=raw.key,
      text=text,
      lang=language.lang,
      lang_score=language.score,
      source=raw.source,
      image_encoded=images.encode_jpeg(pixels, config.jpeg_quality),
      image_height=pixels.shape[0],
      image_width=pixels.shape[1],
      image_original_height=height,
      image_original_width=width,
      image_sha256=sha256,
      **source_fields(raw),
  )


def _stable(rejection: Rejection) -> Rejection:
  # Library messages may name objects by address ("<_io.BytesIO object at
  # 0x7f...>"), which would make the rejected file differ between runs.
  detail = _ADDRESS_RE.sub("", rejection.detail)
  return rejection if detail == rejection.detail else Rejection(
      rejection.reason, detail)


def _decoded_caption(raw: RawExample) -> str | Rejection:
  try:
    return captions.decode_caption(raw.caption)
  except Rejection as e:
    return e


def process_batch(
    raws: Sequence[RawExample],
    config: ProcessConfig,
    identifier: langid.LanguageIdentifier,
    vocabularies: Sequence[Vocabulary],
    eval_filter: near_duplicates.EvalImageFilter | None = None,
) -> list[Record | Rejection]:
  """Processes examples: a Record for each kept one, a Rejection otherwise.

  Args:
    raws: the examples.
    config: how to process them.
    identifier: the language identifier.
    vocabularies: the vocabularies to tokenize with.
    eval_filter: if given, near-duplicates of its eval images are rejected.

  Returns:
    One result per example, in order.
  """
  texts = [_decoded_caption(raw) for raw in raws]
  clean = [t for t in texts if isinstance(t, str)]
  predictions = iter(identifier.identify_batch(clean))
  results: list[Record | Rejection] = []
  for raw, text in zip(raws, texts):
    language = next(predictions) if isinstance(text, str) else None
    try:
      results.append(_untokenized_record(raw, text, language, config,
                                         eval_filter))
    except Rejection as e:
      results.append(_stable(e))
  kept = [r for r in results if isinstance(r, Record)]
  for vocabulary in vocabularies:
    ids = vocabulary.encode_batch([r.text for r in kept],
                                  max_len=config.max_tokens)
    for record, record_ids in zip(kept, ids):
      record.tokens[vocabulary.name] = record_ids
  return results


def process_example(
    raw: RawExample,
    config: ProcessConfig,
    identifier: langid.LanguageIdentifier,
    vocabularies: Sequence[Vocabulary],
    eval_filter: near_duplicates.EvalImageFilter | None = None,
) -> Record:
  """Processes one example.

  Raises:
    Rejection: if the example is rejected.
  """
  [result] = process_batch([raw], config, identifier, vocabularies,
                           eval_filter)
  if isinstance(result, Rejection):
    raise result
  return result
