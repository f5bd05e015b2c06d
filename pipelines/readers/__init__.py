"""Readers of raw web pairs: input files -> `RawExample`s.

Four input formats, one module each, chosen by file extension
(`dispatch.reader_for`):

  .tar .tgz .tar.gz         `webdataset`: shards as img2dataset writes them
  .parquet                  `parquet`: key, caption and image columns
  .tfrecord(s) (.gz)        `tfrecord`: `tf.train.Example`s
  .jsonl (.jsonl.gz)        `jsonl`: `{"key", "image_path", "caption"}` lines

`common` holds `RawExample` and what the formats share; `dispatch` matches
input patterns and reads a file by its name; `beam_read` reads them all in a
Beam pipeline. Paths are opened through Beam's `FileSystems`, so `gs://` and
other Beam filesystems work like local paths.

Readers never judge content: an image or caption that is missing, empty or
undecodable is passed on as it is (bytes or None) so that the validation step
can reject it with a reason. Two kinds of damage are told apart:

* A damaged file (a truncated tar, a bad TFRecord checksum, an unreadable
  Parquet row group, a broken gzip stream): the reader yields the examples
  before the damage, then reports the damage once through `on_error` and stops.
  The example being assembled when the damage hit is dropped with the report.
* A damaged entry in a readable file (a JSONL line that is not a JSON object,
  a TFRecord payload that is not a `tf.train.Example`, a manifest or Parquet
  image path that cannot be read): the reader yields a `RawExample` with
  `image=None` and the problem under `metadata[READ_ERROR]`, so the entry is
  counted and rejected (as `missing_image`) like any other bad example, never
  silently dropped. Its key is `"<source>:<line or record number>"` when the
  entry gives none.

Keys are passed through as the input gives them (img2dataset keys are unique
across a download); readers do not detect keys that repeat across files.
"""
