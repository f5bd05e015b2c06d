"""Benchmark: the fast language identifier versus seeded `langdetect.detect`.

On the committed caption set (benchmarks/data/langid_captions.jsonl: 8 short
captions in each of langdetect's 55 languages, 16 for zh) it reports, as
Markdown on stdout:

- the fast backend's one-off build time (`FastModel()`, median of a few) next
  to langdetect's own profile loading;
- the CPU time per caption (median and mean over captions) of
  `LanguageIdentifier().identify`, one caption per call, and of
  `langdetect.detect` with `DetectorFactory.seed = 0`, and their ratio; the
  time per caption of one `identify_batch` over the whole set; passes over
  the set alternate between the three so that all see the same machine load;
- where the fast backend's time goes: normalising, looking up n-grams, and
  the numpy part;
- the accuracy of each backend overall and per language, taking the best
  language (`min_score=0`), and how well scores are calibrated: the mean
  score, and the captions kept and their accuracy at a few `min_score`s;
- what each backend says on the Maori and Quechua captions
  (benchmarks/data/langid_unsupported.jsonl), XM3600 languages that langdetect
  has no profile for.

  python -m benchmarks.langid_bench [--repeats 5]
"""

import argparse
import collections
from collections.abc import Callable, Sequence
import contextlib
import gc
import json
import os
import statistics
import time

from langdetect import detector_factory
import langdetect

from pipelines import langid

DATA_DIR = os.path.join(os.path.dirname(__file__), "data")
CAPTIONS_PATH = os.path.join(DATA_DIR, "langid_captions.jsonl")
UNSUPPORTED_PATH = os.path.join(DATA_DIR, "langid_unsupported.jsonl")
BUILD_REPEATS = 3
CALIBRATION_SCORES = (langid.DEFAULT_MIN_SCORE, 0.7, 0.9)


def read_captions(path: str) -> list[tuple[str, str]]:
  """(true code, text) per line of a caption file."""
  with open(path, encoding="utf-8") as f:
    return [(c["lang"], c["text"])
            for c in map(json.loads, filter(str.strip, f))]


def _seconds(fn: Callable[[], object]) -> float:
  """CPU seconds of this thread spent in `fn()`.

  CPU time rather than wall time: on a shared machine, wall time also counts
  the time other processes hold the core, more of it the longer the call.
  """
  start = time.thread_time()
  fn()
  return time.thread_time() - start


@contextlib.contextmanager
def _garbage_collection_off():
  """Turns garbage collection off, as `timeit` does.

  Otherwise a collection of langdetect's millions of objects would land on
  whichever timed call happens to trigger it.
  """
  gc.collect()
  gc.disable()
  try:
    yield
  finally:
    gc.enable()


def build_seconds() -> dict[str, float]:
  """Median CPU seconds to build the fast model and to load langdetect's."""
  fast = statistics.median(_seconds(langid.FastModel)
                           for _ in range(BUILD_REPEATS))

  def load_langdetect():
    detector_factory.DetectorFactory().load_profile(
        detector_factory.PROFILES_DIRECTORY)

  reference = statistics.median(_seconds(load_langdetect)
                                for _ in range(BUILD_REPEATS))
  return {"fast": fast, "langdetect": reference}


def caption_seconds(texts: Sequence[str], repeats: int) -> dict[str, float]:
  """CPU seconds per caption of each way of identifying captions.

  For one call per caption: the median over captions and the mean over
  captions of each caption's median time; for `identify_batch`: the median
  over repeats of the time per caption.

  Each repeat makes one pass over all captions per way (fast one call per
  caption, `langdetect.detect` one call per caption, one fast
  `identify_batch`), in an order that rotates between repeats, so every way
  runs warm and all see the same machine load. Garbage collection is off
  while timing.
  """
  detector_factory.DetectorFactory.seed = 0
  identifier = langid.LanguageIdentifier()
  singles = {"fast": identifier.identify, "langdetect": langdetect.detect}
  for function in singles.values():
    function(texts[0])
  per_text = {name: [[] for _ in texts] for name in singles}
  batch = []

  def time_single(name):
    for text, times in zip(texts, per_text[name]):
      times.append(_seconds(lambda f=singles[name], t=text: f(t)))

  def time_batch():
    batch.append(_seconds(lambda: identifier.identify_batch(texts)) /
                 len(texts))

  passes = [lambda: time_single("fast"), lambda: time_single("langdetect"),
            time_batch]
  with _garbage_collection_off():
    for repeat in range(repeats):
      for i in range(len(passes)):
        passes[(repeat + i) % len(passes)]()
  result = {}
  for name, times in per_text.items():
    medians = list(map(statistics.median, times))
    result[f"{name}_median"] = statistics.median(medians)
    result[f"{name}_mean"] = statistics.mean(medians)
  result["fast_batch_mean"] = statistics.median(batch)
  return result


def stage_seconds(texts: Sequence[str], repeats: int) -> dict[str, float]:
  """Mean CPU seconds per caption of the fast backend, stage by stage."""
  model = langid.fast_model()
  stages = {
      "normalize": lambda: [model.normalize(t) for t in texts],
      "normalize, n-gram lookups": lambda: [model.window_rows(t)
                                             for t in texts],
      "normalize, n-gram lookups, numpy (all)": lambda: [model.best_label(t)
                                                          for t in texts],
  }
  with _garbage_collection_off():
    return {name: statistics.median(_seconds(stage) for _ in range(repeats)) /
                  len(texts) for name, stage in stages.items()}


