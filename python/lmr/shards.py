"""lmr shards from Python: LMDB shards (python-lmdb; values are clip records) and HDF5 shards
(h5py), one file or a set of them read as one dataset, as lmr-train reads them.

    from lmr.shards import ShardSet
    s = ShardSet(["train.lmdb", "train-2.h5"])
    clip_id, labels, x = s[0]          # x: [views, T, D] features or [views, T, H, W, 3] frames
"""
import json

from . import record

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class ShardError(ValueError):
    """A shard that cannot be read as lmr wrote it, or a set whose files do not belong together."""


class Shard:
    """One shard file. Records are numbered in LMDB key order, or in HDF5 write order."""

    def __init__(self, path):
        self.path = str(path)
        with open(self.path, "rb") as f:
            self.hdf5 = f.read(8) == HDF5_SIGNATURE
        if self.hdf5:
            import h5py
            self._f = h5py.File(self.path, "r")
            self.meta = json.loads(self._f.attrs["lmr_meta"])
            self._data = self._f["frames" if "frames" in self._f else "features"]
            self.ids = [i.decode("utf-8", errors="replace") for i in self._f["ids"][:]]
            self._rows = self._f["rows"][:] if "rows" in self._f else None
            self._index = self._f["label_index"][:]
            self._values = self._f["label_values"][:] if "label_values" in self._f else []
        else:
            import lmdb
            self._env = lmdb.open(self.path, subdir=False, readonly=True, lock=False)
            self._txn = self._env.begin()
            raw = self._txn.get(record.META_ID.encode())
            self.meta = json.loads(raw) if raw else {}
            self._keys = [k for k in self._txn.cursor().iternext(values=False)
                          if k not in (record.META_ID.encode(), b"__index__")]
            self.ids = [k.decode("utf-8", errors="replace") for k in self._keys]

    def __len__(self):
        return len(self.ids)

    @property
    def class_names(self):
        return list(self.meta.get("class_names") or [])

    def labels(self, i):
        if not self.hdf5:
            return self[i][1]
        lo, n = (int(v) for v in self._index[i])
        return [int(v) for v in self._values[lo:lo + n]]

    def __getitem__(self, i):
        """(clip id, labels, array) of record i."""
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        if not self.hdf5:
            rec = record.parse(self._txn.get(self._keys[i]))
            if rec["id"] != self.ids[i]:
                raise ShardError(f"{self.path}: key {self.ids[i]} holds the record of clip {rec['id']}")
            return rec["id"], rec["labels"], record.features_view(rec)
        if self._rows is None:
            x = self._data[i]
        else:
            first, count = (int(v) for v in self._rows[i])
            views = self.meta["dims"][0]
            x = self._data[first:first + count]
            x = x.reshape((views, count // views) + x.shape[1:])
        return self.ids[i], self.labels(i), x

    def close(self):
        if self.hdf5:
            self._f.close()
        else:
            self._txn.abort()
            self._env.close()


class ShardSet:
    """Several shards read as one dataset, with the checks lmr-train makes: same kind, dtype,
    views and feature size, same backbone and weights, no clip id twice."""

    def __init__(self, paths):
        if isinstance(paths, str):
            paths = [paths]
        self.shards = [Shard(p) for p in paths]
        if not self.shards:
            raise ShardError("no shard given")
        first = self.shards[0].meta
        seen = {}
        for s in self.shards:
            m = s.meta
            for key in ("kind", "dtype", "backbone", "weights_checksum"):
                if m.get(key) != first.get(key):
                    raise ShardError(f"{s.path}: {key} {m.get(key)!r} differs from {self.shards[0].path}'s "
                                     f"{first.get(key)!r}")
            dims, fdims = m.get("dims", [0] * 4), first.get("dims", [0] * 4)
            if dims[0] != fdims[0] or dims[2:] != fdims[2:]:
                raise ShardError(f"{s.path}: dims {dims} differ from {self.shards[0].path}'s {fdims}")
            for cid in s.ids:
                if cid in seen:
                    raise ShardError(f"clip {cid} is in {seen[cid]} and in {s.path}")
                seen[cid] = s.path
        self._starts = []
        n = 0
        for s in self.shards:
            self._starts.append(n)
            n += len(s)
        self._n = n
        counts = []
        for s in self.shards:
            c = s.meta.get("class_counts") or []
            counts += [0] * (len(c) - len(counts))
            for k, v in enumerate(c):
                counts[k] += v
        names = max((s.class_names for s in self.shards), key=len)
        self.meta = dict(first, n_records=n, class_counts=counts,
                         n_classes=max(len(counts), max(s.meta.get("n_classes", 0) for s in self.shards)),
                         class_names=names)

    def __len__(self):
        return self._n

    @property
    def class_names(self):
        return list(self.meta.get("class_names") or [])

    def _locate(self, i):
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        k = max(j for j, st in enumerate(self._starts) if st <= i)
        return self.shards[k], i - self._starts[k]

    def __getitem__(self, i):
        s, j = self._locate(i)
        return s[j]

    def labels(self, i):
        s, j = self._locate(i)
        return s.labels(j)

    def close(self):
        for s in self.shards:
            s.close()
