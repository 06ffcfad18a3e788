"""The lmr clip record (a header, the clip id, its labels and a raw or zstd payload, checked with
XXH3-64) and record streams (.rec files: records back to back). Needs numpy; zstd payloads need
the `zstandard` module; the checksum comes from the `xxhash` module or from libxxhash.

    from lmr.record import read_stream
    for rec in read_stream("train.rec"):
        print(rec["id"], rec["labels"], rec["data"].shape)
"""
import json
import struct
import sys

import numpy as np

MAGIC = b"LMRREC01"
HEADER = struct.Struct("<8sHBBBBH4IQQQH")  # 58 bytes, little endian
VERSION = 2
KIND_FRAMES, KIND_FEATURES, KIND_META = 1, 2, 3
META_ID = "__meta__"
DTYPES = {1: np.uint8, 2: np.float16, 3: np.float32}
DTYPE_CODES = {np.dtype(v): k for k, v in DTYPES.items()}


class RecordError(ValueError):
    """A record that is not what its header says (bad magic, sizes, checksum, truncation)."""


def _find_xxh3():
    """XXH3-64 from the xxhash module, else from libxxhash through ctypes (looked up once: finding a
    library spawns a process)."""
    try:
        import xxhash
        return lambda data: xxhash.xxh3_64_intdigest(bytes(data))
    except ImportError:
        pass
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
    fn = lib.XXH3_64bits
    fn.restype = ctypes.c_uint64
    fn.argtypes = [ctypes.c_char_p, ctypes.c_size_t]

    def xxh3(data):
        data = bytes(data)
        return fn(data, len(data))
    return xxh3


_xxh3_impl = None


def _xxh3(data):
    global _xxh3_impl
    if _xxh3_impl is None:
        _xxh3_impl = _find_xxh3()
    return _xxh3_impl(data)


def checksum(header, id_and_labels, payload):
    """Header bytes 8..39 with the codec byte zeroed, then the id and labels, then the raw payload."""
    fields = bytearray(header[8:40])
    fields[12 - 8] = 0
    return _xxh3(bytes(fields) + bytes(id_and_labels) + bytes(payload))


def parse(buf, offset=0):
    """Parse and check the record at buf[offset:]. Returns a dict: id, kind, dims, labels, data
    (numpy array of dims), checksum, size (bytes the record takes)."""
    buf = memoryview(buf)
    if len(buf) - offset < HEADER.size:
        raise RecordError(f"offset {offset}: truncated header")
    magic, version, kind, dtype, codec, ndim, n_labels, *rest = HEADER.unpack_from(buf, offset)
    dims, (raw_size, stored_size, cks, id_len) = rest[:4], rest[4:]
    if magic != MAGIC:
        raise RecordError(f"offset {offset}: bad magic {magic!r}")
    if version != VERSION:
        raise RecordError(f"offset {offset}: record version {version}, this reader knows {VERSION}")
    if kind not in (1, 2, 3) or dtype not in DTYPES or codec not in (0, 1) or not 1 <= ndim <= 4:
        raise RecordError(f"offset {offset}: bad kind/dtype/codec/ndim {kind}/{dtype}/{codec}/{ndim}")
    shape = tuple(dims[:ndim])
    if int(np.prod(shape)) * np.dtype(DTYPES[dtype]).itemsize != raw_size or any(dims[ndim:]):
        raise RecordError(f"offset {offset}: dims {dims} disagree with raw size {raw_size}")
    p = offset + HEADER.size
    end = p + id_len + 4 * n_labels + stored_size
    if end > len(buf):
        raise RecordError(f"offset {offset}: truncated record ({len(buf) - offset} of {end - offset} bytes)")
    clip_id = bytes(buf[p:p + id_len]).decode("utf-8", errors="replace")
    labels = list(struct.unpack_from(f"<{n_labels}i", buf, p + id_len))
    stored = bytes(buf[p + id_len + 4 * n_labels:end])
    if codec == 1:
        import zstandard
        stored = zstandard.ZstdDecompressor().decompress(stored, max_output_size=raw_size)
    if len(stored) != raw_size:
        raise RecordError(f"clip {clip_id}: payload of {len(stored)} bytes, header says {raw_size}")
    if checksum(buf[offset:offset + HEADER.size], buf[p:p + id_len + 4 * n_labels], stored) != cks:
        raise RecordError(f"clip {clip_id}: checksum mismatch")
    data = np.frombuffer(stored, dtype=DTYPES[dtype]).reshape(shape)
    return {"id": clip_id, "kind": kind, "dims": shape, "labels": labels, "data": data,
            "checksum": cks, "size": end - offset}


