"""Shows what a dataset directory holds.

  python -m pipelines.inspect DIR [--num_records N] [--vocab DIR ...]

Prints the manifest's summary (counts, rejection reasons, languages, shards,
vocabularies) and the first records of the first shards, decoded: key,
language, caption, image size, and the tokens (as text too, for each
vocabulary given with --vocab).
"""

from collections.abc import Iterator, Sequence
import itertools
import sys

from dataformat import cli
from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import records
from dataformat import shards
from pipelines import images
from pipelines.reasons import Rejection
from vocabularies.vocabulary import Vocabulary

DEFAULT_NUM_RECORDS = 3
_SHOWN_IDS = 16


def manifest_summary(manifest: manifest_lib.Manifest) -> str:
  """The manifest's counts, reasons, languages, shards and vocabularies."""
  counts = manifest.counts
  lines = [
      f"split {manifest.split}: {counts.kept} records in "
      f"{len(manifest.shards)} shards (read {counts.read}, rejected "
      f"{counts.rejected_total})",
  ]
  lines += [f"  rejected {reason:<22} {n}"
            for reason, n in counts.rejected.items() if n]
  languages = manifest.languages
  lines.append(f"languages ({len(languages)}): " + ", ".join(
      f"{lang} {n}" for lang, n in languages.items()))
  shard_counts = [s.count for s in manifest.shards]
  if shard_counts:
    lines.append(f"shards: {manifest.shards[0].file} ... "
                 f"{manifest.shards[-1].file}, {min(shard_counts)} to "
                 f"{max(shard_counts)} records each")
  for vocab in manifest.vocabularies:
    lines.append(f"vocabulary {vocab.name}: {vocab.size} pieces, "
                 f"sha256 {vocab.sha256[:12]}...")
  inputs = manifest.input_files
  noun = "file" if inputs.count == 1 else "files"
  lines.append(f"input: {inputs.count} {noun}, {len(inputs.corrupt)} "
               "damaged")
  lines += [f"  damaged {c.file}: {c.error}" for c in inputs.corrupt]
  return "\n".join(lines)


def iter_records(output_dir: str,
                 manifest: manifest_lib.Manifest) -> Iterator[records.Record]:
  """The dataset's records, shard by shard, in stored order."""
  for shard in manifest.shards:
    path = files.join(output_dir, shard.file)
    for data in shards.iter_array_record(path):
      yield records.parse_record(data)


def _image_description(record: records.Record) -> str:
  stored = f"{record.image_width}x{record.image_height}"
  original = f"{record.image_original_width}x{record.image_original_height}"
  try:
    decoded = images.decode_image(record.image_encoded)
  except Rejection as e:
    return f"{stored} (original {original}), UNDECODABLE: {e}"
  return (f"{stored} {decoded.format} of {len(record.image_encoded)} bytes "
          f"(original {original})")


def describe_record(record: records.Record,
                    vocabularies: dict[str, Vocabulary]) -> str:
  """A record as a few readable lines."""
  lines = [
      f"key {record.key}  lang {record.lang} ({record.lang_score:.2f})  "
      f"source {record.source}",
      f"  text   {record.text!r}",
  ]
  if record.image_encoded:
    lines.append(f"  image  {_image_description(record)}")
  if record.source_url:
    lines.append(f"  url    {record.source_url}")
  for name, score in record.scores.items():
    lines.append(f"  {records.score_field(name)} {score:.4f}")
  for name, ids in record.tokens.items():
    shown = " ".join(str(i) for i in ids[:_SHOWN_IDS])
    more = f" ... ({len(ids)} ids)" if len(ids) > _SHOWN_IDS else ""
    lines.append(f"  tokens/{name} [{shown}{more}]")
    if name in vocabularies:
      lines.append(f"    -> {vocabularies[name].decode(ids)!r}")
  return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
  parser = cli.ArgumentParser(
      prog="python -m pipelines.inspect",
      description="Summarise a dataset directory's manifest and show its "
      "first records, decoded.")
  parser.add_argument("dataset", metavar="DIR",
                      help="the dataset directory (local or gs://)")
  parser.add_argument("--num_records", type=int, default=DEFAULT_NUM_RECORDS,
                      help="how many records to show (from the first shards)")
  parser.add_argument("--vocab", action="append", default=[], metavar="DIR",
                      help="a vocabulary to turn token ids back into text "
                      "(matched to tokens/<name> by its name); repeatable")
  args = parser.parse_args(argv)
  try:
    if args.num_records < 0:
      raise ValueError(
          f"--num_records must be >= 0, got {args.num_records}")
    manifest_path = files.join(args.dataset, shards.MANIFEST)
    if not files.exists(manifest_path):
      raise ValueError(f"{args.dataset} holds no {shards.MANIFEST}: not a "
                       "dataset directory")
    manifest = manifest_lib.read(manifest_path)
    vocabularies = {v.name: v for v in map(Vocabulary.load, args.vocab)}
    print(manifest_summary(manifest))
    if not shards.is_completed(args.dataset):
      print(f"warning: no {shards.COMPLETED} marker: the build did not finish")
    for record in itertools.islice(iter_records(args.dataset, manifest),
                                   args.num_records):
      print()
      print(describe_record(record, vocabularies))
  except (ValueError, KeyError, OSError, RuntimeError) as e:
    return cli.fail(e)
  return 0


if __name__ == "__main__":
  sys.exit(main())
