#!/usr/bin/env python3
"""The numpy peer: the same model as charrnn written as a plain batched numpy RNN (embedding -> stacked
Elman tanh layers -> linear -> softmax cross-entropy, backpropagation through time by hand, Adam, clip 5),
trained on the same data and configurations, printing the same figures as bench/peer_torch.py.

    bench/peer_numpy.py [--steps N] [--configs small,medium,deep,default] [--data FILE]
    bench/peer_numpy.py --check        (its gradients against finite differences, in float64)

float32 throughout, time-major [T, B] batches as charrnn; the matrix products go to the BLAS numpy was
built with (Debian: OpenBLAS), so run it with OPENBLAS_NUM_THREADS set to the thread count (bench/
compare.py does). Training: median tokens/s of the timed steps after 3 warm-up steps, each step timed
from making its batch to the end of the optimizer step. Sampling: one character at a time with the
hidden state carried, chars/s. Peak memory: resident set size.
"""
import argparse
import resource
import statistics
import sys
import time

import numpy as np

CONFIGS = {  # name: embed, hidden, layers, seq_len, batch (as bench/compare.py)
    "small": (128, 128, 1, 64, 32),
    "medium": (512, 512, 1, 128, 64),
    "deep": (256, 256, 2, 128, 64),
    "default": (64, 256, 2, 128, 64),
}


class Model:
    """Parameters (as charrnn initialises them: embedding N(0, 1), the rest U(-1/sqrt(H), 1/sqrt(H))), the
    forward pass with what backward needs, backward, and Adam."""

    def __init__(self, vocab, embed, hidden, layers, rng, dtype=np.float32):
        bound = 1.0 / np.sqrt(hidden)

        def uniform(*shape):
            return rng.uniform(-bound, bound, shape).astype(dtype)

        self.params = {"emb": rng.standard_normal((vocab, embed)).astype(dtype)}
        for l in range(layers):
            self.params[f"wxh{l}"] = uniform(embed if l == 0 else hidden, hidden)
            self.params[f"whh{l}"] = uniform(hidden, hidden)
            self.params[f"bh{l}"] = uniform(hidden)
        self.params["why"] = uniform(hidden, vocab)
        self.params["by"] = uniform(vocab)
        self.layers, self.hidden, self.vocab = layers, hidden, vocab
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.step = 0

    def loss_and_grads(self, x, y):
        """Mean cross-entropy over all [T, B] positions and the gradient of every parameter."""
        p, T, B, H = self.params, x.shape[0], x.shape[1], self.hidden
        u = p["emb"][x]  # [T, B, E]
        inputs, states = [], []
        for l in range(self.layers):
            pre = (u.reshape(T * B, -1) @ p[f"wxh{l}"] + p[f"bh{l}"]).reshape(T, B, H)
            h = np.zeros((T + 1, B, H), dtype=u.dtype)
            whh = p[f"whh{l}"]
            for t in range(T):
                np.tanh(pre[t] + h[t] @ whh, out=h[t + 1])
            inputs.append(u)
            states.append(h)
            u = h[1:]
        z = u.reshape(T * B, H) @ p["why"] + p["by"]
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        rows = np.arange(T * B)
        loss = float(np.mean(np.log(s[:, 0]) - z[rows, y.ravel()]))
        dz = e / s
        dz[rows, y.ravel()] -= 1.0
        dz /= T * B

        g = {"why": u.reshape(T * B, H).T @ dz, "by": dz.sum(axis=0)}
        dh = (dz @ p["why"].T).reshape(T, B, H)
        for l in reversed(range(self.layers)):
            h, whh, uin = states[l], p[f"whh{l}"], inputs[l]
            da = np.empty_like(dh)
            carry = np.zeros((B, H), dtype=dh.dtype)
            for t in reversed(range(T)):
                da[t] = (dh[t] + carry) * (1.0 - h[t + 1] * h[t + 1])
                carry = da[t] @ whh.T
            da2 = da.reshape(T * B, H)
            g[f"whh{l}"] = h[:-1].reshape(T * B, H).T @ da2
            g[f"wxh{l}"] = uin.reshape(T * B, -1).T @ da2
            g[f"bh{l}"] = da2.sum(axis=0)
            dh = (da2 @ p[f"wxh{l}"].T).reshape(T, B, -1)
        # the embedding's gradient, rows summed per character: a one-hot product (the vocabulary is small)
        onehot = np.zeros((T * B, self.vocab), dtype=dh.dtype)
        onehot[rows, x.ravel()] = 1.0
        g["emb"] = onehot.T @ dh.reshape(T * B, -1)
        return loss, g

    def adam(self, g, lr=2e-3, b1=0.9, b2=0.999, eps=1e-8, clip=5.0):
        norm = np.sqrt(sum(float(np.sum(gi * gi)) for gi in g.values()))
        scale = np.float32(clip / norm if norm > clip else 1.0)
        self.step += 1
        c1, c2 = 1.0 - b1 ** self.step, 1.0 - b2 ** self.step
        for k, p in self.params.items():
            gk = g[k] * scale
            m, v = self.m[k], self.v[k]
            m *= b1
            m += (1 - b1) * gk
            v *= b2
            v += (1 - b2) * gk * gk
            p -= lr * (m / c1) / (np.sqrt(v / c2) + eps)

    def sample(self, length, rng):
        p, h = self.params, [np.zeros(self.hidden, dtype=np.float32) for _ in range(self.layers)]
        token = 0
        for _ in range(length):
            u = p["emb"][token]
            for l in range(self.layers):
                h[l] = np.tanh(u @ p[f"wxh{l}"] + p[f"bh{l}"] + h[l] @ p[f"whh{l}"])
                u = h[l]
            z = u @ p["why"] + p["by"]
            e = np.exp(z - z.max())
            token = int(np.searchsorted(np.cumsum(e), rng.random() * e.sum()))
            token = min(token, self.vocab - 1)


