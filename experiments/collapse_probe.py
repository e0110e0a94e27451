"""Bisect BA²M's collapse on real images: a plain training loop over the project's models.

Trains CIFAR ResNet-20 (or another CIFAR network) +- BA²M on a folder of real 32x32 images
for a few epochs and prints, per epoch, train/val error and per BA²M module the largest share
of one sample's weight in a batch (mean and max over the epoch's steps). Used to choose
BA²M's default reading (docs/ba2m-options.md, "Real images"); not part of the harness.

    python experiments/collapse_probe.py --root /tmp/c10/cifar10-train --epochs 3 \
        --opt branches=ca,lsa --opt stages=1,2,3
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F
from torchvision import datasets, transforms

from models.ba2m import BA2M
from models.registry import build_model


def load(root: str, limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    ds = datasets.ImageFolder(root, transform=transforms.PILToTensor())
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(ds), generator=g)[:limit]
    xs = torch.stack([ds[i][0] for i in idx.tolist()])
    ys = torch.tensor([ds.targets[i] for i in idx.tolist()])
    return xs, ys


MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def norm(x: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255 - MEAN) / STD


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    pad = F.pad(x, (4, 4, 4, 4))
    dx, dy = torch.randint(0, 9, (2, n), generator=g)
    flip = torch.rand(n, generator=g) < 0.5
    out = torch.stack([pad[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32] for i in range(n)])
    out[flip] = out[flip].flip(-1)
    return out


def parse_opt(s: str) -> tuple[str, object]:
    k, v = s.split("=", 1)
    if k in ("stages",):
        return k, [int(p) for p in v.split(",")]
    if k in ("branches",):
        return k, tuple(v.split(","))
    if v in ("true", "false"):
        return k, v == "true"
    try:
        return k, int(v)
    except ValueError:
        try:
            return k, float(v)
        except ValueError:
            return k, v


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", required=True)
    p.add_argument("--val-root", default=None, help="held-out folder (default: 20%% of root)")
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--arch", default="resnet20")
    p.add_argument("--baseline", action="store_true")
    p.add_argument("--opt", action="append", default=[], help="BA2M option KEY=VALUE")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.2)
    p.add_argument("--wd", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-batches", default="256",
                   help="test batch sizes, e.g. 1,8,64,256 (0: identity)")
    p.add_argument("--final-eval-batches", default=None, help="the same, after the last epoch only")
    p.add_argument("--val-images", type=int, default=10**9, help="at most this many of --val-root")
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.manual_seed(a.seed)
    xs, ys = load(a.root, a.images)
    if a.val_root:
        vx, vy = load(a.val_root, a.val_images)
        tx, ty = xs, ys
    else:
        cut = int(0.8 * len(xs))
        tx, ty, vx, vy = xs[:cut], ys[:cut], xs[cut:], ys[cut:]
    opts = dict(parse_opt(o) for o in a.opt)
    stages = opts.pop("stages", None)
    model = build_model(a.arch, form="cifar", num_classes=10,
                        attention=None if a.baseline else "ba2m", stages=stages, **opts)
    mods = [m for m in model.modules() if isinstance(m, BA2M)]
    opt = torch.optim.SGD(model.parameters(), lr=a.lr, momentum=0.9, weight_decay=a.wd)
    g = torch.Generator().manual_seed(a.seed)
    log = []
    for epoch in range(a.epochs):
        model.train()
        perm = torch.randperm(len(tx), generator=g)
        wrong = n = 0
        loss_sum = 0.0
        t0 = time.time()
        for b in range(0, len(tx) - a.batch + 1, a.batch):  # drop the last partial batch
            i = perm[b:b + a.batch]
            x, y = norm(augment(tx[i], g)), ty[i]
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if not torch.isfinite(loss):
                print("diverged")
                return
            wrong += int((out.argmax(1) != y).sum())
            n += len(y)
            loss_sum += float(loss.detach()) * len(y)
        row = {"epoch": epoch + 1, "train_err": 100 * wrong / n, "train_loss": loss_sum / n,
               "s": round(time.time() - t0, 1)}
        model.eval()
        with torch.no_grad():
            sizes = a.eval_batches
            if a.final_eval_batches and epoch == a.epochs - 1:
                sizes = a.final_eval_batches
            for eb in [int(v) for v in sizes.split(",")]:
                if eb == 0:  # 0: BA²M deactivated (identity) at batch 256
                    for m in mods:
                        m.eval_mode = "identity"
                    w = sum(int((model(norm(vx[b:b + 256])).argmax(1) != vy[b:b + 256]).sum())
                            for b in range(0, len(vx), 256))
                    for m in mods:
                        m.eval_mode = "batch"
                    row["val_err@identity"] = 100 * w / len(vx)
                    continue
                w = 0
                for b in range(0, len(vx), eb):
                    w += int((model(norm(vx[b:b + eb])).argmax(1) != vy[b:b + eb]).sum())
                row[f"val_err@{eb}"] = 100 * w / len(vx)
        for i, m in enumerate(mods):  # largest share of one sample's weight (mean, max)
            d = m.diagnostics()
            row[f"share{i}"] = (round(d["max_share_mean"], 3), round(d["max_share_max"], 3))
        log.append(row)
        print(json.dumps(row), flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"args": vars(a), "log": log}, f)


if __name__ == "__main__":
    main()
