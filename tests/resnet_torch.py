#!/usr/bin/env python3
"""lmr's ResNet features against torchvision's, in f32.

Builds torchvision resnet18 and resnet50 with random weights under a fixed seed (BatchNorm
affine parameters and running statistics randomised too, eval mode), exports them with
scripts/export-torchvision-weights.py, runs both on the same 4 random frames, and checks
max |lmr - torch| / max |torch| <= 1e-4 over all features.

usage: resnet_torch.py RESNET_FEATURES_BINARY [--device cuda] ; exit 77 without torch.
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
N, H, W = 4, 64, 72  # non-square catches swapped axes


def torch_features(model, frames):
    x = torch.from_numpy(frames).float().div(255.0)
    mean = torch.tensor([0.485, 0.456, 0.406])
    std = torch.tensor([0.229, 0.224, 0.225])
    x = ((x - mean) / std).permute(0, 3, 1, 2).contiguous()
    model.fc = torch.nn.Identity()
    with torch.no_grad():
        return model(x).numpy()


def main():
    driver = sys.argv[1]
    device = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--device" else "cpu"
    src = os.environ.get("LMR_SRC", os.path.join(os.path.dirname(__file__), ".."))
    export = os.path.join(src, "scripts", "export-torchvision-weights.py")
    torch.set_num_threads(2)
    if device != "cpu":  # the driver reports a missing device before it reads any file
        r = subprocess.run([driver, "--device", device, "resnet18", "-", "-", "1", "1", "1", "-"])
        if r.returncode == 77:
            print(f"SKIP: no {device} device")
            sys.exit(77)
    failures = 0
    with tempfile.TemporaryDirectory(prefix="lmr-resnet-torch-") as tmp:
        rng = np.random.default_rng(7)
        frames = rng.integers(0, 256, size=(N, H, W, 3), dtype=np.uint8)
        fpath = os.path.join(tmp, "frames.u8")
        frames.tofile(fpath)
        for name, dim in (("resnet18", 512), ("resnet50", 2048)):
            torch.manual_seed(0)
            model = getattr(torchvision.models, name)(weights=None)
            g = torch.Generator().manual_seed(1)
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    c = m.num_features
                    m.weight.data = torch.rand(c, generator=g) * 0.7 + 0.5
                    m.bias.data = torch.randn(c, generator=g) * 0.1
                    m.running_mean = torch.randn(c, generator=g) * 0.1
                    m.running_var = torch.rand(c, generator=g) + 0.5
            model.eval()
            pth = os.path.join(tmp, name + ".pth")
            torch.save(model.state_dict(), pth)
            st = os.path.join(tmp, name + ".safetensors")
            subprocess.run([sys.executable, export, name, st, "--state-dict", pth], check=True)
            out = os.path.join(tmp, name + ".f32")
            r = subprocess.run([driver, "--device", device, "--threads", "2", name, st, fpath, str(N), str(H),
                                str(W), out])
            if r.returncode == 77:
                print(f"SKIP: {name} on {device}: no device")
                sys.exit(77)
            if r.returncode != 0:
                print(f"FAIL: {name}: resnet_features exited {r.returncode}")
                failures += 1
                continue
            got = np.fromfile(out, dtype=np.float32).reshape(N, dim)
            ref = torch_features(model, frames)
            rel = float(np.abs(got - ref).max() / np.abs(ref).max())
            ok = rel <= TOL and np.isfinite(got).all()
            print(f"{name} ({device}): max|diff|/max|ref| = {rel:.3g} (tol {TOL:g}), "
                  f"mean|ref| {np.abs(ref).mean():.4g}: {'ok' if ok else 'FAIL'}")
            failures += not ok
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
