#!/usr/bin/env python3
"""bench/peers/pytorch_peer.py — the PyTorch side of `tessel bench peers`.

Each workload here mirrors one in tools/bench_workloads.cpp: same name, same shapes, f32, the
same work per operation (what is allocated, what autograd records). Timing protocol, as on the
tessel side (tools/bench_timing.h): untimed warm-up, a calibration run sets the repetitions so
that one sample lasts at least min_sample_ms, median of the samples.

Two ways to run it (bench/peers/setup creates the venv first):

  python pytorch_peer.py gemm_1024 [--samples 10] [--min-sample-ms 20] [--threads 2]
      runs one workload by the whole protocol and prints one JSON object
  python pytorch_peer.py --serve [--threads 2] [--device cuda]
      the persistent child `tessel bench peers` starts: prints a hello line, then answers one
      JSON request per stdin line, {"workload": NAME, "min_sample_ms": 20}, with one sample,
      {"workload": NAME, "ms": per-op ms, "reps": N}; the first request for a workload also
      builds its tensors and warms it up. So tessel and torch samples can alternate.
Errors come back as {"error": "..."} (serve mode) or a non-zero exit.

--device cuda runs every workload on the GPU (`tessel bench peers --device cuda`): inputs are
drawn on the CPU and moved, and each operation ends with torch.cuda.synchronize(), as on the
tessel side, so that a sample times finished work.
"""
import argparse
import json
import statistics
import sys
import time

import torch

from tessel_models import Gpt, Vit, param_groups

DEVICE = "cpu"  # set by --device before any workload is built


def dev(t):
    """A tensor drawn on the CPU (the same values on any device), moved to DEVICE."""
    return t.to(DEVICE)


def finished(op):
    """The operation, ending when the device is done (a no-op wrapper on the CPU)."""
    if DEVICE == "cpu":
        return op

    def run():
        op()
        torch.cuda.synchronize()

    return run


def _gemm(n):
    def make():
        a = dev(torch.randn(n, n))
        b = dev(torch.randn(n, n))
        return finished(lambda: torch.matmul(a, b))

    return make


def _softmax(rows, cols):
    def make():
        x = dev(torch.randn(rows, cols))
        return finished(lambda: torch.softmax(x, dim=-1))

    return make


def _layernorm_fwdbwd(rows, cols):
    def make():
        x = dev(torch.randn(rows, cols)).requires_grad_()
        w = dev(torch.randn(cols)).requires_grad_()
        b = dev(torch.randn(cols)).requires_grad_()
        dy = dev(torch.randn(rows, cols))

        def run():
            for t in (x, w, b):
                t.grad = None  # fresh gradients each time, as tessel's side does
            y = torch.nn.functional.layer_norm(x, (cols,), w, b, eps=1e-5)
            y.backward(dy)

        return finished(run)

    return make


def _attn_causal_fwdbwd(B, H, T, hd):
    # FLOPs as on tessel's side: 4 B H T^2 hd halved for the mask, backward 2.5x the forward.
    def make():
        q = dev(torch.randn(B, H, T, hd)).requires_grad_()
        k = dev(torch.randn(B, H, T, hd)).requires_grad_()
        v = dev(torch.randn(B, H, T, hd)).requires_grad_()
        do = dev(torch.randn(B, H, T, hd))

        def run():
            for t in (q, k, v):
                t.grad = None  # fresh gradients each time, as tessel's side does
            torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(do)

        return finished(run)

    return make


# --- training steps: the models of `tessel train`, written the way a PyTorch user would -------
# bench/peers/tessel_models.py: the same architecture, initialization scales and parameter names
# as nn/transformer.cpp, attention through F.scaled_dot_product_attention (PyTorch's fastest
# eager path); the parameter groups and optimizer of tools/train_optimizer.cpp: AdamW(lr 2e-3,
# wd 0.05 on matrices except positional tables), global-norm clipping at 1.

F = torch.nn.functional


def _train_step(model, x, y, label_smoothing):
    model = model.to(DEVICE)  # before the optimizer, whose state goes where the parameters are
    x, y = dev(x), dev(y)

    def make():
        decay, no_decay = param_groups(model)
        opt = torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0.0}], lr=2e-3,
                                weight_decay=0.05)

        def run():
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), label_smoothing=label_smoothing)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        return finished(run)

    return make


def _vit_step():
    return _train_step(Vit(), torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,)), 0.1)()


def _gpt_step():
    return _train_step(Gpt(), torch.randint(0, 256, (32, 128)), torch.randint(0, 256, (32, 128)), 0.0)()


# name -> factory; keep in step with tools/bench_workloads.cpp
WORKLOADS = {
    "gemm_1024": _gemm(1024),
    "softmax_4096x4096": _softmax(4096, 4096),
    "layernorm_fwdbwd_4096x1024": _layernorm_fwdbwd(4096, 1024),
    "attn_causal_fwdbwd_t512": _attn_causal_fwdbwd(4, 8, 512, 64),
    "attn_causal_fwdbwd_t128": _attn_causal_fwdbwd(32, 4, 128, 32),  # the shape inside gpt_step
    "vit_fmnist_step": _vit_step,
    "gpt_step": _gpt_step,
}


class Runner:
    """One workload's tensors, warmed up and calibrated on first use."""

    def __init__(self, name, min_sample_ms):
        if name not in WORKLOADS:
            raise KeyError(f"unknown workload '{name}' (known: {', '.join(sorted(WORKLOADS))})")
        self.op = WORKLOADS[name]()
        self.op()  # untimed warm-up
        t0 = time.perf_counter()
        self.op()  # calibration
        once_ms = max((time.perf_counter() - t0) * 1e3, 1e-4)
        self.reps = max(1, int(-(-1.1 * min_sample_ms // once_ms)))

    def sample(self):
        t0 = time.perf_counter()
        for _ in range(self.reps):
            self.op()
        return (time.perf_counter() - t0) * 1e3 / self.reps


def peer_name():
    return "pytorch-" + torch.__version__.split("+")[0]


def serve():
    runners = {}
    print(json.dumps({"peer": peer_name(), "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            if req.get("cmd") == "quit":
                break
            name = req["workload"]
            if name not in runners:
                runners[name] = Runner(name, float(req.get("min_sample_ms", 20)))
            r = runners[name]
            reply = {"workload": name, "ms": r.sample(), "reps": r.reps}
        except Exception as e:  # the C++ side reports it and goes on without the peer
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", nargs="?", help="one of: " + ", ".join(WORKLOADS))
    ap.add_argument("--serve", action="store_true", help="answer requests on stdin (what tessel bench peers uses)")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--min-sample-ms", type=float, default=20.0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="where the workloads run")
    args = ap.parse_args()
    global DEVICE
    DEVICE = args.device
    if DEVICE == "cuda" and not torch.cuda.is_available():
        sys.exit("pytorch_peer.py: --device cuda, but torch.cuda.is_available() is False")

    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(0)
    if args.serve:
        serve()
        return
    if not args.workload:
        ap.error("name a workload or pass --serve")
    r = Runner(args.workload, args.min_sample_ms)
    samples = [r.sample() for _ in range(args.samples)]
    print(json.dumps({"workload": args.workload, "peer": peer_name(), "threads": torch.get_num_threads(),
                      "ms": statistics.median(samples), "reps": r.reps, "samples_ms": samples}))


if __name__ == "__main__":
    main()
