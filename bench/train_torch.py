#!/usr/bin/python3
"""The PyTorch side of bench/train.sh: the same head, losses, optimiser, schedule and LMR as
lmr-train, trained the way a PyTorch user would (an LMDB Dataset + DataLoader, or features held in
a tensor), printing samples/s. Also writes the synthetic LMDB shard both sides read, and measures
the OpenBLAS sgemm peak through ctypes.

    train_torch.py make-shard OUT --clips N --dim D --classes C [--frames T]
    train_torch.py lmdb SHARD --stage init|lmr [--hidden H] [--batch B] [--steps S] [--threads N]
    train_torch.py mem --dim D --hidden H --classes C [--stage ...] [--steps S]
    train_torch.py sgemm [--n 2048] [--threads N]
"""
import argparse
import ctypes
import ctypes.util
import json
import math
import struct
import sys
import time

import numpy as np

HEADER = struct.Struct("<8sHBBBBH4IQQQH")


def xxh3(data):
    lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
    lib.XXH3_64bits.restype = ctypes.c_uint64
    lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return lib.XXH3_64bits(data, len(data))


def make_shard(a):
    """Long-tailed Gaussian clusters, f16 features [1, T, D, 1], raw payloads (no zstd)."""
    import lmdb
    rng = np.random.default_rng(a.seed)
    C, D, T, N = a.classes, a.dim, a.frames, a.clips
    # imbalance 100: class c gets a share of 100^(-c/(C-1)), at least one clip
    w = 100.0 ** (-np.arange(C) / (C - 1))
    per = np.maximum(1, np.round(w / w.sum() * N)).astype(np.int64)
    labels = rng.permutation(np.repeat(np.arange(C), per))
    N = len(labels)
    means = rng.standard_normal((C, D)).astype(np.float32)
    env = lmdb.open(a.out, subdir=False, map_size=1 << 36, lock=True)
    counts = np.bincount(labels, minlength=C)
    with env.begin(write=True) as txn:
        for i in range(N):
            x = (means[labels[i]] + rng.standard_normal((T, D), dtype=np.float32)).astype(np.float16)
            payload = x.tobytes()
            cid = f"clip{i:08d}".encode()
            lab = struct.pack("<i", int(labels[i]))
            head = HEADER.pack(b"LMRREC01", 2, 2, 2, 0, 4, 1, 1, T, D, 1, len(payload), len(payload), 0, len(cid))
            # record checksum (DESIGN section 3, version 2): header bytes 8..39, codec zeroed, id, labels, payload
            fields = bytearray(head[8:40])
            fields[4] = 0
            head = head[:48] + struct.pack("<Q", xxh3(bytes(fields) + cid + lab + payload)) + head[56:]
            txn.put(cid, head + cid + lab + payload)
        meta = {"format_version": 1, "kind": "features", "dtype": "f16", "ndim": 4, "dims": [1, T, D, 1],
                "n_records": N, "n_classes": C, "class_counts": counts.tolist(), "multi_label": 0,
                "dataset": "bench", "split": "train", "frames": T, "size": 0, "backbone": "none",
                "weights_checksum": "", "lmr_version": "bench"}
        txn.put(b"__meta__", json.dumps(meta).encode())
    env.close()


# --- the model and LMR, as DESIGN section 6 ------------------------------------------------------

def build(torch, D, H, C):
    nn = torch.nn
    layers = [nn.LayerNorm(D, eps=1e-6)]
    if H > 0:
        layers += [nn.Linear(D, H), nn.Tanh()]
    return nn.Sequential(*layers), nn.Linear(H if H > 0 else D, C)


