#!/usr/bin/python3
"""Independent check of a safetensors file against the rules of the reference implementation
(huggingface/safetensors `validate`): 8-byte little-endian header length, a JSON object, tensors
whose byte ranges, sorted, start at 0, follow each other without gaps or overlaps and end exactly
at the end of the file, sizes that match dtype x shape. Prints name dtype shape first-value per
tensor. Usage: st_check.py FILE"""
import json
import struct
import sys

import numpy as np

SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "U8": 1, "F64": 8}
NP = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "U8": "u1", "F64": "<f8"}

buf = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", buf[:8])
assert 8 + n <= len(buf), "header runs past the end"
header = buf[8:8 + n]
assert header.startswith(b"{"), "header is not a JSON object"
meta = json.loads(header)
data = buf[8 + n:]
tensors = sorted(((v["data_offsets"], k, v) for k, v in meta.items() if k != "__metadata__"),
                 key=lambda t: t[0][0])
end = 0
for (b, e), name, v in tensors:
    assert b == end, f"{name}: starts at {b}, previous ended at {end}"
    count = int(np.prod(v["shape"])) if v["shape"] else 1
    assert (e - b) == count * SIZES[v["dtype"]], f"{name}: {e - b} bytes for {v['dtype']}{v['shape']}"
    end = e
    x = np.frombuffer(data[b:e], NP[v["dtype"]]).reshape(v["shape"])
    print(name, v["dtype"], list(v["shape"]), x.flat[0] if x.size else "-")
assert end == len(data), f"tensors end at {end}, data has {len(data)} bytes"
for k, v in meta.get("__metadata__", {}).items():
    assert isinstance(v, str), f"metadata {k} is not a string"
