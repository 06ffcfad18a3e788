#!/usr/bin/env python3
"""Convert a Hugging Face `transformers` VideoMAE checkpoint to safetensors for
`lmr-extract --backbone videomae_b`.

Input: a fine-tuned model's state dict (model.safetensors, pytorch_model.bin or a .pth) with the
tensor names of VideoMAEForVideoClassification (videomae.embeddings.*, videomae.encoder.layer.N.*,
fc_norm.*), or VideoMAEModel's (without "videomae.") in a file that also holds fc_norm.*, and its
config.json. Output: float32 tensors named as in
VideoMAEForVideoClassification (the classifier only with --keep-classifier), and the config in the
safetensors metadata, where lmr reads the model's shape from. transformers is not needed.

  export-videomae-weights.py videomae_b.safetensors --model-dir videomae-base-finetuned-kinetics/
  export-videomae-weights.py videomae_b.safetensors --state-dict pytorch_model.bin --config config.json
  export-videomae-weights.py random.safetensors --random 0        (random weights: benchmarks)
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

# VideoMAEConfig's defaults (videomae-base); config.json values override them
DEFAULTS = {
    "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "hidden_act": "gelu", "layer_norm_eps": 1e-12, "image_size": 224, "patch_size": 16, "num_channels": 3,
    "num_frames": 16, "tubelet_size": 2, "qkv_bias": True, "use_mean_pooling": True,
}


def load_state(path):
    if path.endswith(".safetensors"):
        return {k: np.asarray(v, dtype=np.float32) for k, v in read_safetensors(path).items()}
    import torch

    sd = torch.load(path, map_location="cpu")
    for key in ("state_dict", "model"):  # common checkpoint wrappers
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return {k: v.detach().float().numpy() for k, v in sd.items() if hasattr(v, "detach")}


def read_safetensors(path):
    kinds = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": None}
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        if v["dtype"] == "BF16":  # widen: bf16 is the top half of an f32
            raw = np.frombuffer(data[b:e], dtype="<u2").astype(np.uint32) << 16
            out[k] = raw.view(np.float32).reshape(v["shape"])
        elif v["dtype"] in kinds:
            out[k] = np.frombuffer(data[b:e], dtype=kinds[v["dtype"]]).astype(np.float32).reshape(v["shape"])
    return out


def write_safetensors(path, tensors, meta):
    """The format directly: u64 header length, JSON header, raw little-endian f32 data."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        b = np.ascontiguousarray(t, dtype="<f4").tobytes()
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


def random_state(cfg, seed):
    """Random weights with the names and shapes of VideoMAEForVideoClassification (no transformers)."""
    rng = np.random.default_rng(seed)
    D, M, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kt, p = cfg["tubelet_size"], cfg["patch_size"]

    def w(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    sd = {"videomae.embeddings.patch_embeddings.projection.weight": w(D, 3, kt, p, p),
          "videomae.embeddings.patch_embeddings.projection.bias": w(D)}
    for i in range(L):
        pre = f"videomae.encoder.layer.{i}."
        for q in ("query", "key", "value"):
            sd[pre + f"attention.attention.{q}.weight"] = w(D, D)
        sd[pre + "attention.attention.q_bias"] = w(D)
        sd[pre + "attention.attention.v_bias"] = w(D)
        sd[pre + "attention.output.dense.weight"], sd[pre + "attention.output.dense.bias"] = w(D, D), w(D)
        sd[pre + "intermediate.dense.weight"], sd[pre + "intermediate.dense.bias"] = w(M, D), w(M)
        sd[pre + "output.dense.weight"], sd[pre + "output.dense.bias"] = w(D, M), w(D)
        for ln in ("layernorm_before", "layernorm_after"):
            sd[pre + ln + ".weight"], sd[pre + ln + ".bias"] = 1 + w(D), w(D)
    sd["fc_norm.weight"], sd["fc_norm.bias"] = 1 + w(D), w(D)
    return sd


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="output .safetensors")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-dir", help="a saved model folder: config.json + model.safetensors or pytorch_model.bin")
    src.add_argument("--state-dict", help="the state dict file (needs --config)")
    src.add_argument("--random", type=int, metavar="SEED", help="random weights of the config's shape")
    ap.add_argument("--config", help="config.json (default: the model folder's; --random: videomae-base)")
    ap.add_argument("--keep-classifier", action="store_true", help="also export classifier.*")
    args = ap.parse_args()

    cfg_path = args.config
    weights = args.state_dict
    if args.model_dir:
        cfg_path = cfg_path or os.path.join(args.model_dir, "config.json")
        for name in ("model.safetensors", "pytorch_model.bin"):
            if os.path.exists(os.path.join(args.model_dir, name)):
                weights = os.path.join(args.model_dir, name)
                break
        else:
            sys.exit(f"export: {args.model_dir}: no model.safetensors or pytorch_model.bin")
    if args.state_dict and not cfg_path:
        sys.exit("export: --state-dict needs --config config.json (the model's shape and LayerNorm eps)")
    cfg = dict(DEFAULTS)
    if cfg_path:
        with open(cfg_path) as f:
            given = json.load(f)
        cfg.update({k: given[k] for k in DEFAULTS if k in given})
    if cfg["hidden_act"] != "gelu" or not cfg["use_mean_pooling"]:
        sys.exit(f"export: {cfg_path}: hidden_act {cfg['hidden_act']!r}, use_mean_pooling {cfg['use_mean_pooling']}: "
                 "lmr reads the mean-pooled feature through fc_norm of a gelu model")

    if args.random is not None:
        sd, source = random_state(cfg, args.random), f"random seed {args.random}"
    else:
        sd, source = load_state(weights), os.path.basename(weights)
        sd = {k[7:] if k.startswith("module.") else k: v for k, v in sd.items()}
        if "embeddings.patch_embeddings.projection.weight" in sd:  # VideoMAEModel's names
            sd = {("videomae." + k if k.startswith(("embeddings.", "encoder.")) else k): v for k, v in sd.items()}
        if "videomae.embeddings.patch_embeddings.projection.weight" not in sd:
            sys.exit(f"export: {weights}: not a VideoMAE state dict (no videomae.embeddings.patch_embeddings.*)")
        if "fc_norm.weight" not in sd:
            sys.exit(f"export: {weights}: no fc_norm.*: the feature is read through the fine-tuned model's fc_norm "
                     "(VideoMAEForVideoClassification); a pre-training checkpoint has none")
    keep = ("videomae.embeddings.", "videomae.encoder.", "fc_norm.") + (("classifier.",) if args.keep_classifier else ())
    tensors = {k: v for k, v in sd.items() if k.startswith(keep)}
    meta = {k: ("true" if v is True else "false" if v is False else repr(v) if isinstance(v, float) else str(v))
            for k, v in cfg.items()}
    meta.update({"format": "pt", "model": "videomae", "source": source})
    write_safetensors(args.out, tensors, meta)
    print(f"export: videomae: {len(tensors)} tensors, {cfg['num_hidden_layers']} layers of {cfg['hidden_size']} "
          f"-> {args.out}")


if __name__ == "__main__":
    main()
