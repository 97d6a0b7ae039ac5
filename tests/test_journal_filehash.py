"""The in-progress journal and the per-file hash memo."""

from __future__ import annotations

import os

from lmmclf.filehash import FileHashCache
from lmmclf.hashing import hash_file
from lmmclf.journal import Journal


def test_journal_round_trip_and_torn_line(tmp_path):
    journal = Journal(tmp_path / "j.jsonl")
    journal.append([{"id": "a", "n": 1}, {"id": "b", "n": 2}])
    with open(journal.path, "ab") as handle:
        handle.write(b'{"id": "c", "n"')  # a writer killed mid-line
    assert [r["id"] for r in journal.read()] == ["a", "b"]
    journal.append([{"id": "d", "n": 4}])
    assert [r["id"] for r in journal.read()] == ["a", "b", "d"]


def test_file_hash_memo_avoids_rereads_and_sees_edits(tmp_path, monkeypatch):
    image = tmp_path / "x.bin"
    image.write_bytes(b"hello")
    memo = FileHashCache(tmp_path / "memo.sqlite")
    first = memo.hash(image)
    assert first == hash_file(image)

    def no_reads(path):
        raise AssertionError("reread an unchanged file")

    monkeypatch.setattr("lmmclf.filehash.hash_file", no_reads)
    assert FileHashCache(tmp_path / "memo.sqlite").hash(image) == first  # a new process, same memo
    monkeypatch.undo()
    image.write_bytes(b"hellO")
    stat = image.stat()
    os.utime(image, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert memo.hash(image) != first


def test_file_hash_memo_never_pairs_a_hash_with_a_newer_file(tmp_path, monkeypatch):
    """A file edited while it is hashed must not be remembered as unchanged with the old hash."""
    image = tmp_path / "x.bin"
    image.write_bytes(b"first")

    def hash_then_edit(path):
        digest = hash_file(path)
        image.write_bytes(b"second, and longer")  # the edit lands after the read, before the memo write
        return digest

    monkeypatch.setattr("lmmclf.filehash.hash_file", hash_then_edit)
    memo = FileHashCache(tmp_path / "memo.sqlite")
    memo.hash(image)
    monkeypatch.undo()
    assert memo.hash(image) == hash_file(image)


def test_journal_removed_while_it_is_read_reads_as_empty(tmp_path, monkeypatch):
    """Another process may finish the artifact and delete the journal between listing and reading it."""
    from pathlib import Path

    journal = Journal(tmp_path / "gone.jsonl")
    monkeypatch.setattr(Path, "exists", lambda self: True)  # it existed when checked, not when opened
    assert list(journal.read()) == []