def load(path):
    text = open(path, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = np.array([index[c] for c in text], dtype=np.int64)
    return data[: int(len(data) * 0.9)], len(chars)


def batch(data, T, B, rng):
    starts = rng.integers(0, len(data) - T - 1, B)
    seq = data[starts[None, :] + np.arange(T + 1)[:, None]]  # [T+1, B]
    return seq[:-1], seq[1:]


def check():
    """Gradients of a small float64 model against central differences of its loss, every entry."""
    rng = np.random.default_rng(7)
    model = Model(vocab=11, embed=7, hidden=13, layers=2, rng=rng, dtype=np.float64)
    x, y = rng.integers(0, 11, (5, 3)), rng.integers(0, 11, (5, 3))
    _, g = model.loss_and_grads(x, y)
    step, worst = 1e-6, 0.0
    for name, p in model.params.items():
        fd = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            keep = p[i]
            p[i] = keep + step
            up = model.loss_and_grads(x, y)[0]
            p[i] = keep - step
            down = model.loss_and_grads(x, y)[0]
            p[i] = keep
            fd[i] = (up - down) / (2 * step)
        # relative to the tensor's largest entry: central differences in float64 are good to ~1e-9 here
        err = float(np.max(np.abs(g[name] - fd)) / max(np.max(np.abs(fd)), 1e-12))
        print(f"{name:<6} worst relative difference {err:.2e}")
        worst = max(worst, err)
    ok = worst < 1e-6
    print("peer_numpy --check: gradients " + ("match" if ok else "DO NOT match") + " finite differences")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/tinyshakespeare/input.txt")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--configs", default="small,medium,deep,default")
    ap.add_argument("--sample-length", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--check", action="store_true", help="check the gradients against finite differences")
    args = ap.parse_args()
    if args.check:
        sys.exit(check())
    rng = np.random.default_rng(args.seed)
    train, vocab = load(args.data)
    print(f"# numpy {np.__version__}, cpu", flush=True)
    print(f"{'config':<8} {'device':<6} {'train tok/s':>14} {'sample char/s':>14} {'peak MiB':>9} {'GPU MiB':>8}")
    for name in args.configs.split(","):
        E, H, L, T, B = CONFIGS[name]
        model = Model(vocab, E, H, L, rng)
        rates = []
        for step in range(args.steps + 3):
            t0 = time.perf_counter()
            x, y = batch(train, T, B, rng)
            _, g = model.loss_and_grads(x, y)
            model.adam(g)
            if step >= 3:
                rates.append(T * B / (time.perf_counter() - t0))
        model.sample(20, rng)
        t0 = time.perf_counter()
        model.sample(args.sample_length, rng)
        chars = args.sample_length / (time.perf_counter() - t0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:<8} {'cpu':<6} {statistics.median(rates):>14.0f} {chars:>14.0f} {peak:>9.0f} {float('nan'):>8}",
              flush=True)


if __name__ == "__main__":
    main()
