"""The GCS emulator fixture answers as GCS does where our clients need it."""

import time
import urllib.parse

from array_record.python import array_record_module
import google.auth
import pytest
import requests
import tensorstore as ts

from tests.fixtures import gcs as gcs_fixture


def _object_url(gcs, name: str, **query) -> str:
  quoted = urllib.parse.quote(name, safe="")
  url = f"{gcs.endpoint}/storage/v1/b/{gcs.bucket}/o/{quoted}"
  return f"{url}?{urllib.parse.urlencode(query)}" if query else url


def _upload(gcs, name: str, data: bytes, **query) -> requests.Response:
  return requests.post(
      f"{gcs.endpoint}/upload/storage/v1/b/{gcs.bucket}/o",
      params={"uploadType": "media", "name": name, **query}, data=data,
      timeout=10)


def test_downloads_carry_the_generation(gcs):
  blob = gcs.client.bucket(gcs.bucket).blob("emulator/generation")
  blob.upload_from_string(b"0123456789")
  blob.reload()
  response = requests.get(_object_url(gcs, blob.name, alt="media"),
                          timeout=10)
  assert response.status_code == 200
  assert response.content == b"0123456789"
  assert response.headers["x-goog-generation"] == str(blob.generation)
  assert response.headers["x-goog-metageneration"] == str(blob.metageneration)
  assert response.headers["x-goog-stored-content-length"] == "10"


def test_generation_preconditions(gcs):
  name = "emulator/preconditions"
  assert _upload(gcs, name, b"first", ifGenerationMatch=0).status_code == 200
  generation = requests.get(_object_url(gcs, name),
                            timeout=10).json()["generation"]
  # A new object only where none exists.
  assert _upload(gcs, name, b"second",
                 ifGenerationMatch=0).status_code == 412
  # Reads: unchanged -> 304, wrong generation -> 412.
  assert requests.get(
      _object_url(gcs, name, alt="media", ifGenerationNotMatch=generation),
      timeout=10).status_code == 304
  assert requests.get(
      _object_url(gcs, name, alt="media", ifGenerationMatch=int(generation) + 1),
      timeout=10).status_code == 412
  changed = requests.get(
      _object_url(gcs, name, alt="media", ifGenerationNotMatch=1),
      timeout=10)
  assert (changed.status_code, changed.content) == (200, b"first")
  # Writes against the current generation pass, against another fail.
  assert _upload(gcs, name, b"third",
                 ifGenerationMatch=int(generation) + 1).status_code == 412
  assert _upload(gcs, name, b"third",
                 ifGenerationMatch=generation).status_code == 200
  assert gcs.read(gcs.uri(name)) == b"third"
  assert requests.delete(_object_url(gcs, name, ifGenerationMatch=generation),
                         timeout=10).status_code == 412
  # A missing object: reads answer 404, a write that needs one fails.
  missing = "emulator/missing"
  assert requests.get(
      _object_url(gcs, missing, alt="media", ifGenerationNotMatch=5),
      timeout=10).status_code == 404
  assert _upload(gcs, missing, b"x", ifGenerationMatch=5).status_code == 412


def test_empty_simple_upload(gcs):
  response = _upload(gcs, "emulator/empty", b"")
  assert response.status_code == 200
  assert response.json()["size"] == "0"
  assert gcs.read(gcs.uri("emulator/empty")) == b""


def test_suffix_range(gcs):
  gcs.client.bucket(gcs.bucket).blob("emulator/range").upload_from_string(
      b"0123456789")
  url = _object_url(gcs, "emulator/range", alt="media")
  tail = requests.get(url, headers={"Range": "bytes=-3"}, timeout=10)
  assert (tail.status_code, tail.content) == (206, b"789")
  assert tail.headers["Content-Range"] == "bytes 7-9/10"
  longer = requests.get(url, headers={"Range": "bytes=-30"}, timeout=10)
  assert longer.content == b"0123456789"
  middle = requests.get(url, headers={"Range": "bytes=2-4"}, timeout=10)
  assert middle.content == b"234"


def test_credentials_are_offline_and_instant(gcs):
  start = time.perf_counter()
  credentials, project = google.auth.default()
  assert project == gcs_fixture.PROJECT
  assert credentials.token == gcs_fixture.TOKEN
  assert credentials.valid
  # Real Google endpoints are unreachable: refused at the proxy at once.
  with pytest.raises(requests.exceptions.ProxyError):
    requests.get("https://storage.googleapis.com/", timeout=10)
  assert time.perf_counter() - start < 5


def test_tensorstore_round_trip(gcs):
  # tensorstore needs the generation header, the preconditions and bounded
  # listings: names just outside its prefix must not show.
  bucket = gcs.client.bucket(gcs.bucket)
  for name in ("emulator/tensorstor", "emulator/tensorstore0"):
    bucket.blob(name).upload_from_string(b"outside")
  store = ts.KvStore.open(f"{gcs.uri('emulator/tensorstore')}/").result()
  store.write("a", b"alpha").result()
  store.write("b", b"").result()
  assert store.read("a").result().value == b"alpha"
  assert store.read("b").result().value == b""
  assert sorted(store.list().result()) == [b"a", b"b"]


def test_array_record_reads_gs(gcs, tmp_path):
  # array_record's own GCS client reads the footer with a suffix range.
  records = [f"record {i}".encode() * (i + 1) for i in range(50)]
  local = tmp_path / "shard.array_record"
  writer = array_record_module.ArrayRecordWriter(str(local), "group_size:1")
  for record in records:
    writer.write(record)
  writer.close()
  uri = gcs.upload_dir(tmp_path, gcs.uri("emulator/array_record"))
  reader = array_record_module.ArrayRecordReader(f"{uri}/shard.array_record")
  try:
    assert reader.num_records() == len(records)
    assert reader.read(0, len(records)) == records
    assert reader.read([49, 3]) == [records[49], records[3]]
  finally:
    reader.close()
