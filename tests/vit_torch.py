#!/usr/bin/env python3
"""lmr's ViT features against torchvision's, in f32.

vit_b_16: torchvision's model with random weights under a fixed seed (biases, LayerNorm
parameters, the class token and the position embedding randomised too, so none of them is a zero
or a one that would hide a mistake), saved as a state dict and exported with
scripts/export-torchvision-weights.py --state-dict. vit_l_16 (the same code with another shape):
the script's own --random export, rebuilt here from the same seed. Both run on random 224x224
frames; max |lmr - torch| / max |torch| <= 1e-4 over the class-token features (heads removed).

usage: vit_torch.py FEATURES_BINARY ; exit 77 without torch / torchvision.
"""
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torchvision
except ImportError as e:
    print(f"SKIP: python3-torch / python3-torchvision not importable ({e})")
    sys.exit(77)

TOL = 1e-4
S = 224
# name, dim, frames (3: a batch of 2 and one of 1), weights through a saved state dict
MODELS = (("vit_b_16", 768, 3, True), ("vit_l_16", 1024, 1, False))


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 or name in ("class_token", "encoder.pos_embedding"):
                base = 1.0 if name.endswith(("ln_1.weight", "ln_2.weight", "ln.weight")) else 0.0
                p.copy_(base + 0.1 * torch.randn(p.shape, generator=g))


def torch_features(model, frames):
    x = torch.from_numpy(frames).float().div(255.0)
    mean = torch.tensor([0.485, 0.456, 0.406])
    std = torch.tensor([0.229, 0.224, 0.225])
    x = ((x - mean) / std).permute(0, 3, 1, 2).contiguous()
    model.heads = torch.nn.Identity()
    with torch.no_grad():
        return model(x).numpy()


def main():
    driver = sys.argv[1]
    src = os.environ.get("LMR_SRC", os.path.join(os.path.dirname(__file__), ".."))
    export = os.path.join(src, "scripts", "export-torchvision-weights.py")
    torch.set_num_threads(2)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="lmr-vit-torch-") as tmp:
        for name, dim, n, saved in MODELS:
            rng = np.random.default_rng(7)
            frames = rng.integers(0, 256, size=(n, S, S, 3), dtype=np.uint8)
            fpath = os.path.join(tmp, "frames.u8")
            frames.tofile(fpath)
            st = os.path.join(tmp, name + ".safetensors")
            torch.manual_seed(0)
            model = getattr(torchvision.models, name)(weights=None)
            if saved:
                randomise(model, 1)
                pth = os.path.join(tmp, name + ".pth")
                torch.save(model.state_dict(), pth)
                subprocess.run([sys.executable, export, name, st, "--state-dict", pth], check=True)
                os.unlink(pth)
            else:  # the export script's --random SEED is torch.manual_seed(SEED), then the constructor
                subprocess.run([sys.executable, export, name, st, "--random", "0"], check=True)
            model.eval()
            out = os.path.join(tmp, name + ".f32")
            r = subprocess.run([driver, "--threads", "2", "--batch", "2", name, st, fpath, str(n), str(S), str(S), out])
            os.unlink(st)
            if r.returncode != 0:
                print(f"FAIL: {name}: the features driver exited {r.returncode}")
                failures += 1
                continue
            got = np.fromfile(out, dtype=np.float32).reshape(n, dim)
            ref = torch_features(model, frames)
            rel = float(np.abs(got - ref).max() / np.abs(ref).max())
            ok = rel <= TOL and np.isfinite(got).all()
            print(f"{name}: {n} frames, max|diff|/max|ref| = {rel:.3g} (tol {TOL:g}), "
                  f"mean|ref| {np.abs(ref).mean():.4g}: {'ok' if ok else 'FAIL'}")
            failures += not ok
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
