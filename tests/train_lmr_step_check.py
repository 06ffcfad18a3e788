#!/usr/bin/python3
"""One LMR step of the real lmr-train against an independent float64 computation in numpy.

lmr-train runs a few steps of stage lmr and stops with its resume state (parameters, Adam moments,
memory bank with each key's clip, position); a resumed run then does exactly one more step. From
the first checkpoint alone, with the records read from the .rec stream the shard was packed from,
this script recomputes that step: the class-balanced batch and its views (a port of the sampler and
of xoshiro256**), the features averaged over T, layer norm, Linear+tanh, the bank push, the
similarities with the few-shot and same-clip masks, the class weights, the mixing draws, the soft
targets and the cross-entropy; the gradient by central differences in float64 (so no backward pass
is shared with the C code); AdamW. The resumed run's bank, Adam moments and parameters must agree.
The draws are arranged so that some row has an unmasked-by-position copy of its own clip among the
usable keys, and the same computation with the position-only mask must disagree: the check can fail.
Exit 77 (skipped) only without numpy."""
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

try:
    import numpy as np
except ImportError:
    print("skipped: numpy is not installed (needed for the float64 reference)")
    sys.exit(77)

SRC = Path(os.environ.get("LMR_SRC", Path(__file__).resolve().parent.parent))
BIN = Path(os.environ.get("LMR_BIN", "build/bin"))
sys.path.insert(0, str(SRC / "python"))
from lmr.record import read_stream  # noqa: E402  (the project's Python record reader)

N_CLIPS, D, H, C, T, VIEWS = 72, 10, 6, 6, 3, 2
B, K, OMEGA, P, LR, WD, EPOCHS, SEED = 12, 3, 7, 0.75, 0.05, 0.05, 3, 11
STEPS_BEFORE = 4
LN_EPS = 1e-6
RNG_CLASS, RNG_VIEW, RNG_MIX = 4, 5, 6
M64 = (1 << 64) - 1


# --- xoshiro256** seeded through splitmix64 (formats/rng.c) ----------------------------------
def splitmix(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    z = x
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return x, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    def __init__(self, seed, stream, a, b):
        x = seed
        for v in (stream, a, b):
            _, z = splitmix(x)
            x = z ^ v
        self.s = []
        for _ in range(4):
            x, z = splitmix(x)
            self.s.append(z)

    def u64(self):
        s = self.s
        out = (rotl((s[1] * 5) & M64, 7) * 9) & M64
        t = (s[1] << 17) & M64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return out

    def uniform(self):
        return (self.u64() >> 40) / 16777216.0

    def below(self, n):
        m = self.u64() * n
        lo = m & M64
        if lo < n:
            thresh = ((1 << 64) - n) % n
            while lo < thresh:
                m = self.u64() * n
                lo = m & M64
        return m >> 64


# --- checkpoints -------------------------------------------------------------------------------
def load_st(path):
    buf = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", buf[:8])
    head = json.loads(buf[8:8 + n])
    data = buf[8 + n:]
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        dt = {"F32": "<f4", "U8": "u1", "I32": "<i4"}[v["dtype"]]
        out[k] = np.frombuffer(data[b:e], dt).reshape(v["shape"]).astype(np.float64 if dt == "<f4" else np.int64)
    return out, head["__metadata__"]


TENSORS = [("ln.weight", (D,)), ("ln.bias", (D,)), ("pre_logits.weight", (H, D)), ("pre_logits.bias", (H,)),
           ("head.weight", (C, H)), ("head.bias", (C,))]


def block_slices():
    """Offsets of each tensor in the parameter block (train/model.c: 16-float aligned views)."""
    off, out = 0, {}
    for name, shape in TENSORS:
        n = int(np.prod(shape))
        out[name] = (off, n, shape)
        off += (n + 15) & ~15
    return out


def unflat(vec, sl):
    return {k: vec[o:o + n].reshape(s) for k, (o, n, s) in sl.items()}


def flat_params(p):
    return np.concatenate([p[name].ravel() for name, _ in TENSORS])


def params_from_flat(x):
    out, o = {}, 0
    for name, shape in TENSORS:
        n = int(np.prod(shape))
        out[name] = x[o:o + n].reshape(shape)
        o += n
    return out


# --- the step ----------------------------------------------------------------------------------
def layer_norm(x, w=None, b=None):
    mu = x.mean(axis=1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=1, keepdims=True)
    y = (x - mu) / np.sqrt(var + LN_EPS)
    return y if w is None else y * w + b


def features(p, x):
    u = layer_norm(x, p["ln.weight"], p["ln.bias"])
    return np.tanh(u @ p["pre_logits.weight"].T + p["pre_logits.bias"])


def class_weights(counts, lm):
    """train/lmr.c lmr_class_weights, float64 (stored as float32 by the trainer)."""
    t = {k: 1.0 / math.log((n + lm["eps"]) * lm["d"]) for k, n in enumerate(counts) if n > 0}
    lo, hi = min(t.values()), max(t.values())
    c = np.zeros(len(counts))
    for k, v in t.items():
        c[k] = lm["h"] + (lm["l"] - lm["h"]) * (v - lo) / (hi - lo) if hi > lo else lm["h"]
    return c.astype(np.float32).astype(np.float64)


def loss_of(p, batch, keys, keys_n, key_ok, key_clip, mask_by_clip=True, self_pos=None):
    x, clips, cw, partner, a, n_mix, Y = batch
    f = features(p, x)
    fn = layer_norm(f)
    sims = fn @ keys_n.T / H
    R = f.copy()
    for i in range(len(x)):
        allowed = key_ok.astype(bool).copy()
        if mask_by_clip:
            allowed &= key_clip != clips[i]
        else:
            allowed[self_pos[i]] = False
        if not allowed.any():
            continue
        s = np.where(allowed, sims[i], -np.inf)
        w = np.exp(s - s[allowed].max())
        w /= w.sum()
        R[i] = cw[i] * (w @ keys) + (1 - cw[i]) * f[i]
    X = R.copy()
    for i in range(n_mix):
        X[i] = (1 - a[i]) * R[i] + a[i] * R[partner[i]]
    z = X @ p["head.weight"].T + p["head.bias"]
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-(Y * logp).sum(axis=1).mean())


