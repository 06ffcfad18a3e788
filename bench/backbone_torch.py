#!/usr/bin/env python3
"""PyTorch side of bench/backbone.sh: frames/s of a torchvision ResNet on the CPU or a GPU.

usage: backbone_torch.py [--device cuda] [--half] MODEL WEIGHTS.safetensors FRAMES.u8 N H W THREADS REPEAT
                         [LMR_OUT.f32]
Loads the same safetensors weights lmr uses, runs eval + no_grad, one warm-up pass, then REPEAT
timed passes over the same N frames (ImageNet normalisation included, as in lmr). With LMR_OUT
it also prints how far lmr's features are from PyTorch's. On a GPU (--device cuda) each pass copies
the uint8 frames from pinned host memory and normalises them there, as lmr does, and runs the model
channels-last: in f32 with cuDNN's TF32 off (lmr's f32 is full f32), or with --half under autocast
to f16 (AMP). Timed between two torch.cuda.synchronize calls.
"""
import json
import struct
import sys
import time

import numpy as np
import torch
import torchvision


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[b:e], dtype="<f4").reshape(v["shape"]).copy())
    return out


def main():
    args = sys.argv[1:]
    device, half = "cpu", False
    while args and args[0].startswith("--"):
        if args[0] == "--device":
            device, args = args[1], args[2:]
        elif args[0] == "--half":
            half, args = True, args[1:]
        else:
            sys.exit(f"backbone_torch.py: unknown option {args[0]}")
    name, wpath, fpath = args[0:3]
    n, h, w, threads, repeat = (int(x) for x in args[3:8])
    torch.set_num_threads(threads)
    model = getattr(torchvision.models, name)(weights=None)
    model.load_state_dict(read_safetensors(wpath), strict=False)
    model.fc = torch.nn.Identity()
    model.eval()
    frames = np.fromfile(fpath, dtype=np.uint8).reshape(n, h, w, 3)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    gpu = device != "cpu"
    if gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
        model = model.to(device, memory_format=torch.channels_last)
        mean, std = mean.to(device), std.to(device)
        host = torch.from_numpy(frames).pin_memory()

    def forward():
        if not gpu:
            x = ((torch.from_numpy(frames).float().div(255.0) - mean) / std).permute(0, 3, 1, 2).contiguous()
            return model(x)
        # NHWC in memory is channels-last NCHW: the permute is a view
        x = ((host.to(device, non_blocking=True).float().div(255.0) - mean) / std).permute(0, 3, 1, 2)
        with torch.autocast("cuda", dtype=torch.float16, enabled=half):
            return model(x).float()

    def sync():
        if gpu:
            torch.cuda.synchronize()

    with torch.no_grad():
        ref = forward().cpu().numpy()
        sync()
        t0 = time.perf_counter()
        for _ in range(repeat):
            forward()
        sync()
        dt = time.perf_counter() - t0
    where = "cpu" if not gpu else f"{device}{' AMP f16' if half else ' f32'} channels-last"
    print(f"torch {torch.__version__} {name} {where}: {repeat} x {n} frames of {h}x{w} in {dt:.3f} s: "
          f"{repeat * n / dt:.2f} frames/s")
    if len(args) > 8:
        got = np.fromfile(args[8], dtype=np.float32).reshape(ref.shape)
        print(f"features: max|lmr - torch| / max|torch| = {np.abs(got - ref).max() / np.abs(ref).max():.3g}")


if __name__ == "__main__":
    main()
