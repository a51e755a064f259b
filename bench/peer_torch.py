#!/usr/bin/env python3
"""The peer: the same model in PyTorch (nn.Embedding -> nn.RNN(tanh) -> nn.Linear, Adam, clip 5), trained
on the same data and configurations as bench/speed.sh, printing the same figures.

    bench/peer_torch.py [--threads N] [--steps N] [--device cpu|cuda] [--tf32] [--configs small,medium,deep,default]
    bench/peer_torch.py --quality [--steps 2000] [--device cpu|cuda] [--tf32]   (deep config: validation loss)

Training: median tokens/s of the timed steps after 3 warm-up steps, each step timed from making its
batch to the end of the optimizer step (as charrnn times its steps). Sampling: one token at a time with
the hidden state carried (the loop a char-rnn user writes), chars/s. Peak memory: resident set size,
and on cuda also the peak of torch.cuda.max_memory_allocated (tensors only, no context or cache).
On the CPU, run it with OPENBLAS_NUM_THREADS set (bench/compare.py does) so that torch threads x BLAS
threads is the thread count asked for.

--device cuda: the model and the whole text on the GPU, nn.RNN on cuDNN, torch.cuda.synchronize() before
and after every timed step and at every sampled character. TF32 is off for both cuBLAS and cuDNN
(PyTorch turns it on for cuDNN by default) unless --tf32 is given; the header line says which.
"""
import argparse
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn

CONFIGS = {  # name: embed, hidden, layers, seq_len, batch
    "small": (128, 128, 1, 64, 32),
    "medium": (512, 512, 1, 128, 64),
    "deep": (256, 256, 2, 128, 64),
    "default": (64, 256, 2, 128, 64),
}


