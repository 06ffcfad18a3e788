#!/usr/bin/env python3
"""Independent reader of lmr clip records (DESIGN section 3): one record from bytes, the records of
a .rec stream, or the values of an LMDB shard. Needs numpy; zstd payloads need the `zstandard`
module; checksums are always checked (xxhash module or libxxhash).

    from lmr_record import parse_record, read_stream
    for rec in read_stream("train.rec"):
        print(rec["id"], rec["labels"], rec["data"].shape)
"""
import struct
import sys

import numpy as np

MAGIC = b"LMRREC01"
HEADER = struct.Struct("<8sHBBBBH4IQQQH")  # 58 bytes, little endian
VERSION = 2
DTYPES = {1: np.uint8, 2: np.float16, 3: np.float32}


def _xxh3(data):
    """XXH3-64 from the xxhash module, or from the C library libxxhash through ctypes."""
    try:
        import xxhash
        return xxhash.xxh3_64_intdigest(data)
    except ImportError:
        import ctypes
        import ctypes.util
        lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
        lib.XXH3_64bits.restype = ctypes.c_uint64
        lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        return lib.XXH3_64bits(data, len(data))


def record_checksum(header, id_and_labels, payload):
    """The record checksum: header bytes 8..39 with the codec byte (12) zeroed, then the id and
    label bytes, then the raw payload."""
    fields = bytearray(header[8:40])
    fields[12 - 8] = 0
    return _xxh3(bytes(fields) + bytes(id_and_labels) + bytes(payload))


class RecordError(ValueError):
    pass


def parse_record(buf, offset=0):
    """Parse the record at buf[offset:]; returns a dict with id, kind, dims, labels, data, size."""
    buf = memoryview(buf)
    if len(buf) - offset < HEADER.size:
        raise RecordError(f"offset {offset}: truncated header")
    (magic, version, kind, dtype, codec, ndim, n_labels, *rest) = HEADER.unpack_from(buf, offset)
    dims, (raw_size, stored_size, checksum, id_len) = rest[:4], rest[4:]
    if magic != MAGIC:
        raise RecordError(f"offset {offset}: bad magic {magic!r}")
    if version != VERSION:
        raise RecordError(f"offset {offset}: unsupported version {version}")
    if kind not in (1, 2, 3) or dtype not in DTYPES or codec not in (0, 1) or not 1 <= ndim <= 4:
        raise RecordError(f"offset {offset}: bad kind/dtype/codec/ndim {kind}/{dtype}/{codec}/{ndim}")
    shape = tuple(dims[:ndim])
    if int(np.prod(shape)) * np.dtype(DTYPES[dtype]).itemsize != raw_size or any(dims[ndim:]):
        raise RecordError(f"offset {offset}: dims {dims} disagree with raw size {raw_size}")
    p = offset + HEADER.size
    end = p + id_len + 4 * n_labels + stored_size
    if end > len(buf):
        raise RecordError(f"offset {offset}: truncated record ({len(buf) - offset} of {end - offset} bytes)")
    clip_id = bytes(buf[p:p + id_len]).decode("utf-8")
    labels = list(struct.unpack_from(f"<{n_labels}i", buf, p + id_len))
    stored = bytes(buf[p + id_len + 4 * n_labels:end])
    if codec == 1:
        import zstandard  # only needed for compressed payloads
        stored = zstandard.ZstdDecompressor().decompress(stored, max_output_size=raw_size)
    if len(stored) != raw_size:
        raise RecordError(f"record {clip_id}: payload of {len(stored)} bytes, header says {raw_size}")
    if record_checksum(buf[offset:offset + HEADER.size], buf[p:p + id_len + 4 * n_labels], stored) != checksum:
        raise RecordError(f"record {clip_id}: checksum mismatch")
    data = np.frombuffer(stored, dtype=DTYPES[dtype]).reshape(shape)
    return {"id": clip_id, "kind": kind, "dims": shape, "labels": labels, "data": data,
            "checksum": checksum, "size": end - offset}


def read_stream(path, with_meta=False):
    """Yield the clip records of a .rec stream; a truncated last record is reported and skipped.
    The stream's metadata record (kind 3, id "__meta__", a JSON payload) is yielded only with
    with_meta."""
    with open(path, "rb") as f:
        buf = f.read()
    off = 0
    while off < len(buf):
        try:
            rec = parse_record(buf, off)
        except RecordError as e:
            if "truncated" in str(e):
                print(f"{path}: {e}, ignored", file=sys.stderr)
                return
            raise
        if rec["kind"] != 3 or with_meta:
            yield rec
        off += rec["size"]


def read_lmdb(path):
    """Yield (id, record) for every clip of an LMDB shard, and the metadata JSON string first."""
    import lmdb
    env = lmdb.open(path, subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        yield "__meta__", txn.get(b"__meta__")
        for key, value in txn.cursor():
            if key != b"__meta__":
                yield key.decode("utf-8"), parse_record(value)


if __name__ == "__main__":
    for rec in read_stream(sys.argv[1]):
        print(rec["id"], rec["labels"], rec["data"].dtype, rec["dims"])
