"""The vocabulary an evaluated model's texts are tokenised with.

Rule: `--vocab` (a vocabulary directory or a SentencePiece `.model`) when
given. Otherwise the training dataset's `manifest.json`
(config.data.train_dir) names the vocabulary (config.data.vocab_name) with
its sha256, and a vocabulary directory with that name and checksum is looked
for at `*/vocab.json` and `*/*/vocab.json` under the dataset's parent and the
workdir's parent directories. Whenever the manifest gives a checksum, the
vocabulary used must have it, so a checkpoint is never scored with tokens it
was not trained on. Texts are lowercased as `--lowercase MODE` says
("none", "ascii" or "unicode"; `--lowercase` alone: "unicode",
`--no-lowercase`: "none"), else as config.data.lowercase says when set
(the release presets say "ascii", as big_vision), else as the vocabulary's
card says (a bare `.model`: "unicode").
"""

from collections.abc import Callable, Sequence
import dataclasses
import os
from typing import Any

import ml_collections

from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import shards
from vocabularies import vocabulary as vocabulary_lib

# Vocabulary cards looked at when the vocabulary is found by its checksum.
_VOCAB_GLOBS = (f"*/{vocabulary_lib.VOCAB_JSON}",
                f"*/*/{vocabulary_lib.VOCAB_JSON}")


@dataclasses.dataclass(frozen=True)
class VocabularyChoice:
  """The vocabulary captions and prompts are tokenised with, and why.

  Attributes:
    vocabulary: the loaded vocabulary (with the lowercasing decided).
    path: where it was loaded from.
    source: "--vocab" or "manifest search".
    expected_sha256: the training manifest's checksum for it, "" when no
      manifest gives one (then nothing was verified).
  """

  vocabulary: vocabulary_lib.Vocabulary
  path: str
  source: str
  expected_sha256: str

  def to_json(self) -> dict[str, Any]:
    v = self.vocabulary
    return {"name": v.name, "sha256": v.sha256, "size": v.size,
            "lowercase": v.lowercase, "path": files.resolve(self.path),
            "source": self.source,
            "verified_against_manifest": bool(self.expected_sha256)}


class MissingManifestError(ValueError):
  """The training dataset the config names has no manifest (any more)."""


def training_manifest(data_config: ml_collections.ConfigDict
                      ) -> tuple[str, manifest_lib.Manifest] | None:
  """(path, manifest) of config.data.train_dir, the training dataset.

  Its manifest names the vocabulary and, for a LiT dataset, the frozen image
  tower of the embeddings. Returns None when the config names no training
  dataset.

  Raises:
    MissingManifestError: naming the manifest path, if it is not there.
    ValueError: naming the manifest and the key, if one is missing.
  """
  train_dir = data_config.get("train_dir")
  if not train_dir:
    return None
  path = files.join(train_dir, shards.MANIFEST)
  if not files.exists(path):
    # Runs saved before config paths were stored resolved hold the path as
    # it was given, relative to wherever training was started.
    relative = ("" if files.is_uri(train_dir) or os.path.isabs(train_dir) else
                f", a relative path looked up from {os.getcwd()}")
    raise MissingManifestError(
        f"the training dataset manifest {path} (config.data.train_dir"
        f"{relative}) does not exist")
  return path, manifest_lib.read(path)


def _manifest_sha256(data_config: ml_collections.ConfigDict) -> str:
  """The training manifest's sha256 of config.data.vocab_name, or "".

  Raises:
    MissingManifestError: if the config's training dataset has no manifest.
  """
  found = training_manifest(data_config)
  if found is None:
    return ""
  path, manifest = found
  name = data_config.vocab_name
  entry = manifest.vocabulary(name)
  if entry is None:
    raise ValueError(f"the training dataset manifest {path} lists no "
                     f"vocabulary {name!r} (config.data.vocab_name)")
  return entry.sha256


def _search_roots(data_config: ml_collections.ConfigDict,
                  workdir: str | os.PathLike[str] | None) -> list[str]:
  """The folders holding the training dataset and the workdir."""
  roots = []
  train_dir = data_config.get("train_dir")
  if train_dir:
    roots.append(files.dirname(files.resolve(train_dir)))
  if workdir is not None:
    roots.append(files.dirname(files.resolve(workdir)))
  return list(dict.fromkeys(roots))


def _find_vocabulary(name: str, sha256: str,
                     roots: Sequence[str]) -> str | None:
  """The first vocabulary directory under `roots` with `name` and `sha256`."""
  for root in roots:
    for pattern in _VOCAB_GLOBS:
      for card_path in files.glob(files.join(root, pattern)):
        try:
          card = vocabulary_lib.VocabularyCard.from_json(
              files.read_text(card_path))
        except (OSError, ValueError):
          continue  # Not a vocabulary card after all.
        if card.name == name and card.sha256 == sha256:
          return files.dirname(card_path)
  return None


def choose_vocabulary(config: ml_collections.ConfigDict, *,
                      vocab_path: str | os.PathLike[str] | None = None,
                      workdir: str | os.PathLike[str] | None = None,
                      lowercase: vocabulary_lib.Lowercase | None = None,
                      progress: Callable[[str], None] | None = None
                      ) -> VocabularyChoice:
  """The vocabulary to tokenise captions and prompts with (the module's rule).

  Args:
    config: the training config (its `data` section).
    vocab_path: a vocabulary directory or `.model` file; None: search.
    workdir: the training workdir, a search root.
    lowercase: the lowercase mode to use (`vocabularies.vocabulary`); None:
      config.data.lowercase if set, else the vocabulary card's.
    progress: warned when `vocab_path` cannot be checked because the
      training dataset's manifest is gone.

  Raises:
    ValueError: if no vocabulary is given or found, or the one given is not
      the one the training manifest names.
  """
  try:
    expected = _manifest_sha256(config.data)
  except MissingManifestError as e:
    if vocab_path is None:
      raise ValueError(f"{e}: it names the vocabulary; pass --vocab DIR"
                       ) from None
    expected = ""
    if progress is not None:
      progress(f"warning: --vocab {os.fspath(vocab_path)} is not checked "
               f"against the training vocabulary: {e}")
  name = config.data.vocab_name
  if lowercase is None and config.data.get("lowercase"):
    # Runs saved before the modes existed hold False (the card's) or True.
    lowercase = config.data.lowercase
  if vocab_path is not None:
    vocabulary = vocabulary_lib.Vocabulary.load(vocab_path,
                                                lowercase=lowercase)
    if expected and vocabulary.sha256 != expected:
      raise ValueError(
          f"--vocab {os.fspath(vocab_path)} has sha256 "
          f"{vocabulary.sha256[:12]}..., but the model was trained with "
          f"vocabulary {name!r} of sha256 {expected[:12]}... (training "
          "dataset manifest)")
    return VocabularyChoice(vocabulary, os.fspath(vocab_path), "--vocab",
                            expected)
  if not expected:
    raise ValueError(f"--vocab is required: no training dataset manifest "
                     f"(config.data.train_dir) gives the sha256 of "
                     f"vocabulary {name!r}")
  roots = _search_roots(config.data, workdir)
  found = _find_vocabulary(name, expected, roots)
  if found is None:
    raise ValueError(
        f"vocabulary {name!r} (sha256 {expected[:12]}...) not found under "
        f"{roots}; pass --vocab DIR")
  vocabulary = vocabulary_lib.Vocabulary.load(found, lowercase=lowercase)
  return VocabularyChoice(vocabulary, found, "manifest search", expected)

