#!/usr/bin/env python3
"""lmr's videomae_b features against transformers' VideoMAEForVideoClassification, in f32.

For two configurations, the videomae-base shape cut to 2 layers (16 frames of 224x224, 1568
tokens, LayerNorm eps 1e-12) and a small odd one (no q/v bias, 3 heads, 4 frames of 48x48, two
clips in one call), builds the model with every parameter random (biases, LayerNorms, q_bias,
v_bias and fc_norm included), saves its state dict and config.json as a user's checkpoint would
be, converts them with scripts/export-videomae-weights.py, runs lmr on the same frames and
compares with what the model's classifier reads (the mean of the tokens after fc_norm):
max |lmr - ref| / max |ref| <= 1e-4.

usage: videomae_hf.py FEATURES_BINARY. transformers comes from the venv scripts/deps.sh --test
makes (.venv-test, or $LMR_TEST_VENV); exit 77 when neither this python nor it has transformers.
"""
import os
import subprocess
import sys
import tempfile

SRC = os.environ.get("LMR_SRC", os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

try:
    import numpy as np
    import torch
    import transformers
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification
except ImportError as e:
    venv = os.environ.get("LMR_TEST_VENV") or os.path.join(SRC, ".venv-test")
    py = os.path.join(venv, "bin", "python")
    if os.access(py, os.X_OK) and not os.environ.get("LMR_VIDEOMAE_REEXEC"):
        os.environ["LMR_VIDEOMAE_REEXEC"] = "1"
        os.execv(py, [py] + sys.argv)
    print(f"SKIP: transformers / torch not importable ({e}); `scripts/deps.sh --test` installs transformers "
          f"into {venv} (needs PyPI)")
    sys.exit(77)

TOL = 1e-4
CONFIGS = (
    ("base shape, 2 layers", dict(num_hidden_layers=2), 1),
    ("small, no qkv bias", dict(hidden_size=96, num_hidden_layers=2, num_attention_heads=3, intermediate_size=200,
                                image_size=48, num_frames=4, layer_norm_eps=1e-6, qkv_bias=False), 2),
)


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                base = 1.0 if "norm" in name and name.endswith("weight") else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))


def reference(model, frames, clips, cfg):
    """What the classifier reads, for each clip."""
    x = torch.from_numpy(frames).float().div(255.0)
    mean = torch.tensor([0.485, 0.456, 0.406])
    std = torch.tensor([0.229, 0.224, 0.225])
    x = ((x - mean) / std).permute(0, 3, 1, 2).contiguous()
    x = x.reshape(clips, cfg.num_frames, 3, cfg.image_size, cfg.image_size)
    seen = []
    hook = model.classifier.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    with torch.no_grad():
        model(pixel_values=x)
    hook.remove()
    return seen[0].numpy()


def main():
    driver = sys.argv[1]
    export = os.path.join(SRC, "scripts", "export-videomae-weights.py")
    torch.set_num_threads(2)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    failures = 0
    with tempfile.TemporaryDirectory(prefix="lmr-videomae-") as tmp:
        for what, over, clips in CONFIGS:
            torch.manual_seed(0)
            cfg = VideoMAEConfig(num_labels=5, **over)
            model = VideoMAEForVideoClassification(cfg)
            randomise(model, 1)
            model.eval()
            pth, cjson = os.path.join(tmp, "pytorch_model.bin"), os.path.join(tmp, "config.json")
            torch.save(model.state_dict(), pth)
            cfg.to_json_file(cjson)
            st = os.path.join(tmp, "videomae.safetensors")
            subprocess.run([sys.executable, export, st, "--state-dict", pth, "--config", cjson], check=True)
            n, s = clips * cfg.num_frames, cfg.image_size
            frames = np.random.default_rng(7).integers(0, 256, size=(n, s, s, 3), dtype=np.uint8)
            fpath, out = os.path.join(tmp, "frames.u8"), os.path.join(tmp, "out.f32")
            frames.tofile(fpath)
            r = subprocess.run([driver, "--threads", "2", "videomae_b", st, fpath, str(n), str(s), str(s), out])
            if r.returncode != 0:
                print(f"FAIL: {what}: the features driver exited {r.returncode}")
                failures += 1
                continue
            got = np.fromfile(out, dtype=np.float32)
            ref = reference(model, frames, clips, cfg)
            if got.size != ref.size:
                print(f"FAIL: {what}: {got.size} values, want {ref.shape}")
                failures += 1
                continue
            got = got.reshape(ref.shape)
            rel = float(np.abs(got - ref).max() / np.abs(ref).max())
            ok = rel <= TOL and np.isfinite(got).all()
            print(f"{what}: {clips} clip(s) of {cfg.num_frames} frames of {s}x{s}, max|diff|/max|ref| = {rel:.3g} "
                  f"(tol {TOL:g}), mean|ref| {np.abs(ref).mean():.4g}: {'ok' if ok else 'FAIL'}")
            failures += not ok
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