def encode(clip_id, labels, array, kind=KIND_FEATURES, zstd_level=0):
    """Encode one record. Features are [views, T, D] (stored as [views, T, D, 1]); frames are
    [views, T, H, W, 3] (stored as [views, T, H, W*3]); kind KIND_META takes a bytes payload."""
    if kind == KIND_META:
        a = np.frombuffer(bytes(array), dtype=np.uint8)
        dims = (a.size, 0, 0, 0)  # dims past ndim are 0 on the wire
        ndim = 1
    else:
        a = np.ascontiguousarray(array)
        if kind == KIND_FEATURES:
            a = a.reshape(a.shape[:3] + (1,)) if a.ndim == 3 else a
        elif a.ndim == 5:
            a = a.reshape(a.shape[:3] + (a.shape[3] * a.shape[4],))
        if a.ndim != 4:
            raise ValueError(f"clip {clip_id}: want a 3-D features or 5-D frames array, got {array.shape}")
        dims, ndim = a.shape, 4
    if kind == KIND_META and (labels or clip_id != META_ID):
        raise ValueError(f"a metadata record has the id {META_ID} and no labels")
    if a.dtype not in DTYPE_CODES:
        raise ValueError(f"clip {clip_id}: dtype {a.dtype} (u8, f16 or f32 only)")
    raw = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    cid = clip_id.encode("utf-8")
    if len(cid) > 65535:
        raise ValueError(f"clip id of {len(cid)} bytes (at most 65535)")
    lab = struct.pack(f"<{len(labels)}i", *labels)
    stored, codec = raw, 0
    if zstd_level > 0:
        import zstandard
        stored, codec = zstandard.ZstdCompressor(level=zstd_level).compress(raw), 1
    head = HEADER.pack(MAGIC, VERSION, kind, DTYPE_CODES[a.dtype], codec, ndim, len(labels),
                       *dims, len(raw), len(stored), 0, len(cid))
    cks = checksum(head, cid + lab, raw)
    head = head[:48] + struct.pack("<Q", cks) + head[56:]
    return head + cid + lab + stored


def meta_record(meta):
    """The metadata record a stream may open with (provenance: dataset, backbone, class names...)."""
    return encode(META_ID, [], json.dumps(meta).encode("utf-8"), kind=KIND_META)


def read_stream(path, meta=None):
    """Yield the clip records of a .rec stream. A metadata record is not yielded: pass a dict as
    `meta` to receive its content. A truncated last record is reported on stderr and skipped;
    damage anywhere else raises RecordError."""
    with open(path, "rb") as f:
        buf = f.read()
    off = 0
    while off < len(buf):
        try:
            rec = parse(buf, off)
        except RecordError as e:
            if "truncated" in str(e) and buf.find(MAGIC, off + 1) < 0:
                print(f"{path}: {e}, ignored", file=sys.stderr)
                return
            raise
        off += rec["size"]
        if rec["kind"] == KIND_META:
            if meta is not None:
                meta.update(json.loads(rec["data"].tobytes()))
            continue
        yield rec


def features_view(rec):
    """A record's payload in the natural shape: features [views, T, D], frames [views, T, H, W, 3]."""
    x = rec["data"]
    if rec["kind"] == KIND_FEATURES and x.ndim == 4 and x.shape[3] == 1:
        return x[..., 0]
    if rec["kind"] == KIND_FRAMES and x.ndim == 4 and x.shape[3] % 3 == 0:
        return x.reshape(x.shape[:3] + (x.shape[3] // 3, 3))
    return x
