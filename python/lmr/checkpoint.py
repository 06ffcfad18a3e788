"""lmr checkpoints are safetensors files; this reads them with json + numpy alone (no
`safetensors` package needed) and returns the tensors and the metadata, JSON values decoded."""
import json
import struct

import numpy as np

_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1"}
MODEL_TENSORS = ("ln.weight", "ln.bias", "pre_logits.weight", "pre_logits.bias", "head.weight", "head.bias")
LN_EPS = 1e-6  # the model's LayerNorm epsilon (not PyTorch's default 1e-5)


class Checkpoint:
    def __init__(self, tensors, metadata):
        self.tensors = tensors
        self.metadata = metadata

    def __getitem__(self, name):
        return self.tensors[name]

    @property
    def class_counts(self):
        return list(self.metadata.get("class_counts") or [])


def _decode(v):
    try:
        return json.loads(v)
    except (TypeError, ValueError):
        return v


def load_checkpoint(path, model_only=False):
    """Read a checkpoint: Checkpoint.tensors (name -> numpy array), Checkpoint.metadata (key ->
    value; JSON strings decoded). model_only keeps the six model tensors (no optimiser state)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: not a safetensors file ({len(buf)} bytes)")
    (n,) = struct.unpack_from("<Q", buf)
    if buf[8:9] != b"{" or 8 + n > len(buf):
        raise ValueError(f"{path}: not a safetensors checkpoint (header of {n} bytes, file of {len(buf)})")
    header = json.loads(buf[8:8 + n])
    data = memoryview(buf)[8 + n:]
    meta = {k: _decode(v) for k, v in (header.pop("__metadata__", None) or {}).items()}
    tensors = {}
    for name, t in header.items():
        if model_only and name not in MODEL_TENSORS:
            continue
        b, e = t["data_offsets"]
        a = np.frombuffer(data[b:e], dtype=_DTYPES[t["dtype"]]).reshape(t["shape"])
        tensors[name] = a.astype(a.dtype.newbyteorder("="))
    return Checkpoint(tensors, meta)


def head_forward(ck, x):
    """The model in numpy, for checks: x [N, D] (features already averaged over T) -> logits [N, C]."""
    t = ck.tensors
    x = np.asarray(x, dtype=np.float64)
    mu = x.mean(1, keepdims=True)
    var = ((x - mu) ** 2).mean(1, keepdims=True)
    u = (x - mu) / np.sqrt(var + LN_EPS) * t["ln.weight"] + t["ln.bias"]
    f = np.tanh(u @ t["pre_logits.weight"].T + t["pre_logits.bias"]) if "pre_logits.weight" in t else u
    return f @ t["head.weight"].T + t["head.bias"]
