#!/usr/bin/env python3
"""Read lmr shards from Python (for PyTorch users): LMDB shards through python-lmdb and the
record reader next to this file, HDF5 shards through h5py. Compressed LMDB payloads need the
`zstandard` module (or pack with `lmr-pack --zstd-level 0`).

    from lmr_shards import Shard
    s = Shard("epic-train.lmdb")
    clip_id, labels, feats = s[0]          # feats: numpy array [views, T, D] (or frames)
    print(len(s), s.meta["n_classes"])
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lmr_record  # noqa: E402

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Shard:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.hdf5 = f.read(8) == HDF5_SIGNATURE
        if self.hdf5:
            import h5py
            self.f = h5py.File(path, "r")
            self.meta = json.loads(self.f.attrs["lmr_meta"])
            self.data = self.f["frames" if "frames" in self.f else "features"]
            self.ids = [s.decode() for s in self.f["ids"][:]]
            self.rows = self.f["rows"][:] if "rows" in self.f else None
            self.label_index, self.label_values = self.f["label_index"][:], self.f["label_values"][:]
        else:
            import lmdb
            self.env = lmdb.open(path, subdir=False, readonly=True, lock=False)
            self.txn = self.env.begin()
            self.meta = json.loads(self.txn.get(b"__meta__") or b"{}")
            self.ids = [k.decode() for k in self.txn.cursor().iternext(values=False) if k != b"__meta__"]

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        """(clip id, labels, payload): features [views, T, D], frames [views, T, H, W, 3], as in HDF5."""
        if not self.hdf5:
            rec = lmr_record.parse_record(self.txn.get(self.ids[i].encode()))
            x = rec["data"]
            if x.ndim == 4 and rec["kind"] == 2 and x.shape[3] == 1:  # features [views, T, D]
                x = x[..., 0]
            elif x.ndim == 4 and rec["kind"] == 1 and x.shape[3] % 3 == 0:  # frames [views, T, H, W, 3]
                x = x.reshape(x.shape[:3] + (x.shape[3] // 3, 3))
            return rec["id"], rec["labels"], x
        lo, n = (int(v) for v in self.label_index[i])
        labels = self.label_values[lo:lo + n].tolist()
        if self.rows is None:
            x = self.data[i]
        else:
            first, count = (int(v) for v in self.rows[i])
            views = self.meta["dims"][0]
            x = self.data[first:first + count]
            x = x.reshape((views, count // views) + x.shape[1:])
        return self.ids[i], labels, x


if __name__ == "__main__":
    s = Shard(sys.argv[1])
    print(f"{len(s)} clips, {s.meta.get('n_classes')} classes, kind {s.meta.get('kind')}")
    for i in range(min(3, len(s))):
        cid, labels, x = s[i]
        print(cid, labels, x.dtype, x.shape)
