"""A pure-numpy reader of TensorFlow 1 checkpoints (tensor bundles), for weights shipped as TF files.

musicnn ships its taggers as TF1 checkpoints, and TensorFlow does not install beside this
stack, so the two files are read directly:

- `<prefix>.index` is an SSTable (LevelDB table format, uncompressed blocks): a footer points to
  an index block whose entries point to data blocks; each data-block entry maps a tensor name to
  a serialized `BundleEntryProto` (dtype, shape, shard id, byte offset, byte size). The entry with
  the empty name is the bundle header and is skipped.
- `<prefix>.data-00000-of-00001` holds the raw little-endian tensor bytes at those offsets.

The values come back bit for bit as TensorFlow stored them.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from ..errors import CheckpointError

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_SIZE = 48
_BLOCK_TRAILER = 5  # 1 byte compression type + 4 bytes crc32c

# tensorflow/core/framework/types.proto -> numpy
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8,
           9: np.int64, 10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor lives in the data shards (a decoded BundleEntryProto)."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CheckpointError("truncated varint in TF checkpoint index")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes):
    """Yield (field number, wire type, value) of a protobuf message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value = struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value = buf[pos:pos + n]
            pos += n
        elif wire == 5:
            value = struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        else:
            raise CheckpointError(f"unsupported protobuf wire type {wire} in TF checkpoint index")
        yield field, wire, value


def _decode_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for field, _, value in _proto_fields(buf):
        if field == 2:  # TensorShapeProto.dim
            size = 0
            for f, _, v in _proto_fields(value):
                if f == 1:
                    size = v
            dims.append(int(size))
    return tuple(dims)


def _decode_entry(name: str, buf: bytes) -> BundleEntry:
    dtype = shard = offset = size = 0
    shape: tuple[int, ...] = ()
    for field, _, value in _proto_fields(buf):
        if field == 1:
            dtype = value
        elif field == 2:
            shape = _decode_shape(value)
        elif field == 3:
            shard = value
        elif field == 4:
            offset = value
        elif field == 5:
            size = value
        elif field == 7:
            raise CheckpointError(f"tensor {name!r} is stored in slices, which this reader does not support")
    return BundleEntry(name, int(dtype), shape, int(shard), int(offset), int(size))


def _block_entries(data: bytes, offset: int, size: int):
    """Yield (key, value) of one uncompressed SSTable block."""
    if data[offset + size] != 0:
        raise CheckpointError("compressed SSTable blocks are not supported (TF bundles are uncompressed)")
    block = data[offset:offset + size]
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    pos = 0
    key = b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def read_index(index: bytes) -> dict[str, BundleEntry]:
    """All tensor entries of a `.index` file's bytes, by name."""
    if len(index) < _FOOTER_SIZE:
        raise CheckpointError("TF checkpoint index is too short to be an SSTable")
    footer = index[-_FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise CheckpointError("not a TF checkpoint index (SSTable magic number missing)")
    _, pos = _varint(footer, 0)  # metaindex handle offset
    _, pos = _varint(footer, pos)  # metaindex handle size
    idx_off, pos = _varint(footer, pos)
    idx_size, pos = _varint(footer, pos)
    out: dict[str, BundleEntry] = {}
    for _, handle in _block_entries(index, idx_off, idx_size):
        blk_off, p = _varint(handle, 0)
        blk_size, _ = _varint(handle, p)
        for key, value in _block_entries(index, blk_off, blk_size):
            if not key:  # the BundleHeaderProto
                continue
            name = key.decode("utf-8")
            out[name] = _decode_entry(name, value)
    return out


def read_bundle(index: bytes, shards: list[bytes], skip=lambda name: False) -> dict[str, np.ndarray]:
    """name -> array for every tensor of a bundle (`skip(name)` True leaves one out, e.g. optimizer slots)."""
    out = {}
    for name, e in sorted(read_index(index).items()):
        if skip(name):
            continue
        if e.dtype not in _DTYPES:
            raise CheckpointError(f"tensor {name!r} has TF dtype {e.dtype}, which this reader does not support")
        if e.shard_id >= len(shards):
            raise CheckpointError(f"tensor {name!r} lives in shard {e.shard_id}, only {len(shards)} given")
        raw = shards[e.shard_id][e.offset:e.offset + e.size]
        dt = np.dtype(_DTYPES[e.dtype]).newbyteorder("<")
        count = int(np.prod(e.shape)) if e.shape else 1
        if len(raw) != count * dt.itemsize:
            raise CheckpointError(f"tensor {name!r}: {len(raw)} bytes stored, {count * dt.itemsize} expected")
        out[name] = np.frombuffer(raw, dtype=dt).reshape(e.shape).astype(dt.newbyteorder("="))
    return out
