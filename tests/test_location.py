"""location.Location: one behaviour for a local folder and for a pyarrow filesystem URI.

The URI cases run on ``file://`` URIs, which go through pyarrow's LocalFileSystem exactly as an
``s3://`` or ``gs://`` one goes through S3FileSystem or GcsFileSystem (no mock servers).
"""

from __future__ import annotations

import os
import pickle
import stat

import pytest

from grokgrid import location
from grokgrid.location import Location, StorageError, as_location


@pytest.fixture(params=["path", "uri"])
def root(request, tmp_path) -> Location:
    return as_location(tmp_path if request.param == "path" else f"file://{tmp_path}")


def test_local_and_uri_locations_name_the_same_folder(tmp_path):
    local, uri = as_location(tmp_path), as_location(f"file://{tmp_path}")
    assert local.local == tmp_path and uri.local is None
    assert uri.path == local.path == str(tmp_path)
    assert str(uri) == f"file://{tmp_path}" and str(uri / "a" / "b.txt") == f"file://{tmp_path}/a/b.txt"
    assert (uri / "a").name == "a" and (uri / "a" / "b").parent == uri / "a"
    assert local == tmp_path and hash(local) == hash(tmp_path)  # a local location is its path
    assert uri != local


def test_a_relative_local_path_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert as_location("results/x").path == str(tmp_path / "results" / "x")


def test_uri_children_keep_the_query_and_travel_as_text():
    where = as_location("s3://bucket/results?region=us-east-1") / "sweep"
    assert str(where) == "s3://bucket/results/sweep?region=us-east-1"
    assert where.path == "bucket/results/sweep" and where.name == "sweep"
    assert str(where.parent) == "s3://bucket/results?region=us-east-1"
    # Pickled (into Ray configs) as its text: the receiver opens the URI with its own credentials.
    assert pickle.loads(pickle.dumps(where)) == where


@pytest.mark.parametrize("text", ["nosuchscheme://x/y", "s3://bucket/x?bogus=1"])
def test_an_unusable_uri_is_a_storage_error_naming_it(text):
    with pytest.raises(StorageError, match="cannot open this storage URI"):
        as_location(text)


def test_write_read_list_and_delete(root, tmp_path):
    target = root / "a" / "b" / "f.txt"
    assert not target.exists() and not (root / "a").is_dir()
    target.write_text("one")
    target.write_text("two")  # replaces the whole file
    assert target.read_text() == "two" and (tmp_path / "a" / "b" / "f.txt").read_text() == "two"
    assert target.is_file() and not target.is_dir() and (root / "a").is_dir() and not (root / "a").is_file()
    (root / "a" / "g.bin").write_bytes(b"\x00\x01")
    assert [p.name for p in (root / "a").iterdir()] == ["b", "g.bin"]
    assert [str(p) for p in (root / "a").files()] == [str(root / "a" / "b" / "f.txt"), str(root / "a" / "g.bin")]
    assert (root / "nope").iterdir() == [] and (root / "nope").files() == []
    assert not [p for p in tmp_path.rglob(".*")], "a temp file was left behind"

    (root / "a" / "g.bin").unlink()
    (root / "a" / "g.bin").unlink()  # already gone: no error
    (root / "a" / "b").remove()
    assert (root / "a").iterdir() == []
    (root / "a").rmtree()
    (root / "a").rmtree()
    assert not (root / "a").exists()


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(root, tmp_path):
    target = root / "f.txt"
    target.write_text("old")
    with pytest.raises(TypeError):
        target.write_bytes(object())  # fails after the temp file was opened
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def test_written_files_get_the_mode_a_plain_open_would_give(root, tmp_path):
    # mkstemp alone leaves 0600: results on a shared disk must be as readable as the umask allows.
    (root / "f.txt").write_text("x")
    mode = stat.S_IMODE((tmp_path / "f.txt").stat().st_mode)
    assert mode == 0o666 & ~location._UMASK, oct(mode)


def test_a_uri_location_is_not_a_local_path(tmp_path):
    with pytest.raises(TypeError, match="not a local path"):
        os.fspath(as_location(f"file://{tmp_path}"))
    assert os.fspath(as_location(tmp_path)) == str(tmp_path)
