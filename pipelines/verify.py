"""Checks a dataset directory against its manifest.

  python -m pipelines.verify DIR [--check_images]

Recounts every shard, compares its SHA-256 with the manifest's, parses every
record and checks that it sits in the shard its key hashes to, in key order,
with the tokens of every vocabulary; checks the rejected file and that the
counts add up (read == kept + rejected). Exits non-zero with one line per
problem if anything does not match.
"""

import collections
import dataclasses
import json
import sys

from dataformat import cli
from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import records
from dataformat import shards
from pipelines import images
from pipelines.reasons import Rejection


@dataclasses.dataclass
class Report:
  """What `verify_dataset` found: the problems, and what it checked."""

  problems: list[str] = dataclasses.field(default_factory=list)
  shards: int = 0
  records: int = 0
  rejected: int = 0

  @property
  def ok(self) -> bool:
    return not self.problems


def _check_record(data: bytes, file: str, shard: int, position: int,
                  num_shards: int, vocabularies: list[str],
                  check_images: bool) -> tuple[str | None, list[str]]:
  """Parses one record; returns its key (None if unparsable) and problems."""
  where = f"{file} record {position}"
  try:
    record = records.parse_record(data)
  except ValueError as e:
    return None, [f"{where}: {e}"]
  problems = []
  expected_shard = shards.shard_index(record.key, num_shards)
  if expected_shard != shard:
    problems.append(f"{where}: key {record.key!r} belongs in shard "
                    f"{expected_shard}")
  missing = [v for v in vocabularies if v not in record.tokens]
  if missing:
    problems.append(f"{where}: key {record.key!r} has no tokens for {missing}")
  if not record.image_encoded and record.image_embedding is None:
    problems.append(f"{where}: key {record.key!r} has no image")
  if check_images and record.image_encoded:
    try:
      decoded = images.decode_image(record.image_encoded)
    except Rejection as e:
      problems.append(f"{where}: key {record.key!r} image: {e}")
    else:
      size = (decoded.original_height, decoded.original_width)
      if size != (record.image_height, record.image_width):
        problems.append(
            f"{where}: key {record.key!r} image is {size[1]}x{size[0]}, "
            f"record says {record.image_width}x{record.image_height}")
  return record.key, problems


def _verify_shards(output_dir: str, manifest: manifest_lib.Manifest,
                   check_images: bool, report: Report) -> None:
  num_shards = len(manifest.shards)
  vocabularies = [v.name for v in manifest.vocabularies]
  expected = [shards.shard_name(manifest.split, i, num_shards)
              for i in range(num_shards)]
  listed = [s.file for s in manifest.shards]
  if listed != expected:
    report.problems.append(f"manifest lists shards {listed}, expected "
                           f"{expected}")
  on_disk = {files.basename(p) for p in shards.dataset_files(output_dir)
             if p.endswith(shards.SHARD_SUFFIX)}
  for extra in sorted(on_disk - set(listed)):
    report.problems.append(f"{extra}: shard file not in the manifest")
  keys = collections.Counter()
  for index, shard in enumerate(manifest.shards):
    path = files.join(output_dir, shard.file)
    if shard.file not in on_disk:
      report.problems.append(f"{shard.file}: missing")
      continue
    report.shards += 1
    sha = files.sha256(path)
    if sha != shard.sha256:
      report.problems.append(f"{shard.file}: sha256 {sha} != manifest "
                             f"{shard.sha256}")
    count, previous = 0, None
    try:
      for data in shards.iter_array_record(path):
        key, problems = _check_record(data, shard.file, index, count,
                                      num_shards, vocabularies, check_images)
        report.problems.extend(problems)
        if key is not None:
          if previous is not None and key < previous:
            report.problems.append(f"{shard.file} record {count}: key "
                                   f"{key!r} after {previous!r}")
          keys[key] += 1
          previous = key
        count += 1
    except RuntimeError as e:
      report.problems.append(f"{shard.file}: unreadable after {count} "
                             f"records: {e}")
    report.records += count
    if count != shard.count:
      report.problems.append(f"{shard.file}: {count} records, manifest "
                             f"says {shard.count}")
  repeated = sorted(k for k, n in keys.items() if n > 1)
  if repeated:
    report.problems.append(f"keys in more than one record: {repeated[:10]}")


