#!/usr/bin/env python3
"""tools/golden/make_golden.py — golden tensors from PyTorch for tests/nn/golden_test.cpp.

An independent framework pins the numerics of whole layers and of a few training steps
(DESIGN.md, "How we know it works"). This script builds the models of nn/transformer.cpp in
PyTorch with the same parameter names (bench/peers/tessel_models.py), computes in float64 from float32 weights and inputs
(so the stored answers are the exact results for the stored inputs, up to f64 rounding), and
writes safetensors files under tests/golden/. The files are committed; the C++ test needs no
Python. Regenerate only when a model's definition changes:

    bench/peers/setup                      # a venv with torch and safetensors
    bench/peers/.venv/bin/python tools/golden/make_golden.py

Files (all tensors F32; inputs, weights, and the f64 answers rounded to f32):
  block.safetensors     one pre-norm transformer block, bidirectional ("bi.") and causal
                        ("causal."): x, the weights, y = block(x), and for loss = sum(y * r):
                        dx and every weight's gradient ("grad.<name>")
  vit.safetensors       a small ViT: images, labels, logits, the label-smoothed loss, gradients
  gpt_steps.safetensors a small GPT: initial weights, 3 batches, the loss of each step and the
                        weights after 3 steps of AdamW with global-norm clipping
"""
import argparse
import os
import sys

import torch
from safetensors.torch import save_file

# The PyTorch mirror of nn/transformer.cpp, shared with the peer benchmark; attention written
# out (fused=False), not through PyTorch's fused kernel.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "peers"))
from tessel_models import Block, Gpt, Vit, param_groups  # noqa: E402

torch.set_default_dtype(torch.float64)
F = torch.nn.functional


def f32(t):
    """The value as the C++ side holds it: rounded to f32 (and back to f64 for computing)."""
    return t.detach().to(torch.float32).to(torch.float64)


def round_weights(m):
    """Weights rounded to f32, so both sides start from identical values; LayerNorm weights and
    biases get random values too (ones and zeros would hide a swapped gamma/beta)."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif "norm" in name and name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            p.copy_(f32(p))


def out32(d):
    return {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}


def block_case(prefix, causal, g):
    d, heads, B, T = 32, 4, 2, 9
    m = Block(d, heads, causal, fused=False)
    round_weights(m)
    x = f32(torch.randn(B, T, d, generator=g)).requires_grad_()
    r = f32(torch.randn(B, T, d, generator=g))
    y = m(x)
    (y * r).sum().backward()
    out = {f"{prefix}x": x, f"{prefix}r": r, f"{prefix}y": y, f"{prefix}dx": x.grad}
    for n, p in m.named_parameters():
        out[f"{prefix}{n}"] = p
        out[f"{prefix}grad.{n}"] = p.grad
    return out


def vit_case(g):
    m = Vit(d=32, depth=2, heads=4, fused=False)
    round_weights(m)
    images = f32(torch.rand(3, 1, 28, 28, generator=g))
    labels = torch.tensor([3, 0, 9])
    logits = m(images)
    loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
    loss.backward()
    out = {"images": images, "labels": labels.to(torch.float64), "logits": logits, "loss": loss.reshape(1)}
    for n, p in m.named_parameters():
        out[n] = p
        out[f"grad.{n}"] = p.grad
    return out


def gpt_case(g, steps=3):
    m = Gpt(d=32, depth=2, heads=4, context=16, fused=False)
    round_weights(m)
    out = {f"init.{n}": p.clone() for n, p in m.named_parameters()}
    decay, no_decay = param_groups(m)
    opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-2,
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=0.05)
    losses = []
    for s in range(steps):
        ids = torch.randint(0, 256, (4, 16), generator=g)
        tgt = torch.randint(0, 256, (4, 16), generator=g)
        out[f"step{s}.ids"] = ids.to(torch.float64)
        out[f"step{s}.targets"] = tgt.to(torch.float64)
        logits = m(ids)
        loss = F.cross_entropy(logits.reshape(-1, 256), tgt.reshape(-1))
        losses.append(loss.detach())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    out["losses"] = torch.stack(losses)
    for n, p in m.named_parameters():
        out[f"final.{n}"] = p
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "golden"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.manual_seed(1234)  # parameter initialization
    g = torch.Generator().manual_seed(5678)  # inputs
    meta = {"generator": "tools/golden/make_golden.py", "torch": torch.__version__}
    files = {
        "block.safetensors": {**block_case("bi.", False, g), **block_case("causal.", True, g)},
        "vit.safetensors": vit_case(g),
        "gpt_steps.safetensors": gpt_case(g),
    }
    for name, tensors in files.items():
        path = os.path.join(a.out, name)
        save_file(out32(tensors), path, metadata=meta)
        print(f"{path}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
