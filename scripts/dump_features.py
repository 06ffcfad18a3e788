#!/usr/bin/env python3
"""Features from your own PyTorch model, in the layout `lmr-pack --from-npy` imports.

lmr-extract decodes and samples the clips once (`--backbone none` keeps the frames); this script
runs any torch.nn.Module over those frames and writes one `OUT/<clip_id>.npy` per clip, shaped
[views, T, D] (one feature per frame) or [views, 1, D] (one per view, e.g. a video transformer that
takes the whole clip), plus `OUT/manifest.csv` with the clip ids and labels.

    lmr-extract --dataset epic --annotations EPIC_100_train.csv --videos DIR --backbone none \\
                --mode train --out frames.rec
    lmr-pack -o frames.lmdb frames.rec
    python3 scripts/dump_features.py --frames frames.lmdb --model my_model.py:build --out feats/
    lmr-pack --from-npy feats/ --manifest feats/manifest.csv -o train.lmdb

`--model FILE.py:FUNC` names a function that returns (module, per) where per is "frame" (the
module takes [N, 3, H, W] floats and returns [N, D]) or "clip" (it takes [views, 3, T, H, W] and
returns [views, D]). Frames reach it as floats in [0, 1], normalised with --mean/--std (ImageNet's
by default). Adapt this file freely: it is the example, not a framework.
"""
import argparse
import csv
import importlib.util
import os
import sys

import numpy as np
import torch

try:
    import lmr
except ImportError:  # run from a source checkout without `pip install ./python`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
    import lmr


def load_model(spec):
    path, _, func = spec.rpartition(":")
    if not path or not func:
        sys.exit(f"dump_features: --model wants FILE.py:FUNC, got {spec!r}")
    mod_spec = importlib.util.spec_from_file_location("user_model", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    model, per = getattr(mod, func)()
    if per not in ("frame", "clip"):
        sys.exit(f"dump_features: {spec} returned per={per!r}, want 'frame' or 'clip'")
    return model, per


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", nargs="+", required=True, help="frames shards (lmr-extract --backbone none)")
    ap.add_argument("--model", required=True, help="FILE.py:FUNC returning (module, 'frame'|'clip')")
    ap.add_argument("--out", required=True, help="folder for <clip_id>.npy and manifest.csv")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", choices=("f16", "f32"), default="f32")
    ap.add_argument("--batch", type=int, default=64, help="frames per forward pass (per=frame)")
    ap.add_argument("--mean", type=float, nargs=3, default=(0.485, 0.456, 0.406))
    ap.add_argument("--std", type=float, nargs=3, default=(0.229, 0.224, 0.225))
    a = ap.parse_args()

    frames = lmr.ShardSet(a.frames)
    if frames.meta.get("kind") != "frames":
        sys.exit(f"dump_features: {a.frames[0]} holds {frames.meta.get('kind')}, not frames "
                 "(extract with --backbone none)")
    model, per = load_model(a.model)
    model = model.to(a.device).eval()
    mean = torch.tensor(a.mean, device=a.device).view(1, 3, 1, 1)
    std = torch.tensor(a.std, device=a.device).view(1, 3, 1, 1)
    os.makedirs(a.out, exist_ok=True)
    rows = []
    with torch.no_grad():
        for i in range(len(frames)):
            clip_id, labels, x = frames[i]                       # u8 [views, T, H, W, 3]
            v, t, h, w, _ = x.shape
            f = torch.from_numpy(np.ascontiguousarray(x)).to(a.device)
            f = f.reshape(v * t, h, w, 3).permute(0, 3, 1, 2).float().div_(255)
            f = (f - mean) / std                                 # [views*T, 3, H, W]
            if per == "frame":
                y = torch.cat([model(f[k:k + a.batch]) for k in range(0, f.shape[0], a.batch)])
                y = y.reshape(v, t, -1)
            else:
                y = model(f.reshape(v, t, 3, h, w).transpose(1, 2)).reshape(v, 1, -1)  # T = 1
            y = y.float().cpu().numpy().astype(np.float16 if a.dtype == "f16" else np.float32)
            if not np.isfinite(y).all():
                sys.exit(f"dump_features: clip {clip_id}: the model gave non-finite features")
            path = os.path.join(a.out, clip_id + ".npy")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            np.save(path + ".tmp.npy", y)
            os.replace(path + ".tmp.npy", path)
            rows.append((clip_id, ";".join(str(c) for c in labels)))
    with open(os.path.join(a.out, "manifest.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["clip_id", "video", "start_sec", "stop_sec", "labels"])
        for clip_id, labels in rows:
            out.writerow([clip_id, "", "", "", labels])
    print(f"dump_features: {len(rows)} clips -> {a.out}/ ({per} features)")


if __name__ == "__main__":
    main()