def _verify_rejected(output_dir: str, manifest: manifest_lib.Manifest,
                     report: Report) -> None:
  entry = manifest.rejected_file
  path = files.join(output_dir, entry.file)
  if not files.exists(path):
    report.problems.append(f"{entry.file}: missing")
    return
  sha = files.sha256(path)
  if sha != entry.sha256:
    report.problems.append(f"{entry.file}: sha256 {sha} != manifest "
                           f"{entry.sha256}")
  try:
    rejected = shards.read_rejected(path)
  except (ValueError, TypeError) as e:
    report.problems.append(f"{entry.file}: unparsable: {e}")
    return
  report.rejected = len(rejected)
  by_reason = collections.Counter(r.reason for r in rejected)
  expected = {r: n for r, n in manifest.counts.rejected.items() if n}
  if dict(by_reason) != expected:
    report.problems.append(f"{entry.file}: reasons {dict(by_reason)} != "
                           f"manifest {expected}")
  if len(rejected) != entry.count:
    report.problems.append(f"{entry.file}: {len(rejected)} lines, "
                           f"manifest says {entry.count}")


def verify_dataset(output_dir: str, check_images: bool = False) -> Report:
  """Checks a dataset directory; the report lists every mismatch found."""
  report = Report()
  if not shards.is_completed(output_dir):
    report.problems.append(f"{shards.COMPLETED} marker missing: the build "
                           "did not finish")
  manifest_path = files.join(output_dir, shards.MANIFEST)
  if not files.exists(manifest_path):
    report.problems.append(f"{shards.MANIFEST}: missing")
    return report
  try:
    manifest = manifest_lib.read(manifest_path)
  except manifest_lib.ManifestError as e:  # It names the file.
    report.problems.append(str(e))
    return report
  if manifest.schema_version != records.SCHEMA_VERSION:
    report.problems.append(
        f"{shards.MANIFEST}: schema_version {manifest.schema_version} "
        f"!= {records.SCHEMA_VERSION}")
  try:
    counts = manifest.counts
    if counts.read != counts.kept + counts.rejected_total:
      report.problems.append(
          f"{shards.MANIFEST}: read {counts.read} != kept {counts.kept} "
          f"+ rejected {counts.rejected_total}")
    _verify_shards(output_dir, manifest, check_images, report)
    if report.records != counts.kept:
      report.problems.append(f"{report.records} records in the shards, "
                             f"manifest says kept {counts.kept}")
    _verify_rejected(output_dir, manifest, report)
  except (AttributeError, TypeError) as e:
    report.problems.append(f"{shards.MANIFEST}: malformed: {e!r}")
  return report


def main(argv: list[str] | None = None) -> int:
  parser = cli.ArgumentParser(
      prog="python -m pipelines.verify",
      description="Check a dataset directory against its manifest: shard "
      "checksums and record counts, every record parses and sits in its "
      "shard in key order, the rejected file, and the counts. Exits 1 and "
      "lists the problems if anything does not match.")
  parser.add_argument("dataset", metavar="DIR",
                      help="the dataset directory (local or gs://)")
  parser.add_argument("--check_images", action="store_true",
                      help="also decode every stored image and check its "
                      "size against the record (slower)")
  parser.add_argument("--json", action="store_true",
                      help="print the report as JSON")
  args = parser.parse_args(argv)
  if not files.is_uri(args.dataset) and not files.exists(args.dataset):
    return cli.fail(f"{args.dataset} does not exist")
  report = verify_dataset(args.dataset, args.check_images)
  if args.json:
    print(json.dumps({**dataclasses.asdict(report), "ok": report.ok},
                     indent=2))
  elif report.ok:
    print(f"OK: {report.records} records in {report.shards} shards, "
          f"{report.rejected} rejected examples; checksums and counts match")
  else:
    for problem in report.problems:
      print(problem, file=sys.stderr)
    print(f"FAILED: {len(report.problems)} problems in {args.dataset}",
          file=sys.stderr)
  return 0 if report.ok else 1


if __name__ == "__main__":
  sys.exit(main())
