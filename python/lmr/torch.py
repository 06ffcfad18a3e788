"""PyTorch side: a Dataset over a shard set and the head as an nn.Module (needs torch)."""
import numpy as np
import torch
from torch import nn

from .checkpoint import LN_EPS, load_checkpoint
from .shards import ShardSet


class ShardDataset(torch.utils.data.Dataset):
    """Items (features float32 [views, T, D], labels LongTensor). With `view="random"` one view is
    drawn per item (as lmr-train does), with `mean_t=True` features are averaged over T first
    ([views, D] or [D]). Open the shards lazily in each worker (safe with DataLoader workers)."""

    def __init__(self, paths, view=None, mean_t=False, seed=0):
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        self.view, self.mean_t = view, mean_t
        self._set = ShardSet(self.paths)
        self._n = len(self._set)
        self._rng = np.random.default_rng(seed)
        self.class_counts = list(self._set.meta.get("class_counts") or [])
        self.class_names = self._set.class_names

    def __len__(self):
        return self._n

    def __getitem__(self, i):
        _, labels, x = self._set[i]
        x = np.asarray(x, dtype=np.float32)
        if self.view == "random":
            x = x[self._rng.integers(x.shape[0])]
        elif isinstance(self.view, int):
            x = x[self.view]
        if self.mean_t:
            x = x.mean(axis=-2)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.tensor(labels, dtype=torch.long)


class Head(nn.Module):
    """lmr's model: mean over T, LayerNorm (eps 1e-6), Linear + tanh (absent with hidden 0), Linear.
    forward takes [N, D] (already averaged) or [N, T, D]; returns logits [N, C]."""

    def __init__(self, dim, hidden, classes):
        super().__init__()
        self.ln = nn.LayerNorm(dim, eps=LN_EPS)
        self.pre_logits = nn.Linear(dim, hidden) if hidden > 0 else None
        self.head = nn.Linear(hidden if hidden > 0 else dim, classes)

    def forward(self, x):
        if x.dim() == 3:
            x = x.mean(1)
        u = self.ln(x)
        f = torch.tanh(self.pre_logits(u)) if self.pre_logits is not None else u
        return self.head(f)


def head_from_checkpoint(ck):
    """Build a Head holding a checkpoint's weights (a path or a loaded Checkpoint)."""
    if isinstance(ck, str):
        ck = load_checkpoint(ck, model_only=True)
    t = ck.tensors
    dim = t["ln.weight"].shape[0]
    hidden = t["pre_logits.weight"].shape[0] if "pre_logits.weight" in t else 0
    m = Head(dim, hidden, t["head.weight"].shape[0])
    state = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in t.items()
             if k.split(".")[0] in ("ln", "pre_logits", "head")}
    m.load_state_dict(state)
    return m.eval()
