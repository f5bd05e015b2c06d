"""How well an image-text score finds the demo corpus's mismatched pairs.

  python -m demo.score_check --corpus demo_out/corpus \\
      --dataset demo_out/dataset_scored --score_name siglip_demo

Reads the truth the corpus planted (`corpus.json`: `mismatched`) and the
scores a build stored (`score/<name>` in the kept records, and the score in
the detail of each `low_image_text_score` rejection), and reports the ROC
AUC of the score at telling true pairs from mismatched ones and how many of
each the build's cut-off removed. Pairs rejected for another reason (bad
examples, duplicates) have no score on record and are left out.
"""

from collections.abc import Sequence
import dataclasses
import sys

import numpy as np

from dataformat import cli
from dataformat import files
from dataformat import manifest as manifest_lib
from dataformat import records
from dataformat import shards as shards_lib
from demo import corpus as corpus_lib
from pipelines import score_filter
from pipelines.reasons import Reason


@dataclasses.dataclass(frozen=True)
class MismatchReport:
  """The score against the planted truth.

  Attributes:
    auc: ROC AUC of the score, true pairs positive (ties count half).
    true_scored: true pairs with a score on record.
    mismatched_scored: mismatched pairs with a score on record.
    true_removed: true pairs rejected as low_image_text_score.
    mismatched_removed: mismatched pairs rejected as low_image_text_score.
  """

  auc: float
  true_scored: int
  mismatched_scored: int
  true_removed: int
  mismatched_removed: int

  def summary(self) -> str:
    return (f"ROC AUC {self.auc:.3f} over {self.true_scored} true and "
            f"{self.mismatched_scored} mismatched pairs; the cut-off removed "
            f"{self.mismatched_removed} of the mismatched "
            f"({self.mismatched_removed / max(self.mismatched_scored, 1):.0%})"
            f" and {self.true_removed} of the true "
            f"({self.true_removed / max(self.true_scored, 1):.1%})")


def roc_auc(positives: Sequence[float], negatives: Sequence[float]) -> float:
  """P(a positive scores above a negative), ties counting half."""
  if not len(positives) or not len(negatives):
    raise ValueError("ROC AUC needs positives and negatives")
  pos = np.asarray(positives, np.float64)[:, None]
  neg = np.asarray(negatives, np.float64)[None, :]
  return float(np.mean((pos > neg) + 0.5 * (pos == neg)))


def dataset_scores(dataset_dir: str, score_name: str
                   ) -> tuple[dict[str, float], set[str]]:
  """({key: score} of every scored pair, keys removed for their score)."""
  manifest = manifest_lib.read(files.join(dataset_dir, shards_lib.MANIFEST))
  scores = {}
  for shard in manifest.shards:
    for data in shards_lib.iter_array_record(files.join(dataset_dir,
                                                        shard.file)):
      record = records.parse_record(data)
      if score_name not in record.scores:
        raise ValueError(f"record {record.key} of {dataset_dir} has no "
                         f"{records.score_field(score_name)}")
      scores[record.key] = record.scores[score_name]
  removed = set()
  for rejected in shards_lib.read_rejected(files.join(dataset_dir,
                                                      shards_lib.REJECTED)):
    if rejected.reason == Reason.LOW_IMAGE_TEXT_SCORE:
      scores[rejected.key], _, _ = score_filter.parse_reject_detail(
          rejected.detail)
      removed.add(rejected.key)
  return scores, removed


def mismatch_report(corpus_dir: str, dataset_dir: str,
                    score_name: str) -> MismatchReport:
  """The report for a corpus and a build of it that stored `score_name`.

  Raises:
    ValueError: if the corpus lists no mismatched pairs or the dataset has
      no such scores.
  """
  truth = files.read_json(files.join(corpus_dir, corpus_lib.CORPUS_FILE))
  mismatched = set(truth.get("mismatched", []))
  scores, removed = dataset_scores(dataset_dir, score_name)
  true = [s for k, s in scores.items() if k not in mismatched]
  wrong = [s for k, s in scores.items() if k in mismatched]
  return MismatchReport(
      auc=roc_auc(true, wrong), true_scored=len(true),
      mismatched_scored=len(wrong),
      true_removed=len(removed - mismatched),
      mismatched_removed=len(removed & mismatched))


def main(argv: Sequence[str] | None = None) -> int:
  parser = cli.ArgumentParser(
      prog="python -m demo.score_check",
      description="Report how well a build's image-text score separates the "
      "demo corpus's planted mismatched pairs from the true ones.")
  parser.add_argument("--corpus", required=True, metavar="DIR",
                      help="the demo corpus directory (with corpus.json)")
  parser.add_argument("--dataset", required=True, metavar="DIR",
                      help="a dataset built from it with --score_model")
  parser.add_argument("--score_name", required=True, metavar="NAME",
                      help="the --score_name of that build")
  args = parser.parse_args(argv)
  try:
    report = mismatch_report(args.corpus, args.dataset, args.score_name)
  except (OSError, ValueError, KeyError) as e:
    return cli.fail(e)
  print(report.summary())
  return 0


if __name__ == "__main__":
  sys.exit(main())
