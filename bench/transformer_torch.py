#!/usr/bin/env python3
"""PyTorch side of bench/backbone.sh for the transformer backbones, on the CPU.

usage: transformer_torch.py vit_b_16|vit_l_16|videomae_b WEIGHTS.safetensors FRAMES.u8 N H W THREADS REPEAT [LMR_OUT.f32]
Loads the same safetensors weights lmr uses (torchvision's ViT; transformers' VideoMAE, whose
config is the file's metadata), runs eval + no_grad, one warm-up pass, then REPEAT timed passes
over the same N frames (ImageNet normalisation included, as in lmr). Prints frames/s (and clips/s
for VideoMAE). With LMR_OUT it also prints how far lmr's features are from PyTorch's.
"""
import json
import struct
import sys
import time

import numpy as np
import torch


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
    return out, header.get("__metadata__", {})


def build(name, wpath):
    sd, meta = read_safetensors(wpath)
    if name.startswith("vit"):
        import torchvision

        model = getattr(torchvision.models, name)(weights=None)
        model.load_state_dict(sd, strict=False)
        model.heads = torch.nn.Identity()
        return model.eval(), 1, lambda x: model(x)
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    ints = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "image_size",
            "patch_size", "num_frames", "tubelet_size")
    cfg = VideoMAEConfig(**{k: int(meta[k]) for k in ints}, layer_norm_eps=float(meta["layer_norm_eps"]),
                         qkv_bias=meta.get("qkv_bias", "true") == "true")
    model = VideoMAEForVideoClassification(cfg)
    model.load_state_dict(sd, strict=False)
    model.classifier = torch.nn.Identity()  # its input is the feature
    model.eval()
    t = cfg.num_frames
    return model, t, lambda x: model(pixel_values=x.reshape(-1, t, *x.shape[1:])).logits


def main():
    name, wpath, fpath = sys.argv[1:4]
    n, h, w, threads, repeat = (int(x) for x in sys.argv[4:9])
    torch.set_num_threads(threads)
    model, per, run = build(name, wpath)
    frames = np.fromfile(fpath, dtype=np.uint8, count=n * h * w * 3).reshape(n, h, w, 3)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])

    def forward():
        x = ((torch.from_numpy(frames).float().div(255.0) - mean) / std).permute(0, 3, 1, 2).contiguous()
        return run(x)

    with torch.no_grad():
        ref = forward().numpy()
        t0 = time.perf_counter()
        for _ in range(repeat):
            forward()
        dt = time.perf_counter() - t0
    clips = f", {repeat * n / per / dt:.3f} clips/s" if per > 1 else ""
    print(f"torch {torch.__version__} {name} cpu: {repeat} x {n} frames of {h}x{w} in {dt:.3f} s: "
          f"{repeat * n / dt:.2f} frames/s{clips}")
    if len(sys.argv) > 9:
        got = np.fromfile(sys.argv[9], dtype=np.float32).reshape(ref.shape)
        print(f"features: max|lmr - torch| / max|torch| = {np.abs(got - ref).max() / np.abs(ref).max():.3g}")


if __name__ == "__main__":
    main()
