#!/usr/bin/python3
"""The PyTorch side of bench/train-gpu.sh: lmr-train's head (LayerNorm -> Linear+tanh -> Linear),
losses, AdamW and LMR (bank of K batches, masked similarity softmax over LN0 features, class
weights, partner mixing, soft targets) written the way a PyTorch user would, in eager mode on one
GPU. --data host (default) keeps the features in host memory and copies each batch to the GPU, as
lmr-train --preload does; --data device keeps them on the GPU (no copies at all). Prints
steady-state samples/s (after warm-up steps, timed between two torch.cuda.synchronize calls).

    train_gpu_torch.py --stage init|lmr [--dim 2048] [--hidden 512] [--classes 1004] [--batch 256]
                       [--steps 200] [--warmup 20] [--tf32] [--data host|device] [--device cuda]
"""
import argparse
import math
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--stage", choices=["init", "lmr"], default="init")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--classes", type=int, default=1004)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--tf32", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", choices=["host", "device"], default="host")
    ap.add_argument("--device", default="cuda", help="cpu only to check this script where there is no GPU")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("train_gpu_torch.py: PyTorch is not installed", file=sys.stderr)
        return 77
    if a.device == "cuda" and not torch.cuda.is_available():
        print("train_gpu_torch.py: no CUDA device visible to PyTorch", file=sys.stderr)
        return 77
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    sync = torch.cuda.synchronize if a.device == "cuda" else (lambda: None)
    nn, F = torch.nn, torch.nn.functional
    D, H, C, B = a.dim, a.hidden, a.classes, a.batch

    # long-tailed labels (class k with weight 1/(k+1)), features resident on the GPU
    N = B * 32
    w = 1.0 / torch.arange(1, C + 1, dtype=torch.float64)
    Y = torch.multinomial(w, N, replacement=True).to(dev)
    X = torch.randn(N, D, device=dev if a.data == "device" else "cpu")
    counts = torch.bincount(Y, minlength=C).double()

    trunk = nn.Sequential(nn.LayerNorm(D, eps=1e-6), nn.Linear(D, H), nn.Tanh()).to(dev)
    head = nn.Linear(H, C).to(dev)
    params = list(trunk.parameters()) + list(head.parameters())
    lr = 1e-3 if a.stage == "init" else 1e-4
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.999), weight_decay=0.05)
    total = a.warmup + a.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
    ce = nn.CrossEntropyLoss(label_smoothing=0.2)

    # LMR constants (ssv2-lt preset): l 0.6, h 0.001, d 0.25, eps 5, p 0.5, omega 20, K 8
    l_, h_, d_, eps_, p_, omega, K = 0.6, 0.001, 0.25, 5.0, 0.5, 20, 8
    ct = 1.0 / torch.log((counts + eps_) * d_)
    present = counts > 0
    lo, hi = ct[present].min(), ct[present].max()
    cls_w = torch.where(present, h_ + (l_ - h_) * (ct - lo) / (hi - lo), torch.zeros_like(ct)).float().to(dev)
    few = (counts <= omega).to(dev)
    bank, bank_ok = [], []
    n_mix = int(math.floor(p_ * B))
    arangeB = torch.arange(B, device=dev)

    def lmr(f, y):
        bank.append(f.detach())
        bank_ok.append(~few[y])
        del bank[:-K], bank_ok[:-K]
        keys, ok = torch.cat(bank), torch.cat(bank_ok)
        fn = F.layer_norm(f, (H,), eps=1e-6)
        kn = F.layer_norm(keys, (H,), eps=1e-6)
        s = fn @ kn.t() / H
        mask = (~ok).unsqueeze(0).expand(B, -1).clone()
        mask[arangeB, keys.shape[0] - B + arangeB] = True  # each sample's own key
        allm = mask.all(1, keepdim=True)
        wts = torch.softmax(s.masked_fill(mask, float("-inf")).masked_fill(allm, 0.0), 1).masked_fill(allm, 0.0)
        c = cls_w[y].unsqueeze(1)
        R = torch.where(allm, f, c * (wts @ keys) + (1 - c) * f)
        T = F.one_hot(y, C).float()
        partner = torch.randint(0, B, (n_mix,), device=dev)
        mix = torch.rand(n_mix, 1, device=dev)
        Xm = torch.cat([(1 - mix) * R[:n_mix] + mix * R[partner], R[n_mix:]])
        Tm = torch.cat([(1 - mix) * T[:n_mix] + mix * T[partner], T[n_mix:]])
        return Xm, Tm

    def step(i):
        idx = torch.randint(0, N, (B,), device=X.device)
        x, y = X[idx].to(dev), Y[idx.to(dev)]
        f = trunk(x)
        if a.stage == "init":
            loss = ce(head(f), y)
        else:
            Xm, Tm = lmr(f, y)
            loss = -(Tm * torch.log_softmax(head(Xm), 1)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        return loss

    for i in range(a.warmup):
        step(i)
    sync()
    t0 = time.perf_counter()
    for i in range(a.steps):
        loss = step(i)
    sync()
    dt = time.perf_counter() - t0
    if not math.isfinite(loss.item()):
        print("train_gpu_torch.py: loss is not finite", file=sys.stderr)
        return 1
    print(f"{a.steps * B / dt:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
