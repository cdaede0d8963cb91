"""bench/peers/tessel_models.py — the models of nn/transformer.cpp, written in PyTorch.

One definition for both of its users: bench/peers/pytorch_peer.py times training steps of them
against tessel (`vit_fmnist_step`, `gpt_step`), and tools/golden/make_golden.py computes golden
tensors from them for tests/nn/golden_test.cpp. Parameter names are tessel's (state_dict keys
such as blocks.0.attn.qkv.weight, blocks.0.ffn.fc1.bias), so weights move between the two as
they are. Architecture: pre-norm blocks, q/k/v from one Linear, erf-GELU MLP with ratio 4,
LayerNorm eps 1e-5; the ViT with 7x7 patches, a class token and learned positions; the GPT
byte-level with learned positions and the head tied to the token embedding.

`fused=True` runs attention through F.scaled_dot_product_attention (PyTorch's fastest eager
path: what a PyTorch user would write, and what the peer times); `fused=False` writes it out
(softmax(q k^T / sqrt(d) + mask) v), the plain reference the golden tensors come from.
"""
import math

import torch

F = torch.nn.functional


class Attention(torch.nn.Module):
    def __init__(self, d, heads, causal, fused):
        super().__init__()
        self.heads, self.causal, self.fused = heads, causal, fused
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.proj = torch.nn.Linear(d, d)

    def forward(self, x):
        B, T, D = x.shape
        hd = D // self.heads
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
        if self.fused:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        else:
            s = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            if self.causal:
                s = s.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
            o = torch.softmax(s, -1) @ v
        return self.proj(o.transpose(1, 2).reshape(B, T, D))


class Mlp(torch.nn.Module):
    def __init__(self, d, ratio):
        super().__init__()
        self.fc1 = torch.nn.Linear(d, ratio * d)
        self.fc2 = torch.nn.Linear(ratio * d, d)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))  # erf GELU


class Block(torch.nn.Module):
    def __init__(self, d, heads, causal, fused, ratio=4):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(d, eps=1e-5)
        self.attn = Attention(d, heads, causal, fused)
        self.norm2 = torch.nn.LayerNorm(d, eps=1e-5)
        self.ffn = Mlp(d, ratio)

    def forward(self, x):
        h = x + self.attn(self.norm1(x))
        return h + self.ffn(self.norm2(h))


class Vit(torch.nn.Module):
    def __init__(self, d=128, depth=4, heads=4, patch=7, image=28, classes=10, fused=True):
        super().__init__()
        n = (image // patch) ** 2
        self.patch = patch
        self.patch_embed = torch.nn.Linear(patch * patch, d)
        self.cls = torch.nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = torch.nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.blocks = torch.nn.Sequential(*[Block(d, heads, False, fused) for _ in range(depth)])
        self.norm = torch.nn.LayerNorm(d, eps=1e-5)
        self.head = torch.nn.Linear(d, classes)

    def forward(self, images):
        B, C, H, W = images.shape
        p = self.patch
        x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * p * p)
        h = torch.cat([self.cls.expand(B, 1, -1), self.patch_embed(x)], 1) + self.pos
        return self.head(self.norm(self.blocks(h))[:, 0])


class Gpt(torch.nn.Module):
    def __init__(self, d=128, depth=4, heads=4, context=128, vocab=256, fused=True):
        super().__init__()
        self.tokens = torch.nn.Embedding(vocab, d)
        self.positions = torch.nn.Embedding(context, d)
        with torch.no_grad():
            self.tokens.weight.mul_(0.02)
            self.positions.weight.mul_(0.01)
        self.blocks = torch.nn.Sequential(*[Block(d, heads, True, fused) for _ in range(depth)])
        self.norm = torch.nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids):
        h = self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        return F.linear(self.norm(self.blocks(h)), self.tokens.weight)  # tied head


def param_groups(model):
    """tools/train_optimizer.cpp's groups: weight decay on matrices except positional tables."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "pos" not in n)]
    return decay, no_decay