class Lmr:
    """Memory bank of K batches (current one appended first), masked similarity softmax over
    LN0 features, R = c r + (1-c) f, partner mixing of the first floor(p B) rows, soft targets."""

    def __init__(self, torch, counts, K=8, l=0.6, h=0.001, d=0.25, eps=5.0, p=0.5, omega=20):
        self.t = torch
        n = torch.tensor(counts, dtype=torch.float64)
        ct = 1.0 / torch.log((n + eps) * d)
        ct = torch.where(n > 0, ct, torch.full_like(ct, float("nan")))
        lo, hi = ct[n > 0].min(), ct[n > 0].max()
        self.c = (h + (l - h) * (ct - lo) / (hi - lo)).nan_to_num(0.0).float()
        self.few = n <= omega
        self.K, self.p, self.bank, self.bank_ok = K, p, [], []

    def __call__(self, f, y, C):
        t, F = self.t, self.t.nn.functional
        B, H = f.shape
        self.bank.append(f.detach())
        self.bank_ok.append(~self.few[y])
        self.bank, self.bank_ok = self.bank[-self.K:], self.bank_ok[-self.K:]
        keys, ok = t.cat(self.bank), t.cat(self.bank_ok)
        fn = F.layer_norm(f, (H,), eps=1e-6)
        kn = F.layer_norm(keys, (H,), eps=1e-6)
        s = fn @ kn.t() / H
        mask = ~ok.unsqueeze(0).expand(B, -1).clone()
        base = keys.shape[0] - B  # the current batch is the last one in the list
        mask[t.arange(B), base + t.arange(B)] = True
        s = s.masked_fill(mask, float("-inf"))
        allm = mask.all(1, keepdim=True)
        w = t.softmax(s.masked_fill(allm, 0.0), 1).masked_fill(allm, 0.0)
        c = self.c[y].unsqueeze(1)
        R = t.where(allm, f, c * (w @ keys) + (1 - c) * f)
        Y = F.one_hot(y, C).float()
        n_mix = int(math.floor(self.p * B))
        partner = t.randint(0, B, (n_mix,))
        a = t.rand(n_mix, 1)
        X = t.cat([(1 - a) * R[:n_mix] + a * R[partner], R[n_mix:]])
        Y = t.cat([(1 - a) * Y[:n_mix] + a * Y[partner], Y[n_mix:]])
        return X, Y


