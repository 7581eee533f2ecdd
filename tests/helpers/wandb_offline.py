"""Read the records of a wandb offline run file (``offline-run-*/run-*.wandb``) without wandb's servers.

The file is wandb's transaction log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then
LevelDB-log records in 32 KiB blocks (checksum 4 bytes, length 2, type 1: full, first, middle, last), each
payload a ``wandb_internal_pb2.Record`` (a truncated or corrupt payload fails to parse). wandb 0.31 no longer ships a Python reader for it.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def payloads(path: Path) -> list[bytes]:
    data = Path(path).read_bytes()
    assert data[:7] == HEADER, "not a wandb transaction log"
    position, pending, found = 7, b"", []
    while position + 7 <= len(data):
        room = BLOCK - position % BLOCK
        if room < 7:  # a block's tail too short for a record header is padding
            position += room
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if length == 0 and kind == 0:  # zero padding up to the block end
            position += room
            continue
        chunk = data[position + 7:position + 7 + length]
        if len(chunk) < length:  # a record still being written
            break
        position += 7 + length
        if kind == FULL:
            found.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            found.append(pending + chunk)
            pending = b""
    return found


def records(path: Path, *, timeout: float = 120.0) -> list:
    """The run's records once its ``exit`` record is written: ``run.finish()`` returns while wandb's
    service process may still be writing the file."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        parsed = _parse(path)
        if (parsed and parsed[-1].WhichOneof("record_type") == "exit") or time.monotonic() > deadline:
            return parsed
        time.sleep(0.2)


def _parse(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    parsed = []
    for payload in payloads(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        parsed.append(record)
    return parsed


def run_file(wandb_dir: Path, run_id: str) -> Path:
    """The offline run file of ``run_id``: under ``wandb_dir``, or under the folder wandb's process-wide setup
    chose (wandb reads WANDB_DIR once per process, so a test module that ran earlier may have fixed it)."""
    import wandb

    roots = [Path(wandb_dir) / "wandb", Path(wandb.setup().settings.wandb_dir)]
    for root in roots:
        found = sorted(root.glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
        if found:
            return found[0]
    raise AssertionError(f"no offline run file for run {run_id} under {', '.join(map(str, roots))}")
