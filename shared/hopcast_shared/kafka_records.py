"""Fetched record batches that a header key which is not UTF-8 cannot stop.

The broker takes any bytes as a header key, but aiokafka (0.14) decodes keys strictly as UTF-8
while it reads a fetched batch: one record whose header key is not UTF-8 raises inside the
fetcher, on every fetch, and its partition stops for good before any handler sees a record.

`install()` makes the consumers' fetcher read batches as before (aiokafka's C reader) and, only
when a batch raises UnicodeDecodeError, read that batch again with aiokafka's Python reader,
header keys decoded with `surrogateescape`: the record reaches the consumer, which dead-letters
it (the dead letter stores the key's original bytes, `key.encode("utf-8", "surrogateescape")`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from aiokafka.consumer import fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import _DefaultRecordBatchPy, _DefaultRecordPy
from aiokafka.record.memory_records import _MemoryRecordsPy
from aiokafka.record.util import decode_varint

_installed = False


def install() -> None:
    """Use the lenient reader in every aiokafka consumer of this process (idempotent)."""
    global _installed
    if not _installed:
        fetcher.MemoryRecords = LenientMemoryRecords
        _installed = True


class LenientMemoryRecords(_MemoryRecordsPy):  # type: ignore[misc]
    """aiokafka's MemoryRecords, each v2 batch wrapped so that it falls back to a lenient read."""

    def next_batch(self, *args: Any) -> Any:
        raw = self._next_slice
        batch = super().next_batch(*args)
        if raw is None or batch is None or batch.magic < 2:
            return batch
        return _FallbackBatch(batch, raw)


class _FallbackBatch:
    """A record batch read by aiokafka's fast reader; read again leniently should it raise on a
    header key, the records already given skipped."""

    def __init__(self, batch: Any, raw: memoryview) -> None:
        self._batch = batch
        self._raw = raw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __next__(self) -> Any:  # the fetcher reads a control batch's marker this way
        return next(self._batch)

    def __iter__(self) -> Iterator[Any]:
        given = 0
        try:
            for record in self._batch:
                given += 1
                yield record
        except UnicodeDecodeError:
            for index, record in enumerate(_LenientBatch(self._raw)):
                if index >= given:
                    yield record


class _LenientBatch(_DefaultRecordBatchPy):  # type: ignore[misc]
    """aiokafka's Python batch reader, header keys decoded with `surrogateescape` (its
    `_read_msg`, Apache-2.0, with that one change)."""

    def _read_msg(self, decode_varint: Any = decode_varint) -> _DefaultRecordPy:
        buffer = self._buffer
        pos: int = self._pos  # type: ignore[has-type]
        length, pos = decode_varint(buffer, pos)
        start_pos = pos
        _, pos = decode_varint(buffer, pos)  # attributes
        ts_delta, pos = decode_varint(buffer, pos)
        timestamp = (
            self.max_timestamp if self.timestamp_type == self.LOG_APPEND_TIME else self.first_timestamp + ts_delta
        )
        offset_delta, pos = decode_varint(buffer, pos)
        key, pos = _nullable_bytes(buffer, pos)
        value, pos = _nullable_bytes(buffer, pos)
        header_count, pos = decode_varint(buffer, pos)
        if header_count < 0:
            raise CorruptRecordException(f"Found invalid number of record headers {header_count}")
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(header_count):
            h_key_len, pos = decode_varint(buffer, pos)
            if h_key_len < 0:
                raise CorruptRecordException(f"Invalid negative header key size {h_key_len}")
            h_key = bytes(buffer[pos : pos + h_key_len]).decode("utf-8", "surrogateescape")
            pos += h_key_len
            h_value, pos = _nullable_bytes(buffer, pos)
            headers.append((h_key, h_value))
        if pos - start_pos != length:
            raise CorruptRecordException(f"Invalid record size: expected {length} bytes, read {pos - start_pos}")
        self._pos = pos
        return _DefaultRecordPy(self.base_offset + offset_delta, timestamp, self.timestamp_type, key, value, headers)


def _nullable_bytes(buffer: Any, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(buffer, pos)
    if size < 0:
        return None, pos
    return bytes(buffer[pos : pos + size]), pos + size