class CharRNN(nn.Module):
    def __init__(self, vocab, embed, hidden, layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.RNN(embed, hidden, layers, nonlinearity="tanh")  # time-major [T, B, E], as charrnn
        self.out = nn.Linear(hidden, vocab)

    def forward(self, x, h=None):
        y, h = self.rnn(self.embedding(x), h)
        return self.out(y), h


def load(path):
    text = open(path, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    n_train = int(len(data) * 0.9)
    return data[:n_train], data[n_train:], len(chars)


def batch(data, T, B, gen):
    """Inputs and targets [T, B] from B random offsets (drawn on the host), on data's device."""
    starts = torch.randint(0, len(data) - T - 1, (B,), generator=gen).to(data.device)
    idx = starts[None, :] + torch.arange(T + 1, device=data.device)[:, None]  # [T+1, B]
    seq = data[idx]
    return seq[:-1], seq[1:]


def sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def set_tf32(enabled):
    """TF32 on or off for cuBLAS and cuDNN; returns a description of the state for the header."""
    if hasattr(torch.backends, "fp32_precision"):  # PyTorch 2.9 and later: the old flags are deprecated
        mode = "tf32" if enabled else "ieee"
        try:
            torch.backends.fp32_precision = mode
            torch.backends.cuda.matmul.fp32_precision = mode
            torch.backends.cudnn.fp32_precision = mode
            torch.backends.cudnn.conv.fp32_precision = mode
            torch.backends.cudnn.rnn.fp32_precision = mode
            return (f"TF32 {'on' if enabled else 'off'}: cuBLAS {torch.backends.cuda.matmul.fp32_precision}, "
                    f"cuDNN RNN {torch.backends.cudnn.rnn.fp32_precision}")
        except Exception as e:  # an older or partial API: fall back to the old flags
            print(f"# peer_torch: the fp32_precision settings failed ({e}); using allow_tf32", file=sys.stderr)
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    return (f"TF32 {'on' if enabled else 'off'}: cuBLAS allow_tf32={torch.backends.cuda.matmul.allow_tf32}, "
            f"cuDNN allow_tf32={torch.backends.cudnn.allow_tf32}")


def train_steps(model, opt, data, T, B, steps, device, gen, timed):
    loss_fn = nn.CrossEntropyLoss()
    rates = []
    for step in range(steps):
        sync(device)
        t0 = time.perf_counter()
        x, y = batch(data, T, B, gen)
        logits, _ = model(x)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sync(device)
        if timed:
            rates.append(T * B / (time.perf_counter() - t0))
    return rates


@torch.no_grad()
def sample_rate(model, vocab, length, device):
    def generate(n):
        x = torch.zeros(1, 1, dtype=torch.long, device=device)
        h = None
        for _ in range(n):
            logits, h = model(x, h)
            p = torch.softmax(logits[0, 0], dim=-1)
            x = torch.multinomial(p, 1).view(1, 1)
            int(x)  # the character reaches the host, as it must to be printed

    generate(20)  # warm-up: the first calls at this shape choose their kernels
    t0 = time.perf_counter()
    generate(length)
    return length / (time.perf_counter() - t0)


@torch.no_grad()
def evaluate(model, data, T, B, device):
    """Mean loss over the split's non-overlapping T-character chunks from a zero state (as charrnn eval)."""
    n = (len(data) - 1) // T
    total, count = 0.0, 0
    for first in range(0, n, B):
        k = torch.arange(first, min(first + B, n))
        idx = k[None, :] * T + torch.arange(T + 1)[:, None]
        seq = data[idx.to(data.device)]
        logits, _ = model(seq[:-1])
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), seq[1:].reshape(-1), reduction="sum")
        total += float(loss)
        count += seq[1:].numel()
    return total / count


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/tinyshakespeare/input.txt")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--tf32", action="store_true", help="cuda: TF32 tensor cores for cuBLAS and cuDNN (off by default)")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--sample-length", type=int, default=2000)
    ap.add_argument("--quality", action="store_true", help="train the deep config and report validation loss")
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.device == "cuda":
        if not torch.cuda.is_available():
            sys.exit("peer_torch: --device cuda: torch.cuda.is_available() is False")
        if not torch.backends.cudnn.is_available():
            sys.exit("peer_torch: --device cuda: cuDNN is not available to this PyTorch")
        precision = set_tf32(args.tf32)
        about = (f"{torch.cuda.get_device_name()}, cuDNN {torch.backends.cudnn.version()}, {precision}")
    elif args.tf32:
        sys.exit("peer_torch: --tf32 needs --device cuda")
    else:
        about = f"{args.threads} thread{'s' if args.threads > 1 else ''}"
    train, val, vocab = load(args.data)
    train, val = train.to(args.device), val.to(args.device)
    gen = torch.Generator().manual_seed(args.seed)

    print(f"# PyTorch {torch.__version__}, {args.device}: {about}", flush=True)
    if args.quality:
        E, H, L, T, B = CONFIGS["deep"]
        model = CharRNN(vocab, E, H, L).to(args.device)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        marks = sorted({s for s in (250, 500, 1000, 1500, 2000, 3000, 5000) if s < args.steps} | {args.steps})
        done = 0
        for mark in marks:
            train_steps(model, opt, train, T, B, mark - done, args.device, gen, False)
            done = mark
            print(f"step {mark}: validation loss {evaluate(model, val, T, B, args.device):.4f}", flush=True)
        return

    print(f"{'config':<8} {'device':<6} {'train tok/s':>14} {'sample char/s':>14} {'peak MiB':>9} {'GPU MiB':>8}")
    for name in args.configs.split(","):
        E, H, L, T, B = CONFIGS[name]
        if args.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        model = CharRNN(vocab, E, H, L).to(args.device)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        train_steps(model, opt, train, T, B, 3, args.device, gen, False)
        rates = train_steps(model, opt, train, T, B, args.steps, args.device, gen, True)
        gpu = torch.cuda.max_memory_allocated() / 2**20 if args.device == "cuda" else float("nan")
        chars = sample_rate(model, vocab, args.sample_length, args.device)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:<8} {args.device:<6} {statistics.median(rates):>14.0f} {chars:>14.0f} {peak:>9.0f} {gpu:>8.0f}",
              flush=True)


if __name__ == "__main__":
    main()
