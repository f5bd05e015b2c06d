"""`ReadRawExamples`: every input file read in a Beam pipeline."""

from collections.abc import Sequence

import apache_beam as beam

from pipelines.readers.common import FileError
from pipelines.readers.dispatch import match_input_files
from pipelines.readers.dispatch import read_examples
from pipelines.readers.parquet import DEFAULT_PARQUET_COLUMNS
from pipelines.readers.parquet import ParquetColumns

METRICS_NAMESPACE = "read"
EXAMPLES_TAG = "examples"
FILE_ERRORS_TAG = "file_errors"


class _ReadFileFn(beam.DoFn):
  """Input path -> its examples, and a `FileError` if it is damaged."""

  def __init__(self, parquet_columns: ParquetColumns):
    super().__init__()
    self._parquet_columns = parquet_columns
    self._files_read = beam.metrics.Metrics.counter(
        METRICS_NAMESPACE, "files_read")
    self._examples_read = beam.metrics.Metrics.counter(
        METRICS_NAMESPACE, "examples_read")
    self._corrupt_files = beam.metrics.Metrics.counter(
        METRICS_NAMESPACE, "corrupt_files")

  def process(self, path: str):
    errors = []

    def record_error(source: str, error: Exception) -> None:
      errors.append(FileError(source, f"{type(error).__name__}: {error}"))

    for example in read_examples(path, record_error,
                                 parquet_columns=self._parquet_columns):
      self._examples_read.inc()
      yield example
    self._files_read.inc()
    for error in errors:
      self._corrupt_files.inc()
      yield beam.pvalue.TaggedOutput(FILE_ERRORS_TAG, error)


class ReadRawExamples(beam.PTransform):
  """Reads every file matching `patterns`, files spread across workers.

  The result has two outputs: `result[EXAMPLES_TAG]` (`RawExample`s, also
  `result.examples`) and `result[FILE_ERRORS_TAG]` (a `FileError` per damaged
  input file, also `result.file_errors`). Files are matched when the pipeline
  is built, so a pattern that matches nothing fails early.
  """

  def __init__(
      self,
      patterns: str | Sequence[str],
      parquet_columns: ParquetColumns = DEFAULT_PARQUET_COLUMNS,
  ):
    super().__init__()
    self._patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    self._parquet_columns = parquet_columns

  def expand(self, pbegin):
    paths = match_input_files(self._patterns)
    return (
        pbegin
        | "ListFiles" >> beam.Create(paths)
        | "SpreadFiles" >> beam.Reshuffle()
        | "ReadFiles" >> beam.ParDo(
            _ReadFileFn(self._parquet_columns)).with_outputs(
                FILE_ERRORS_TAG, main=EXAMPLES_TAG))
