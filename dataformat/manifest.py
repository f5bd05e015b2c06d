"""A dataset's `manifest.json`, typed.

The manifest of a dataset directory holds the counts (read, kept, rejected
by reason), each shard's file, count and sha256, the rejected file, the
language histogram, the vocabularies the captions were tokenised with, the
pipeline's options, the input files and the schema version; a build with a
score filter adds its cut-offs and score histograms. A LiT dataset's
manifest (`pipelines.embed`) adds the frozen tower that made its embeddings
and the dataset it read. `Manifest.to_json` writes the keys in one fixed
order, so a build's manifest is byte-identical from run to run.
"""

from collections.abc import Callable, Mapping
import dataclasses
from typing import Any, TypeVar

from dataformat import files
from dataformat.shards import ShardInfo

_T = TypeVar("_T")
_D = TypeVar("_D", bound="TowerDescription")


class ManifestError(ValueError):
  """A manifest that is missing, not JSON, or lacks a key it must have."""


class _Fields:
  """A manifest's JSON object; a missing key names the file and the key."""

  def __init__(self, data: Any, where: str, path: str):
    if not isinstance(data, Mapping):
      raise ManifestError(f"{path}: {where or 'the manifest'} is not a JSON "
                          f"object")
    self._data = data
    self._where = where
    self._path = path

  def _key(self, key: str) -> str:
    return f"{self._where}.{key}" if self._where else key

  def __contains__(self, key: str) -> bool:
    return key in self._data

  def get(self, key: str) -> Any:
    if key not in self._data:
      raise ManifestError(f"{self._path} has no key {self._key(key)!r}")
    return self._data[key]

  def obj(self, key: str) -> "_Fields":
    return _Fields(self.get(key), self._key(key), self._path)

  def objs(self, key: str) -> list["_Fields"]:
    values = self.get(key)
    if not isinstance(values, list):
      raise ManifestError(f"{self._path}: {self._key(key)!r} is not a list")
    return [_Fields(v, f"{self._key(key)}[{i}]", self._path)
            for i, v in enumerate(values)]

  def build(self, cls: Callable[..., _T]) -> _T:
    """`cls` (a dataclass) from the fields of its name."""
    return cls(**{f.name: self.get(f.name) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class Counts:
  """Examples read, kept, and rejected per reason (every reason listed)."""

  read: int
  kept: int
  rejected: dict[str, int]

  @property
  def rejected_total(self) -> int:
    return sum(self.rejected.values())


@dataclasses.dataclass(frozen=True)
class RejectedFile:
  """The rejected-examples file: its name, lines and sha256."""

  file: str
  count: int
  sha256: str


@dataclasses.dataclass(frozen=True)
class VocabularyEntry:
  """A vocabulary the captions were tokenised with (`tokens/<name>`)."""

  name: str
  size: int
  sha256: str


@dataclasses.dataclass(frozen=True)
class CorruptInput:
  """An input file the build could not read to its end."""

  file: str
  error: str


@dataclasses.dataclass(frozen=True)
class InputFiles:
  """How many input files the build read, and the damaged ones."""

  count: int
  corrupt: list[CorruptInput]


@dataclasses.dataclass(frozen=True)
class TowerDescription:
  """A frozen image tower: where it is, what it is, what it outputs.

  The fields only; `trainer.model_loader.TowerSpec` adds the model, `Tower`
  the manifest's image mode.

  Attributes:
    kind: "ours" (a `trainer.train` run) or "big_vision" (an `.npz`).
    checkpoint: the checkpoint path (a workdir, step directory or `.npz`).
    sha256: of the `.npz` file; for our checkpoints, a hash over the files of
      the step directory read and the run's config.json
      (`trainer.model_loader.checkpoint_sha256`).
    step: the training step of our checkpoints; None for `.npz` files.
    image_tower: `trainer.models.vit.Model` fields.
    head_dim: output size of the image head; None without one.
    image_size: the side of the square images the tower sees.
    embedding_dim: the size of its output.
    dtype: of the stored embeddings.
    normalized: whether the embeddings are L2-normalised (never: they are
      the tower's raw output).
  """

  kind: str
  checkpoint: str
  sha256: str
  step: int | None
  image_tower: dict[str, Any]
  head_dim: int | None
  image_size: int
  embedding_dim: int
  dtype: str
  normalized: bool

  @classmethod
  def from_description(cls: type[_D], tower: "TowerDescription",
                       **fields: Any) -> _D:
    """A `cls` with the description of `tower` and its own other `fields`."""
    described = {f.name: getattr(tower, f.name)
                 for f in dataclasses.fields(TowerDescription)}
    return cls(**described, **fields)


@dataclasses.dataclass(frozen=True)
class Tower(TowerDescription):
  """The frozen image tower that made a LiT dataset's embeddings.

  Its description, and the image mode the images were preprocessed with.
  """

  image_mode: str


@dataclasses.dataclass(frozen=True)
class SourceDataset:
  """The dataset a LiT dataset was embedded from."""

  path: str
  manifest_sha256: str
  records: int


@dataclasses.dataclass(frozen=True)
class Manifest:
  """A dataset directory's manifest.

  Attributes:
    options: the pipeline's options as it recorded them (its own keys).
    image_text_score: a build with a score filter: its options, the scoring
      model, and per language the pairs scored, the cut-off and a score
      histogram (`pipelines.score_filter`); None without one.
    tower: of a LiT dataset; None for a dataset with images.
    source_dataset: of a LiT dataset; None for a dataset with images.
  """

  schema_version: int
  split: str
  counts: Counts
  shards: list[ShardInfo]
  rejected_file: RejectedFile
  stats_plot: str
  languages: dict[str, int]
  vocabularies: list[VocabularyEntry]
  options: dict[str, Any]
  input_files: InputFiles
  image_text_score: dict[str, Any] | None = None
  tower: Tower | None = None
  source_dataset: SourceDataset | None = None

  def vocabulary(self, name: str) -> VocabularyEntry | None:
    """The entry of vocabulary `name`; None if it is not listed."""
    return next((v for v in self.vocabularies if v.name == name), None)

  def to_json(self) -> dict[str, Any]:
    """The JSON object, keys in the order they are written."""
    data = {
        "schema_version": self.schema_version,
        "split": self.split,
        "counts": dataclasses.asdict(self.counts),
        "shards": [dataclasses.asdict(s) for s in self.shards],
        "rejected_file": dataclasses.asdict(self.rejected_file),
        "stats_plot": self.stats_plot,
        "languages": self.languages,
        "vocabularies": [dataclasses.asdict(v) for v in self.vocabularies],
        "options": self.options,
    }
    if self.image_text_score is not None:
      data["image_text_score"] = self.image_text_score
    if self.tower is not None:
      data["tower"] = dataclasses.asdict(self.tower)
    if self.source_dataset is not None:
      data["source_dataset"] = dataclasses.asdict(self.source_dataset)
    data["input_files"] = dataclasses.asdict(self.input_files)
    return data

  @classmethod
  def from_json(cls, data: Any, path: str = "manifest") -> "Manifest":
    """The manifest in the JSON value `data`, read from `path`.

    Raises:
      ManifestError: naming `path` and the key, if a key is missing.
    """
    fields = _Fields(data, "", path)
    inputs = fields.obj("input_files")
    return cls(
        schema_version=fields.get("schema_version"),
        split=fields.get("split"),
        counts=fields.obj("counts").build(Counts),
        shards=[s.build(ShardInfo) for s in fields.objs("shards")],
        rejected_file=fields.obj("rejected_file").build(RejectedFile),
        stats_plot=fields.get("stats_plot"),
        languages=fields.get("languages"),
        vocabularies=[v.build(VocabularyEntry)
                      for v in fields.objs("vocabularies")],
        options=fields.get("options"),
        input_files=InputFiles(
            count=inputs.get("count"),
            corrupt=[c.build(CorruptInput) for c in inputs.objs("corrupt")]),
        image_text_score=(fields.get("image_text_score")
                          if "image_text_score" in fields else None),
        tower=(fields.obj("tower").build(Tower) if "tower" in fields
               else None),
        source_dataset=(fields.obj("source_dataset").build(SourceDataset)
                        if "source_dataset" in fields else None))


def read(path: str) -> Manifest:
  """The manifest at `path` (a `manifest.json`, local or gs://).

  Raises:
    ManifestError: one line naming `path`: missing, not JSON, or a key
      missing.
  """
  if not files.exists(path):
    raise ManifestError(f"{path} does not exist")
  try:
    data = files.read_json(path)
  except UnicodeDecodeError as e:
    raise ManifestError(f"{path} is not UTF-8 text: {e}") from None
  except ValueError as e:
    raise ManifestError(str(e)) from None
  return Manifest.from_json(data, path)


def write(path: str, manifest: Manifest) -> None:
  """Writes `manifest` to `path` as indented JSON, keys in their order.

  Raises:
    OSError: naming `path`, if writing fails (a full disk).
  """
  files.write_json(path, manifest.to_json())
