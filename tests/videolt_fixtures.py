"""Generate a small VideoLT-style release for test_videolt: <dir>/feats/<video_id>.npy feature
files, <dir>/train.lst (multi-label), <dir>/count-labels-train.lst, and <dir>/expected.json with
what an import must produce (computed here, independently of lmr). Besides the good videos, the
list names files that must fail one by one (missing, truncated, f8, Fortran order, NaN, Inf,
another D) and one line whose label is outside the class count."""
import json
import os
import sys

import numpy as np

out, n = sys.argv[1], int(sys.argv[2])
D, C = 32, 12
rng = np.random.default_rng(11)
os.makedirs(os.path.join(out, "feats"), exist_ok=True)
weights = 1.0 / np.arange(1, C + 1)  # long-tailed: class 0 most frequent
weights /= weights.sum()
lines, hist, good, sizes, tdict = [], [0] * C, {}, 0, {}
for i in range(n):
    vid = "v_%05d" % i
    k = int(rng.integers(1, 5))
    labels = [int(x) for x in rng.choice(C, size=k, replace=False, p=weights)]
    t = 40 if i == 0 else 3 if i == 1 else int(rng.integers(1, 61))
    arr = rng.standard_normal((t, D)).astype("<f4")
    arr[:, 0] = np.arange(t)
    if i % 50 == 7:
        arr = arr.astype("<f2")
    path = os.path.join(out, "feats", vid + ".npy")
    np.save(path, arr)
    sizes += os.path.getsize(path)
    lines.append("%s %s" % (vid, ",".join(map(str, labels))))
    for c in labels:
        hist[c] += 1
    good[vid] = labels
    tdict[vid] = t
bad = []
kinds = ["missing"] * 5 + ["truncated", "f8", "fortran", "nan", "inf", "dim"]
for j, kind in enumerate(kinds):
    vid = "bad_%d" % j
    lines.insert(3 + 7 * j, "%s %d" % (vid, j % C))
    bad.append(vid)
    path = os.path.join(out, "feats", vid + ".npy")
    if kind == "truncated":
        np.save(path, np.zeros((10, D), "<f4"))
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 5)
    elif kind == "f8":
        np.save(path, np.zeros((10, D)))
    elif kind == "fortran":
        np.save(path, np.asfortranarray(rng.standard_normal((10, D)).astype("<f4")))
    elif kind == "nan":
        a = rng.standard_normal((10, D)).astype("<f4")
        a[3, 5] = np.nan
        np.save(path, a)
    elif kind == "inf":
        a = rng.standard_normal((10, D)).astype("<f2")
        a[9, D - 1] = -np.inf
        np.save(path, a)
    elif kind == "dim":
        np.save(path, rng.standard_normal((10, D // 2)).astype("<f4"))
bad_read = sum(os.path.getsize(os.path.join(out, "feats", "bad_%d.npy" % j))
               for j, kind in enumerate(kinds) if kind in ("nan", "inf", "dim"))
lines.insert(40, "v_range %d,%d" % (C - 1, C))  # label C is outside [0, C)
bad_lines = 1
with open(os.path.join(out, "train.lst"), "w") as f:
    f.write("\n".join(lines) + "\n")
with open(os.path.join(out, "count-labels-train.lst"), "w") as f:
    for c in range(C):
        f.write("Class name %d %d %d\n" % (c, c, hist[c]))
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump({"hist": hist, "n_good": len(good), "n_bad": len(bad), "n_bad_lines": bad_lines,
               "n_f16": sum(1 for i in range(n) if i % 50 == 7), "bytes": sizes, "bytes_bad_read": bad_read,
               "labels": good, "T": tdict, "D": D, "C": C}, f)
