#!/usr/bin/env python3
"""Export a torchvision ResNet's or ViT's weights to safetensors for `lmr-extract --backbone NAME`.

Tensor names stay torchvision's (conv1.weight, bn1.running_var, layer1.0.downsample.0.weight, ...;
conv_proj.weight, encoder.layers.encoder_layer_0.self_attention.in_proj_weight, ...), float32,
little endian; the classifier (fc.* / heads.*) is left out unless --keep-fc. Nothing is
downloaded: pass the state dict you have (--state-dict F.pth, e.g. a torchvision checkpoint saved
earlier, or your own fine-tuned model), or --random SEED for a randomly initialised model (tests,
benchmarks).

  export-torchvision-weights.py resnet50 resnet50.safetensors --state-dict resnet50-11ad3fa6.pth
  export-torchvision-weights.py vit_b_16 vit_b_16.safetensors --state-dict vit_b_16-c867db91.pth
"""
import argparse
import json
import os
import struct
import sys

import torch
import torchvision

MODELS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "vit_b_16", "vit_l_16")


def head_prefix(name):
    return "heads." if name.startswith("vit") else "fc."


def build(name):
    ctor = getattr(torchvision.models, name)
    try:
        return ctor(weights=None)  # torchvision >= 0.13
    except TypeError:
        return ctor(pretrained=False)


def load_state(path):
    sd = torch.load(path, map_location="cpu")
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}


def write_safetensors(path, tensors, meta):
    """The format directly: u64 header length, JSON header, raw little-endian data."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        b = t.detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # keep the data 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=MODELS)
    ap.add_argument("out", help="output .safetensors")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--state-dict", help="a .pth state dict for this model")
    src.add_argument("--random", type=int, metavar="SEED", help="random torchvision initialisation")
    ap.add_argument("--keep-fc", action="store_true", help="also export the classifier (fc.* / heads.*)")
    args = ap.parse_args()

    model = build(args.model)
    head = head_prefix(args.model)
    if args.state_dict:
        missing, unexpected = model.load_state_dict(load_state(args.state_dict), strict=False)
        missing = [k for k in missing if not k.startswith(head)]
        if missing or unexpected:
            sys.exit(f"export: {args.state_dict}: not a {args.model} state dict "
                     f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        source = args.state_dict.rsplit("/", 1)[-1]
    else:
        torch.manual_seed(args.random)
        model = build(args.model)
        source = f"random seed {args.random}"
    tensors = {k: v for k, v in model.state_dict().items()
               if not k.endswith("num_batches_tracked") and (args.keep_fc or not k.startswith(head))}
    meta = {"format": "pt", "model": args.model, "source": source, "torchvision": torchvision.__version__}
    try:
        from safetensors.torch import save_file

        save_file({k: v.detach().float().contiguous() for k, v in tensors.items()}, args.out, metadata=meta)
    except ImportError:
        write_safetensors(args.out, tensors, meta)
    print(f"export: {args.model}: {len(tensors)} tensors -> {args.out}")


if __name__ == "__main__":
    main()
