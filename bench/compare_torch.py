#!/usr/bin/python3
"""The PyTorch side of bench/compare.sh: the long-tail comparison of scripts/pipelines/compare.mk
(every method, several seeds, each evaluated on the validation shard) written the way a PyTorch
user would, eager mode, features held in tensors. Same head, AdamW, cosine schedule, batch and
epochs as the pipeline; the LMR step is bench/train_torch.py's. Prints the wall time of the whole
comparison and a small table of average class accuracy. Also writes the synthetic shards.

    compare_torch.py make-shards TRAIN VAL --clips N --dim D --classes C [--frames T] [--val-per-class K]
    compare_torch.py run TRAIN VAL --methods "ce la ..." --seeds "1 2 3" --epochs E [--threads N]
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

from train_torch import HEADER, Lmr, build

STAGE1 = ["ce", "la", "cb", "focal", "ldam-drw", "eql", "srs", "cbs", "mixup"]
STAGE2 = ["lmr", "crt", "lws", "lmr-mix-only", "lmr-recon-only"]
POSTHOC = ["ce+tau-norm", "ce+la", "ce+ncm"]
_XXH = None


def xxh3(data):
    global _XXH
    if _XXH is None:
        _XXH = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
        _XXH.XXH3_64bits.restype = ctypes.c_uint64
        _XXH.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    return _XXH.XXH3_64bits(data, len(data))


def write_shard(path, means, labels, C, T, split, rng, noise):
    """f16 features [1, T, D, 1] around each class's mean, raw payloads (the record layout of
    train_torch.make_shard)."""
    import lmdb
    D = means.shape[1]
    counts = np.bincount(labels, minlength=C)
    env = lmdb.open(path, subdir=False, map_size=1 << 36, lock=True)
    txn = env.begin(write=True)
    for i, y in enumerate(labels):
        x = (means[y] + noise * rng.standard_normal((T, D), dtype=np.float32)).astype(np.float16)
        payload = x.tobytes()
        cid = f"{split}{i:08d}".encode()
        lab = struct.pack("<i", int(y))
        head = HEADER.pack(b"LMRREC01", 2, 2, 2, 0, 4, 1, 1, T, D, 1, len(payload), len(payload), 0, len(cid))
        fields = bytearray(head[8:40])
        fields[4] = 0
        head = head[:48] + struct.pack("<Q", xxh3(bytes(fields) + cid + lab + payload)) + head[56:]
        txn.put(cid, head + cid + lab + payload)
        if i % 10000 == 9999:
            txn.commit()
            txn = env.begin(write=True)
    meta = {"format_version": 1, "kind": "features", "dtype": "f16", "ndim": 4, "dims": [1, T, D, 1],
            "n_records": len(labels), "n_classes": C, "class_counts": counts.tolist(), "multi_label": 0,
            "dataset": "bench", "split": split, "frames": T, "size": 0, "backbone": "none",
            "weights_checksum": "", "lmr_version": "bench"}
    txn.put(b"__meta__", json.dumps(meta).encode())
    txn.commit()
    env.close()


def make_shards(a):
    """A long tail like VideoLT's (imbalance 100 over C classes, at least one clip each) for
    training, K clips of every class for validation, from the same class means."""
    rng = np.random.default_rng(a.seed)
    C, D, N = a.classes, a.dim, a.clips
    means = rng.standard_normal((C, D)).astype(np.float32)
    w = 100.0 ** (-np.arange(C) / (C - 1))
    per = np.maximum(1, np.round(w / w.sum() * N)).astype(np.int64)
    write_shard(a.train, means, rng.permutation(np.repeat(np.arange(C), per)), C, a.frames, "train", rng, a.noise)
    write_shard(a.val, means, np.repeat(np.arange(C), a.val_per_class), C, a.frames, "val", rng, a.noise)


def load(path):
    """Features (time-averaged, float32) and labels of a shard, read once into memory."""
    import lmdb
    env = lmdb.open(path, subdir=False, readonly=True, lock=False)
    xs, ys = [], []
    with env.begin() as txn:
        meta = json.loads(txn.get(b"__meta__"))
        for k, buf in txn.cursor():
            if k == b"__meta__":
                continue
            h = HEADER.unpack_from(buf)
            v, T, D, idl, nl = h[7], h[8], h[9], h[14], h[6]
            off = HEADER.size + idl
            ys.append(struct.unpack_from("<i", buf, off)[0])
            xs.append(np.frombuffer(buf, np.float16, v * T * D, off + 4 * nl).reshape(v * T, D).astype(np.float32).mean(0))
    env.close()
    return np.stack(xs), np.array(ys, np.int64), meta["n_classes"]


class Runner:
    def __init__(self, torch, X, Y, C, Xv, Yv, a):
        self.t, self.F = torch, torch.nn.functional
        self.X, self.Y, self.C, self.Xv, self.Yv, self.a = X, Y, C, Xv, Yv, a
        self.N, self.D = X.shape
        n = torch.bincount(Y, minlength=C).double()
        self.n = n
        self.logpi = torch.log((n / n.sum()).clamp_min(1e-12)).float()
        beta = 0.9999  # class-balanced weights (Cui et al. 2019), sum C over the classes with clips
        cb = torch.where(n > 0, (1 - beta) / (1 - beta ** n.clamp_min(1)), torch.zeros_like(n))
        self.cb = (cb * (n > 0).sum() / cb.sum()).float()
        m = torch.where(n > 0, n.clamp_min(1) ** -0.25, torch.zeros_like(n))  # LDAM margins, max 0.5
        self.margin = (0.5 * m / m.max()).float()
        self.rare = (n / n.sum()) < 0.005  # eql's lambda
        self.per_clip = {"class": (1.0 / n)[Y], "sqrt": (n.sqrt() / n)[Y]}

    def order(self, sampler, g):
        if sampler == "instance":
            return self.t.randperm(self.N, generator=g)
        return self.t.multinomial(self.per_clip[sampler], self.N, replacement=True, generator=g)

    def fit(self, method, seed, init=None):
        """Train one method; returns (trunk, head, extra) with extra the lws scales or the
        cosine head's flag."""
        t, F, a, C = self.t, self.F, self.a, self.C
        t.manual_seed(seed)
        g = t.Generator().manual_seed(seed)
        trunk, head = build(t, self.D, a.hidden, C)
        stage2 = method in STAGE2
        cosine = method == "ldam-drw"
        if cosine:
            head.bias = None
        scale = None
        if stage2:
            trunk.load_state_dict(init[0].state_dict())
            if method == "lws":
                head.load_state_dict(init[1].state_dict())
                scale = t.nn.Parameter(t.ones(C))
        if method == "lws":  # only the per-class scales train, at their own rate
            params = [{"params": [scale], "lr": 0.05, "weight_decay": 0.0}]
            for p in list(trunk.parameters()) + list(head.parameters()):
                p.requires_grad_(False)
        else:
            params = [{"params": list(trunk.parameters()) + list(head.parameters())}]
        lr = a.lr
        opt = t.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.05)
        B = a.batch
        spe = self.N // B
        total = spe * a.epochs
        sched = t.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
        sampler = "class" if stage2 or method == "cbs" else "sqrt" if method == "srs" else "instance"
        lmr = None
        if method in ("lmr", "lmr-mix-only", "lmr-recon-only"):
            lmr = Lmr(t, self.n.tolist())
        drw_from = int(math.floor(0.8 * a.epochs))
        for epoch in range(a.epochs):
            perm = self.order(sampler, g)
            for s in range(spe):
                idx = perm[s * B:(s + 1) * B]
                x, y = self.X[idx], self.Y[idx]
                if method == "mixup":  # on the pooled feature, one lambda per batch, soft targets
                    lam = float(np.random.default_rng((seed, epoch, s)).beta(1.0, 1.0))
                    p = t.randperm(B, generator=g)
                    x = lam * x + (1 - lam) * x[p]
                if method == "lws":
                    with t.no_grad():
                        z0 = F.linear(trunk(x), head.weight)
                    z = scale * z0 + head.bias
                    loss = F.cross_entropy(z, y)
                else:
                    f = trunk(x)
                    if lmr is not None:
                        X, Yt = self.lmr_step(lmr, f, y, method)
                        loss = -(Yt * t.log_softmax(head(X), 1)).sum(1).mean()
                    elif cosine:  # LDAM: s cos(f, w) with the true class's margin, DRW from 80%
                        z = 30.0 * (F.normalize(f, dim=1) @ F.normalize(head.weight, dim=1).t()
                                    - F.one_hot(y, C) * self.margin[y].unsqueeze(1))
                        loss = F.cross_entropy(z, y, weight=self.cb if epoch >= drw_from else None)
                    else:
                        z = head(f)
                        if method == "ce":
                            loss = F.cross_entropy(z, y, label_smoothing=0.2)
                        elif method == "la":
                            loss = F.cross_entropy(z + self.logpi, y)
                        elif method == "cb":
                            loss = (self.cb[y] * F.cross_entropy(z, y, reduction="none")).mean()
                        elif method == "focal":
                            lp = t.log_softmax(z, 1).gather(1, y[:, None]).squeeze(1)
                            loss = (-(1 - lp.exp()) ** 2 * lp).mean()
                        elif method == "eql":  # w_k = 1 - beta_k [pi_k < lambda] (1 - y_k)
                            drop = (t.rand(B, C, generator=g) < 0.9) & self.rare & ~F.one_hot(y, C).bool()
                            loss = F.cross_entropy(z.masked_fill(drop, float("-inf")), y)
                        elif method == "mixup":
                            loss = lam * F.cross_entropy(z, y) + (1 - lam) * F.cross_entropy(z, y[p])
                        else:  # srs, cbs, crt
                            loss = F.cross_entropy(z, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
        return trunk, head, scale

    def lmr_step(self, lmr, f, y, method):
        t = self.t
        if method == "lmr":
            return lmr(f, y, self.C)
        if method == "lmr-mix-only":  # mixing of the features as they are, no reconstruction
            c, lmr.c = lmr.c, t.zeros_like(lmr.c)
            out = lmr(f, y, self.C)
            lmr.c = c
            return out
        p, lmr.p = lmr.p, 0.0  # recon only: no partner mixing
        out = lmr(f, y, self.C)
        lmr.p = p
        return out

    def evaluate(self, trunk, head, scale=None, posthoc=None, cosine=False):
        """Average class accuracy on the validation shard."""
        t, F = self.t, self.F
        with t.no_grad():
            f = trunk(self.Xv)
            if posthoc == "ncm":  # class means of centred, L2-normalised training features
                ft = t.cat([trunk(self.X[i:i + 4096]) for i in range(0, self.N, 4096)])
                centre = ft.mean(0)
                ft = F.normalize(ft - centre, dim=1)
                mu = t.zeros(self.C, ft.shape[1]).index_add_(0, self.Y, ft)
                z = F.normalize(f - centre, dim=1) @ F.normalize(mu, dim=1).t()
            elif cosine:
                z = F.normalize(f, dim=1) @ F.normalize(head.weight, dim=1).t()
            elif posthoc == "tau-norm":  # t = 1: rows over their norm, no bias
                z = f @ (head.weight / head.weight.norm(dim=1, keepdim=True)).t()
            else:
                z = head(f) if scale is None else scale * F.linear(f, head.weight) + head.bias
                if posthoc == "la":
                    z = z - self.logpi
            hit = (z.argmax(1) == self.Yv).double()
            nv = t.bincount(self.Yv, minlength=self.C).double()
            acc = t.zeros(self.C, dtype=t.float64).index_add_(0, self.Yv, hit)
            return float((acc[nv > 0] / nv[nv > 0]).mean())


def run(a):
    import torch
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    X, Y, C = load(a.train)
    Xv, Yv, _ = load(a.val)
    r = Runner(torch, torch.from_numpy(X), torch.from_numpy(Y), C, torch.from_numpy(Xv), torch.from_numpy(Yv), a)
    t_load = time.perf_counter() - t0
    methods, seeds = a.methods.split(), [int(s) for s in a.seeds.split()]
    unknown = [m for m in methods if m not in STAGE1 + STAGE2 + POSTHOC]
    if unknown:
        sys.exit(f"compare_torch.py: not ported: {' '.join(unknown)}")
    acc = {m: [] for m in methods}
    for seed in seeds:
        ce = None
        need_ce = any(m == "ce" or m in STAGE2 or m in POSTHOC for m in methods)
        if need_ce:
            ce = r.fit("ce", seed)
        for m in methods:
            if m == "ce":
                acc[m].append(r.evaluate(ce[0], ce[1]))
            elif m in POSTHOC:
                acc[m].append(r.evaluate(ce[0], ce[1], posthoc=m[3:]))
            else:
                trunk, head, scale = r.fit(m, seed, init=ce)
                acc[m].append(r.evaluate(trunk, head, scale, cosine=m == "ldam-drw"))
    wall = time.perf_counter() - t0
    for m in methods:
        v = np.array(acc[m]) * 100
        print(f"  {m:<16} {v.mean():6.2f} +- {v.std(ddof=1) if len(v) > 1 else 0:5.2f}", file=sys.stderr)
    print(json.dumps({"wall_s": wall, "load_s": t_load, "methods": methods, "seeds": seeds}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["make-shards", "run"])
    ap.add_argument("train")
    ap.add_argument("val")
    ap.add_argument("--clips", type=int, default=50000)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=1004)
    ap.add_argument("--frames", type=int, default=1)
    ap.add_argument("--val-per-class", type=int, default=5)
    ap.add_argument("--noise", type=float, default=4.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default=" ".join(STAGE1 + STAGE2 + POSTHOC))
    ap.add_argument("--seeds", default="1 2 3")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    return make_shards(a) if a.mode == "make-shards" else run(a)


if __name__ == "__main__":
    sys.exit(main())
