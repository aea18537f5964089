"""Reading a W&B offline run's file (``run-<id>.wandb``) back, for the tracker tests.

wandb no longer ships a reader for these files, so this is one, written from the format: a
7-byte header (b":W&B", magic 0xBEE1, version 0), then a LevelDB-style log: 32 KiB blocks of
records, each with a 7-byte header (CRC-32 of the type byte and the data, the data's length,
the type: 1 full, 2 first, 3 middle, 4 last piece of a record), a block's tail shorter than a
header left as padding. Each record is a protobuf ``wandb_internal_pb2.Record``. Every CRC is
checked, so a file this misreads fails loudly rather than passing a test.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 32768
HEADER = struct.Struct("<4sHB")
RECORD = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def raw_records(path: Path):
    data = Path(path).read_bytes()
    ident, magic, version = HEADER.unpack_from(data, 0)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, magic, version)
    pos, pending = HEADER.size, b""
    while pos + RECORD.size <= len(data):
        space = BLOCK - pos % BLOCK
        if space < RECORD.size:  # a block's tail too short for a header: padding
            pos += space
            continue
        crc, length, kind = RECORD.unpack_from(data, pos)
        chunk = data[pos + RECORD.size : pos + RECORD.size + length]
        assert zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF == crc, f"bad CRC at byte {pos}"
        pos += RECORD.size + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""
        else:
            raise AssertionError(f"unknown record type {kind} at byte {pos}")


def _items(items) -> dict:
    return {(item.key or "/".join(item.nested_key)): json.loads(item.value_json) for item in items}


@dataclass
class OfflineRun:
    run_id: str = ""
    project: str = ""
    group: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # one dict per logged step
    summary: dict = field(default_factory=dict)


def read_offline_run(path: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    run = OfflineRun()
    for raw in raw_records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group, run.name, run.tags = r.run_id, r.project, r.run_group, r.display_name, list(r.tags)
            run.config.update({k: v.get("value", v) if isinstance(v, dict) else v for k, v in _items(r.config.update).items()})
        elif kind == "config":
            run.config.update({k: v.get("value", v) if isinstance(v, dict) else v for k, v in _items(record.config.update).items()})
        elif kind == "history":
            run.history.append(_items(record.history.item))
        elif kind == "summary":
            run.summary.update({k: v for k, v in _items(record.summary.update).items() if k})
    return run