def grad_fd(p, args, **kw):
    x0 = flat_params(p)
    g = np.zeros_like(x0)
    h = 1e-6
    for j in range(len(x0)):
        xp, xm = x0.copy(), x0.copy()
        xp[j] += h
        xm[j] -= h
        g[j] = (loss_of(params_from_flat(xp), *args, **kw) - loss_of(params_from_flat(xm), *args, **kw)) / (2 * h)
    return params_from_flat(g)


def run(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        print(" ".join(map(str, cmd)), "\n", r.stdout, r.stderr)
        sys.exit(1)


def main():
    gen = sys.argv[1]
    tmp = Path(tempfile.mkdtemp(prefix="lmr_step_"))
    try:
        return check(gen, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check(gen, tmp):
    rec, shard = tmp / "a.rec", tmp / "a.lmdb"
    run([gen, rec, N_CLIPS, "--d", D, "--classes", C, "--t", T, "--views", VIEWS, "--dtype", "f16",
         "--level", 0, "--seed", 3])
    run([BIN / "lmr-pack", "-q", "-o", shard, rec])
    common = ["--train", shard, "--batch", B, "--threads", 1, "--quiet"]
    run([BIN / "lmr-train", "--stage", "init", *common, "--hidden", H, "--epochs", 1, "--lr", 0.01,
         "--out", tmp / "init.safetensors"])
    lmr = ["--stage", "lmr", *common, "--init", tmp / "init.safetensors", "--epochs", EPOCHS, "--lr", LR,
           "--weight-decay", WD, "--lmr-k", K, "--lmr-omega", OMEGA, "--lmr-p", P, "--seed", SEED,
           "--out", tmp / "s.safetensors"]
    run([BIN / "lmr-train", *lmr, "--stop-after", STEPS_BEFORE])
    shutil.copy(tmp / "s.safetensors", tmp / "s0.safetensors")
    run([BIN / "lmr-train", *lmr, "--resume", "--stop-after", 1])
    t0, m0 = load_st(tmp / "s0.safetensors")
    t1, m1 = load_st(tmp / "s.safetensors")

    # the clips in the shard's order (LMDB keys: id bytes), their labels and features
    recs = sorted(read_stream(rec), key=lambda r: r["id"].encode())
    labels = [r["labels"] for r in recs]
    counts = np.zeros(C, dtype=np.int64)
    for ls in labels:
        for c in ls:
            counts[c] += 1
    assert list(counts) == json.loads(m0["class_counts"]), "class counts differ from the shard's"
    few = counts <= OMEGA
    assert few.any() and not few.all(), f"counts {counts}: the test needs few-shot and other classes"
    print(f"class counts {list(counts)}, few-shot (n <= {OMEGA}): {[c for c in range(C) if few[c]]}")

    # the batch of the step: sampler (class-balanced, with replacement) and views
    epoch, step, gstep = int(m0["epoch"]), int(m0["step_in_epoch"]), int(m0["step"])
    spe = N_CLIPS // B
    active = [c for c in range(C) if counts[c] > 0]
    cls_clips = {c: [i for i in range(len(recs)) if c in labels[i]] for c in active}
    r = Rng(SEED, RNG_CLASS, epoch, step)
    clips = []
    for _ in range(B):
        a = active[r.below(len(active))]
        clips.append(cls_clips[a][r.below(len(cls_clips[a]))])
    r = Rng(SEED, RNG_VIEW, epoch, step)
    views = [r.below(VIEWS) for _ in range(B)]
    x = np.stack([recs[i]["data"][v, :, :, 0].astype(np.float64).mean(axis=0) for i, v in zip(clips, views)])
    clips = np.array(clips)

    # class weights per row, usable keys, mixing draws, soft targets
    lm = json.loads(m0["lmr"])
    cc = class_weights(counts, lm)
    cw = np.array([np.mean([cc[c] for c in labels[i]]) for i in clips])
    ok = np.array([not any(few[c] for c in labels[i]) for i in clips], dtype=np.int64)
    r = Rng(SEED, RNG_MIX, epoch, step)
    n_mix = int(math.floor(P * B + 1e-9))
    partner, a = list(range(B)), [0.0] * B
    for i in range(n_mix):
        partner[i] = r.below(B)
        a[i] = r.uniform()
    Y = np.zeros((B, C))
    for i in range(B):
        for w, j in ((1 - a[i], i), (a[i], partner[i])) if i < n_mix else ((1.0, i),):
            for c in labels[clips[j]]:
                Y[i, c] += w / len(labels[clips[j]])

    # the bank after this step's push: the current batch's features enter slot n_pushed % K
    p0 = {k: t0[k] for k, _ in TENSORS}
    f = features(p0, x)
    keys, keys_n = t0["bank.keys"].copy(), t0["bank.keys_n"].copy()
    key_ok, key_clip = t0["bank.key_ok"].copy(), t0["bank.key_clip"].copy()
    filled, pushed = int(m0["bank.n_filled"]), int(m0["bank.n_pushed"])
    slot = pushed % K
    rows = slice(slot * B, slot * B + B)
    keys[rows], keys_n[rows], key_ok[rows], key_clip[rows] = f, layer_norm(f), ok, clips
    n_keys = min(filled + 1, K) * B
    keys, keys_n, key_ok, key_clip = keys[:n_keys], keys_n[:n_keys], key_ok[:n_keys], key_clip[:n_keys]
    worst = np.abs(t1["bank.keys"][rows] - f).max()
    print(f"bank: pushed features within {worst:.2e}; clips {list(clips)} views {views}")
    assert worst < 1e-5, "the pushed features differ: batch, features or forward"
    assert (t1["bank.key_clip"][rows] == clips).all(), "the bank's clips are not the batch's"
    assert (t1["bank.key_ok"][rows] == ok).all(), "the bank's few-shot flags differ"
    assert int(m1["bank.n_pushed"]) == pushed + 1 and int(m1["step"]) == gstep + 1

    # the masks matter here: a row with a usable copy of its own clip other than its own position
    own = slot * B + np.arange(B)
    copies = [(i, j) for i in range(B) for j in range(n_keys)
              if key_ok[j] and key_clip[j] == clips[i] and j != own[i]]
    assert copies, "no row has a usable copy of its own clip: the draw does not cover the clip mask"
    print(f"rows with a usable copy of their own clip elsewhere in the bank: {len(copies)}")

    batch = (x, clips, cw, partner, a, n_mix, Y)
    args = (batch, keys, keys_n, key_ok, key_clip)
    g = grad_fd(p0, args)

    # AdamW (PyTorch's, decoupled decay) at the cosine rate of this step
    lr = 0.5 * LR * (1 + math.cos(math.pi * min(gstep / (EPOCHS * spe), 1.0)))
    # the optimiser's constants are single precision in lmr-train (1 - 0.999f is 1.3e-5 off 0.001)
    t = gstep + 1
    b1, b2, eps = (float(np.float32(v)) for v in (0.9, 0.999, 1e-8))
    sl = block_slices()
    mo, vo = unflat(t0["optim.m"], sl), unflat(t0["optim.v"], sl)
    mn, vn = unflat(t1["optim.m"], sl), unflat(t1["optim.v"], sl)
    bad = 0
    for name, _ in TENSORS:
        m = b1 * mo[name] + (1 - b1) * g[name]
        v = b2 * vo[name] + (1 - b2) * g[name] ** 2
        pn = p0[name] * (1 - lr * WD) - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        gc = (mn[name] - b1 * mo[name]) / (1 - b1)  # the trainer's gradient, recovered
        dg = np.abs(gc - g[name]).max() / max(np.abs(g[name]).max(), 1e-12)
        dm = np.abs(mn[name] - m).max() / max(np.abs(m).max(), 1e-12)
        dv = np.abs(vn[name] - v).max() / max(np.abs(v).max(), 1e-30)
        dp = np.abs(t1[name] - pn).max()
        ok_t = dg < 1e-5 and dm < 1e-5 and dv < 1e-5 and dp < 1e-6
        bad += not ok_t
        print(f"{name:18s} grad {dg:.1e}  m {dm:.1e}  v {dv:.1e}  params {dp:.1e}  {'ok' if ok_t else 'DIFFERS'}")

    # the same step with the sample's own position masked only (the earlier behaviour) is not this one
    g_pos = grad_fd(p0, args, mask_by_clip=False, self_pos=own)
    worst_pos = max(np.abs(g_pos[n] - (mn[n] - b1 * mo[n]) / (1 - b1)).max() / np.abs(g[n]).max()
                    for n, _ in TENSORS)
    print(f"position-only mask: gradient off by {worst_pos:.1e} (must exceed the tolerance)")
    if worst_pos < 1e-3:
        print("FAIL: the check cannot tell the clip mask from the position mask")
        return 1
    if bad:
        print(f"FAIL: {bad} tensors differ from the float64 reference")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