def train(torch, batches, D, H, C, counts, stage, lr, steps_total, warm=3):
    """Run the training loop over an iterator of (x, y); returns samples/s after `warm` steps."""
    trunk, head = build(torch, D, H, C)
    params = list(trunk.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps_total)))
    lmr = Lmr(torch, counts) if stage == "lmr" else None
    ce = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
    n, t0 = 0, None
    for step, (x, y) in enumerate(batches):
        if step == warm:
            t0, n = time.perf_counter(), 0
        f = trunk(x)
        if lmr is None:
            loss = ce(head(f), y)
        else:
            X, Y = lmr(f, y, C)
            loss = -(Y * torch.log_softmax(head(X), 1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        n += x.shape[0]
    return n / (time.perf_counter() - t0)


def lmdb_dataset(torch, path):
    import lmdb

    class Shard(torch.utils.data.Dataset):
        def __init__(self):
            self.path, self.env = path, None
            env = lmdb.open(path, subdir=False, readonly=True, lock=False)
            with env.begin() as txn:
                self.keys = [k for k, _ in txn.cursor() if k not in (b"__meta__", b"__index__")]
                self.meta = json.loads(txn.get(b"__meta__"))
            env.close()

        def __len__(self):
            return len(self.keys)

        def __getitem__(self, i):
            if self.env is None:  # one environment per worker process
                self.env = lmdb.open(self.path, subdir=False, readonly=True, lock=False)
            with self.env.begin() as txn:
                buf = txn.get(self.keys[i])
            h = HEADER.unpack_from(buf)
            v, T, D, idl, nl = h[7], h[8], h[9], h[14], h[6]
            off = HEADER.size + idl
            label = struct.unpack_from("<i", buf, off)[0]
            x = np.frombuffer(buf, np.float16, v * T * D, off + 4 * nl).reshape(v, T, D)
            view = np.random.randint(v)
            return torch.from_numpy(x[view].astype(np.float32).mean(0)), label

    return Shard()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["make-shard", "lmdb", "mem", "sgemm"])
    ap.add_argument("path", nargs="?")
    ap.add_argument("--out")
    ap.add_argument("--clips", type=int, default=4096)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--classes", type=int, default=1004)
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--stage", default="init")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=2048)
    ap.add_argument("--shape")
    a = ap.parse_args()
    if a.mode == "make-shard":
        a.out = a.out or a.path
        return make_shard(a)
    if a.mode == "sgemm":
        # --n N: an N^3 product; --shape M,N,K: one of the model's products (C (MxN) = A (MxK) B (KxN))
        lib = ctypes.CDLL(ctypes.util.find_library("openblas") or "libopenblas.so.0")
        lib.openblas_set_num_threads(a.threads)
        M, N, K = map(int, a.shape.split(",")) if a.shape else (a.n, a.n, a.n)
        A, B_, C_ = (np.random.rand(r, c).astype(np.float32) for r, c in ((M, K), (K, N), (M, N)))
        fp = ctypes.POINTER(ctypes.c_float)
        args = [101, 111, 111, M, N, K, ctypes.c_float(1.0), A.ctypes.data_as(fp), K, B_.ctypes.data_as(fp), N,
                ctypes.c_float(0.0), C_.ctypes.data_as(fp), N]
        reps = max(1, int(2e9 / (2.0 * M * N * K)))  # ~1 GFLOP per timing
        lib.cblas_sgemm(*args)
        best = 0.0
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(reps):
                lib.cblas_sgemm(*args)
            best = max(best, 2.0 * M * N * K * reps / (time.perf_counter() - t0) / 1e9)
        print(f"{best:.1f}")
        return
    import torch
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    if a.mode == "lmdb":
        ds = lmdb_dataset(torch, a.path)
        D, C = ds.meta["dims"][2], ds.meta["n_classes"]
        counts = ds.meta["class_counts"]
        if a.stage == "lmr":  # class-balanced: a class uniformly among those with clips, then a clip
            # per-clip weight 1 / n_class gives class-uniform draws
            import lmdb
            labels = np.zeros(len(ds), np.int64)
            env = lmdb.open(a.path, subdir=False, readonly=True, lock=False)
            with env.begin() as txn:
                for i, k in enumerate(ds.keys):
                    buf = txn.get(k)
                    labels[i] = struct.unpack_from("<i", buf, HEADER.size + HEADER.unpack_from(buf)[14])[0]
            env.close()
            cnt = np.bincount(labels, minlength=C)
            w = 1.0 / cnt[labels]
            sampler = torch.utils.data.WeightedRandomSampler(w, num_samples=len(ds), replacement=True)
            dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, sampler=sampler, drop_last=True,
                                             num_workers=a.workers, persistent_workers=a.workers > 0)
        else:
            dl = torch.utils.data.DataLoader(ds, batch_size=a.batch, shuffle=True, drop_last=True,
                                             num_workers=a.workers, persistent_workers=a.workers > 0)

        def batches():
            n = 0
            while True:
                for x, y in dl:
                    yield x, y
                    n += 1
                    if n == a.steps:
                        return
        sps = train(torch, batches(), D, a.hidden, C, counts, a.stage, 1e-3 if a.stage == "init" else 1e-4, a.steps)
    else:
        D, C, N = a.dim, a.classes, a.batch * 32
        X = torch.randn(N, D)
        Y = torch.randint(0, C, (N,))
        counts = torch.bincount(Y, minlength=C).tolist()

        def batches():
            n = 0
            while True:
                perm = torch.randperm(N)
                for s in range(N // a.batch):
                    idx = perm[s * a.batch:(s + 1) * a.batch]
                    yield X[idx], Y[idx]
                    n += 1
                    if n == a.steps:
                        return
        sps = train(torch, batches(), D, a.hidden, C, counts, a.stage, 1e-3, a.steps)
    print(f"{sps:.1f}")


if __name__ == "__main__":
    sys.exit(main())
