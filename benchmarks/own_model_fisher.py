"""Fisher features per function on users' own networks (not a test).

    .venv/bin/python benchmarks/own_model_fisher.py                  # CPU (and GPU when there)
    .venv/bin/python benchmarks/own_model_fisher.py --nets resnet18 --batch 32 --repeats 1

For each torchvision network of :mod:`aquasurf_core.models.user_networks` (``resnet18``,
``mobilenet_v3_small``, ``vit_tiny`` by default), made searchable with one call of
:func:`aquasurf_core.models.make_searchable`, prints: the activation sites replaced, the share
of parameters the K-FAC spectrum covers (what is skipped, by kind), and the seconds per function
of :func:`aquasurf_core.features.fim.fim_features` (one forward/backward pass, factors,
eigenvalues, histograms; batch 128 of N(0, 1) images 3x32x32 with random labels, the model
rebuilt and the function swapped before each timing; median of ``--repeats``) for a few
functions, on the CPU and, when CUDA is available, on the GPU. The ViT's zero-initialised
head is re-initialised (N(0, 0.02^2)) first: with a zero head every gradient upstream of it is
zero and every spectrum invalid (the search's task check refuses such a model and says why).
The machine's load average is printed with the figures (the CPU may be shared).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from aquasurf_core.features.fim import fim_features
from aquasurf_core.models import make_searchable, set_activation
from aquasurf_core.models.user_networks import example_batch, user_network

NETS = ["resnet18", "mobilenet_v3_small", "vit_tiny"]
FNS = ["relu(x)", "swish(x)", "tanh(x)"]


def searchable(name: str, seed: int = 0) -> tuple[nn.Module, list]:
    """The network made searchable (ReLU), with the ViT's zero head re-initialised."""
    model = user_network(name, seed=seed)
    if name == "vit_tiny":
        nn.init.normal_(model.heads.head.weight, std=0.02)
    return make_searchable(model, "relu(x)")


def time_network(name: str, device: str, batch: int, repeats: int, fns: list[str]) -> dict:
    model, sites = searchable(name)
    model = model.to(device)
    x, y = example_batch(name, batch)
    x, y = x.to(device), y.to(device)
    per_fn = {}
    coverage = None
    for fn in fns:
        times = []
        for _ in range(repeats):
            set_activation(model, fn)
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            feats = fim_features(model, x, y, on_unsupported="skip")
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        per_fn[fn] = (statistics.median(times), feats.valid)
        coverage = feats.coverage
    replaced = [s for s in sites if s.kind != "inplace"]
    return {"sites": len(replaced), "calls": sum(s.calls or 1 for s in replaced),
            "coverage": coverage, "per_fn": per_fn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nets", nargs="+", default=NETS)
    parser.add_argument("--fns", nargs="+", default=FNS)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", nargs="+", default=None,
                        help="default: cpu, and cuda when available")
    args = parser.parse_args()
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.2f}, batch {args.batch}, median of {args.repeats}")
    for device in devices:
        label = torch.cuda.get_device_name() if device == "cuda" else "CPU"
        print(f"\n## {device} ({label})")
        print("| network | sites (calls) | K-FAC covers | " + " | ".join(
            f"{fn} s" for fn in args.fns) + " |")
        print("|---|---|---|" + "---|" * len(args.fns))
        for name in args.nets:
            r = time_network(name, device, args.batch, args.repeats, args.fns)
            cells = [f"{t:.2f}" + ("" if ok else " (invalid)") for t, ok in r["per_fn"].values()]
            print(f"| {name} | {r['sites']} ({r['calls']}) | {r['coverage'].fraction:.1%} | "
                  + " | ".join(cells) + " |", flush=True)
            print(f"    {r['coverage']}")


if __name__ == "__main__":
    main()
