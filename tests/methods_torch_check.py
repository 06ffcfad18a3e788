#!/usr/bin/python3
"""Every method loss of lmr-train against PyTorch on the same batch: methods_dump prints each
loss's inputs, mean loss and gradient; PyTorch recomputes them from the papers' formulas (LDAM's
where(index, x - m, x) and cross_entropy(weight=), Cui's weighted mean over the batch, softmax
focal, softmax EQL, mixup's soft targets, F.normalize for the cosine classifier) with autograd,
and both must agree to float tolerance. Exit 77 (skipped) without torch.
Usage: methods_torch_check.py METHODS_DUMP"""
import json
import subprocess
import sys

try:
    import torch
    import torch.nn.functional as Fn
except ImportError:
    print("skipped: no torch (pip install torch, or apt-get install python3-torch)")
    sys.exit(77)

torch.set_default_dtype(torch.float64)


def targets(labels, C, s):
    T = torch.zeros(len(labels), C)
    for i, ls in enumerate(labels):
        for y in ls:
            T[i, y] += 1.0 / len(ls)
    return (1 - s) * T + s / C


def multi_hot(labels, C):
    M = torch.zeros(len(labels), C, dtype=torch.bool)
    for i, ls in enumerate(labels):
        M[i, ls] = True
    return M


def cb_weights(n, beta):
    n = torch.tensor(n, dtype=torch.float64)
    w = (1 - beta) / (1 - beta ** n)
    return w / w.sum() * len(n)


def ce_soft(z, T):
    return -(T * Fn.log_softmax(z, 1)).sum(1)


def loss_of(r, z):
    C = z.shape[1]
    n = r["counts"]
    labels, s = r["labels"], r["smoothing"]
    T = targets(labels, C, s)
    prior = torch.tensor(n, dtype=torch.float64) / sum(n)
    single = all(len(ls) == 1 for ls in labels)
    y = torch.tensor([ls[0] for ls in labels])
    row_w = lambda w: torch.stack([w[ls].mean() for ls in labels])  # noqa: E731
    m = r["method"]
    if m == "la":
        return ce_soft(z + torch.log(prior), T).mean()
    if m in ("cb", "focal"):
        g = r["focal_gamma"] if r["focal_gamma"] >= 0 else (2.0 if m == "focal" else 0.0)
        logp = Fn.log_softmax(z, 1)
        l = -(T * (1 - logp.exp()) ** g * logp).sum(1)
        if m == "cb":
            l = l * row_w(cb_weights(n, 0.9999))
        return l.mean()
    if m == "ldam-drw":
        mm = 1.0 / torch.tensor(n, dtype=torch.float64) ** 0.25
        mm = mm * (0.5 / mm.max())
        index = multi_hot(labels, C)
        out = torch.where(index, z - mm[None, :], z) * 30.0
        drw = r["epoch"] >= int(0.8 * r["epochs"])
        w = cb_weights(n, 0.9999) if drw else torch.ones(C)
        if single and s == 0:  # the reference code's own call
            return Fn.cross_entropy(out, y, weight=w if drw else None)
        rw = row_w(w)
        return (rw * ce_soft(out, T)).sum() / rw.sum()
    if m == "eql":  # gamma 1: every rare class that is not a label leaves the denominator
        rare = prior < 0.005
        keep = ~(rare[None, :] & ~multi_hot(labels, C))
        lse = torch.logsumexp(torch.where(keep, z, torch.tensor(-torch.inf)), 1)
        return (T.sum(1) * lse - (T * z).sum(1)).mean()
    if m == "mixup":
        lam, perm = r["lam"], torch.tensor(r["perm"])
        x = torch.tensor(r["x"]).view(len(labels), -1)
        xo = torch.tensor(r["xo"]).view(len(labels), -1)
        assert torch.allclose(lam * x + (1 - lam) * x[perm], xo, atol=1e-6), "mixup: mixed inputs differ"
        Tm = lam * T + (1 - lam) * T[perm]
        return ce_soft(z, Tm).mean()
    raise ValueError(m)


def main():
    out = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
    bad = 0
    for line in out.splitlines():
        r = json.loads(line)
        if r["method"] == "cosine-head":
            B, C = 4, 5
            f = torch.tensor(r["f"]).view(B, -1).requires_grad_()
            w = torch.tensor(r["w"]).view(-1, C).requires_grad_()
            z = Fn.normalize(f, dim=1) @ Fn.normalize(w, dim=0)
            (torch.tensor(r["R"]).view(B, C) * z).sum().backward()
            pairs = [("z", z.detach(), r["z"]), ("df", f.grad, r["df"]), ("dw", w.grad, r["dw"])]
            name = "cosine head"
        else:
            B = len(r["labels"])
            z = torch.tensor(r["z"]).view(B, -1).requires_grad_()
            loss = loss_of(r, z)
            loss.backward()
            pairs = [("loss", loss.detach().view(1), [r["loss"]]), ("dz", z.grad, r["dz"])]
            name = "%s smoothing %g gamma %g epoch %d" % (r["method"], r["smoothing"], r["focal_gamma"], r["epoch"])
        for key, ref, got in pairs:
            got = torch.tensor(got).view(ref.shape)
            err = (got - ref).abs().max().item()
            ok = torch.allclose(got, ref, rtol=1e-4, atol=1e-5)
            print("%-44s %-4s max |diff| %.2e %s" % (name, key, err, "ok" if ok else "MISMATCH"))
            bad += not ok
    if bad:
        print("%d mismatches" % bad)
        return 1
    print("all agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
