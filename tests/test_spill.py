"""Records spilled to local disk and read back (`pipelines.spill`)."""

import os
import re

import pytest

from pipelines import spill
from tests.fixtures import faults


def test_records_come_back_in_the_order_asked_from_several_files(tmp_path):
  directory = str(tmp_path / "spill")
  writers = [spill.SpillWriter(directory) for _ in range(2)]
  records = [os.urandom(i * 100) for i in range(40)]
  refs = [writers[i % 3 % 2].write(r) for i, r in enumerate(records)]
  for writer in writers:
    writer.close()
  assert len({ref.path for ref in refs}) == 2
  assert all(ref.path.startswith(directory + os.sep) and
             ref.path.endswith(spill.SUFFIX) for ref in refs)
  order = list(range(len(records)))[::-3] + list(range(len(records)))[::3]
  assert spill.read([refs[i] for i in order]) == [records[i] for i in order]
  assert spill.read([]) == []


def test_a_writer_without_records_makes_no_file(tmp_path):
  writer = spill.SpillWriter(str(tmp_path / "spill"))
  writer.close()
  writer.close()
  assert not (tmp_path / "spill").exists()


def test_a_missing_or_damaged_spill_file_is_an_error_naming_it(tmp_path):
  writer = spill.SpillWriter(str(tmp_path))
  ref = writer.write(b"record")
  writer.close()
  missing = spill.SpillRef(str(tmp_path / "gone.spill"), 0)
  with pytest.raises(OSError, match=re.escape(
      f"reading the spilled records in {missing.path} failed")):
    spill.read([ref, missing])
  with pytest.raises(OSError, match="out of bound"):
    spill.read([ref._replace(index=1)])
  faults.damage_shard(tmp_path / os.path.basename(ref.path), faults.TRUNCATED)
  with pytest.raises(OSError, match=re.escape(ref.path)):
    spill.read([ref])


def test_a_full_disk_is_an_error_naming_the_spill_file(tmp_path):
  small = tmp_path / "small"
  with faults.small_tmpfs(small, 64 << 10):
    writer = spill.SpillWriter(str(small / "spill"))
    with pytest.raises(OSError) as raised:
      for _ in range(64):
        writer.write(os.urandom(4096))
      writer.close()
  assert re.fullmatch(
      rf"writing {re.escape(str(small))}/spill/[0-9a-f]{{16}}\.spill failed: "
      r".*No space left on device.*", str(raised.value), re.DOTALL)