def predictions(backend: str, texts: Sequence[str],
                min_score: float) -> list[langid.LanguagePrediction]:
  return langid.LanguageIdentifier(backend, min_score=min_score).identify_batch(
      texts)


def _accuracy(truth: Sequence[str], predicted: Sequence[str]) -> float:
  return sum(t == p for t, p in zip(truth, predicted)) / len(truth)


def accuracy_tables(captions: Sequence[tuple[str, str]]) -> list[str]:
  """Markdown: overall accuracy and calibration, then accuracy per language."""
  truth = [lang for lang, _ in captions]
  texts = [text for _, text in captions]
  answers = {b: predictions(b, texts, 0.0) for b in langid.BACKENDS}
  best = {b: [p.lang for p in answers[b]] for b in langid.BACKENDS}
  lines = [
      "Accuracy of the best language, mean score, and for a few min_score "
      "values the share of captions kept (not `und`) and the accuracy on "
      "them:", "",
      "| backend | accuracy | mean score | "
      + " | ".join(f"kept / accuracy at {t}" for t in CALIBRATION_SCORES)
      + " |", "|---|---|---|" + "---|" * len(CALIBRATION_SCORES)]
  for b in langid.BACKENDS:
    cells = [f"{_accuracy(truth, best[b]):.3f}",
             f"{statistics.mean(p.score for p in answers[b]):.3f}"]
    for threshold in CALIBRATION_SCORES:
      kept = [(lang, p.lang) for lang, p in zip(truth, answers[b])
              if p.score >= threshold]
      cells.append(f"{len(kept) / len(truth):.3f} / "
                   f"{_accuracy(*zip(*kept)):.3f}")
    lines.append(f"| {b} | " + " | ".join(cells) + " |")
  lines += ["", "Per language (best language; captions per language in "
            "brackets):", "",
            "| lang | fast | langdetect | fast's mistakes | langdetect's "
            "mistakes |", "|---|---|---|---|---|"]
  by_lang = collections.defaultdict(list)
  for i, lang in enumerate(truth):
    by_lang[lang].append(i)
  for lang in sorted(by_lang):
    codes = [[best[b][i] for i in by_lang[lang]] for b in langid.BACKENDS]
    accuracies = [f"{_accuracy([lang] * len(c), c):.2f}" for c in codes]
    mistakes = [", ".join(sorted(code for code in c if code != lang)) or "-"
                for c in codes]
    lines.append(f"| {lang} ({len(by_lang[lang])}) | "
                 + " | ".join(accuracies + mistakes) + " |")
  return lines


def unsupported_table(captions: Sequence[tuple[str, str]]) -> list[str]:
  """Markdown: each backend's best language and score per caption."""
  texts = [text for _, text in captions]
  answers = [predictions(b, texts, 0.0) for b in langid.BACKENDS]
  lines = ["| lang | caption | fast | langdetect |", "|---|---|---|---|"]
  for (lang, text), *per_backend in zip(captions, *answers):
    cells = [f"{p.lang} {p.score:.2f}" for p in per_backend]
    lines.append(f"| {lang} | {text} | " + " | ".join(cells) + " |")
  return lines


def main(argv: Sequence[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=5,
                      help="timed calls per caption (the median is kept)")
  args = parser.parse_args(argv)
  if args.repeats < 1:
    parser.error(f"--repeats must be positive, got {args.repeats}")
  captions = read_captions(CAPTIONS_PATH)
  texts = [text for _, text in captions]
  build = build_seconds()
  times = caption_seconds(texts, args.repeats)
  us = 1e6
  lines = [
      f"Caption set: {len(captions)} captions, "
      f"{len({lang for lang, _ in captions})} codes.", "",
      "| measurement | fast | langdetect | ratio |", "|---|---|---|---|",
      f"| one-off build / profile load (CPU s) | {build['fast']:.2f} | "
      f"{build['langdetect']:.2f} | |",
      f"| median per caption, one call per caption (CPU us) | "
      f"{times['fast_median'] * us:.1f} | {times['langdetect_median'] * us:.1f}"
      f" | {times['langdetect_median'] / times['fast_median']:.1f}x |",
      f"| mean per caption, one call per caption (CPU us) | "
      f"{times['fast_mean'] * us:.1f} | {times['langdetect_mean'] * us:.1f} | "
      f"{times['langdetect_mean'] / times['fast_mean']:.1f}x |",
      f"| mean per caption, one identify_batch over the set (CPU us) | "
      f"{times['fast_batch_mean'] * us:.1f} | | "
      f"{times['langdetect_mean'] / times['fast_batch_mean']:.1f}x |",
      "", "Fast backend, mean per caption up to each stage:", "",
      "| stage | CPU us |", "|---|---|",
      *(f"| {name} | {seconds * us:.1f} |"
        for name, seconds in stage_seconds(texts, args.repeats).items()),
      "", *accuracy_tables(captions), "",
      "XM3600 languages without a langdetect profile: best language and its "
      f"score (below {langid.DEFAULT_MIN_SCORE} is `und` by default):", "",
      *unsupported_table(read_captions(UNSUPPORTED_PATH))]
  print("\n".join(lines))


if __name__ == "__main__":
  main()
