#!/usr/bin/env python3
"""The modelled cost of data-parallel training on GPUs: one all-reduce of the gradient buffer per step
against the step itself, per benchmark configuration, inside one machine (NVLink) and across machines
(the network). Pure Python; prints one table. No GPU was available to measure it.

    bench/allreduce.py [--gpus 2,8,16] [--nvlink-gbs G] [--network-gbs G] [--nvlink-us A] [--network-us A]
                       [--step-us small=US,...] [--configs small,medium,deep,default] [--tf32] [--fold]

Bytes per step: S = 4 P + 8 (the float32 gradients of the P parameters, in one contiguous buffer, and
the loss as a double, in the same NCCL group).

All-reduce time (a ring, NCCL's algorithm for large buffers): every GPU sends and receives
2 (N-1)/N S bytes, so t = alpha + 2 (N-1)/N S / bw, where bw is the one-direction bandwidth of a GPU's
links (what nccl-tests calls the bus bandwidth, busbw = algbw x 2 (N-1)/N for all-reduce:
https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md) and alpha the latency of a small
all-reduce. Across machines the slowest link sets bw: each GPU's network port.

Figures (defaults):
  NVLink: H100 SXM5, 900 GB/s per GPU in both directions together (NVIDIA "H100 Tensor Core GPU"
          datasheet), so 450 GB/s each way.
  Network: one 400 Gb/s NDR InfiniBand port per GPU (ConnectX-7, as in DGX H100: eight ports for
          eight GPUs), 50 GB/s each way.
  alpha: ASSUMED, not measured: 10 us inside a machine, 25 us across machines (nccl-tests prints times
          of this order for buffers of a few bytes; override with --nvlink-us, --network-us).

Step time: bench/floor.py's model of the step on an H100 (its products and elementwise work at the
floor's rate, plus the wavefront recurrence's serial chain with floor.py's assumed latencies) for the
rank's share of the batch (default), or a measured time per configuration with --step-us. A step on B/N rows is not N times
shorter than on B: the recurrence's serial chain (2 (T + L - 1) grid syncs for the wavefront) costs the
same whatever the rows.
So two ways of scaling out are shown:
  same global batch (the N-rank run computes what one GPU computes, as charrnn's tests check):
      each GPU runs B/N rows, tokens/s = T B / (step(B/N) + t);
  batch grown with the GPUs (B rows per GPU, a global batch of N B):
      tokens/s = N T B / (step(B) + t), efficiency = step(B) / (step(B) + t).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import floor  # noqa: E402  (the same shapes and step model)

CONFIGS = dict(floor.CONFIGS, default=(64, 256, 2, 128, 64))  # charrnn train's defaults


def step_us(name, rows, args, model):
    """bench/floor.py's model of a step of `rows` sequences (the wavefront recurrence), in microseconds."""
    E, H, L, T, _ = CONFIGS[name]
    products, other, dram, _ = floor.step_cost(args.vocab, E, H, L, T, rows, args.fold and args.vocab <= T * rows)
    rate = (model.tf32_tflops if args.tf32 else model.peak_tflops) * 1e12
    work = max(products / rate + other / (model.peak_tflops * 1e12), dram / (model.bandwidth_tbs * 1e12)) * 1e6
    return work + floor.recurrence_us(model, "wavefront", H, L, T)


def allreduce_us(bytes_, gpus, gbs, alpha_us):
    return alpha_us + 2.0 * (gpus - 1) / gpus * bytes_ / (gbs * 1e9) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gpus", default="2,8,16", help="GPUs in the job; up to 8 share a machine's NVLink")
    ap.add_argument("--per-machine", type=int, default=8, help="GPUs per machine (NVLink domain)")
    ap.add_argument("--nvlink-gbs", type=float, default=450.0, help="NVLink, GB/s each way per GPU")
    ap.add_argument("--network-gbs", type=float, default=50.0, help="network, GB/s each way per GPU")
    ap.add_argument("--nvlink-us", type=float, default=10.0, help="small all-reduce latency in a machine (assumed)")
    ap.add_argument("--network-us", type=float, default=25.0, help="small all-reduce latency across machines (assumed)")
    ap.add_argument("--tf32", action="store_true", help="floor.py's step with TF32 products")
    ap.add_argument("--fold", action="store_true", help="floor.py's step with layer 0 folded through the vocabulary")
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--step-us", default="", help="measured step times of the whole batch: small=US,deep=US,...")
    ap.add_argument("--configs", default="small,medium,deep,default")
    args = ap.parse_args()
    model = floor.parser().parse_args([])  # its peaks and assumed latencies
    measured = dict((k, float(v)) for k, v in (kv.split("=") for kv in args.step_us.split(",") if kv))
    names = args.configs.split(",")
    for name in names:
        if name not in CONFIGS:
            sys.exit(f"allreduce: unknown config '{name}' (configs: {', '.join(CONFIGS)})")
    print(f"# ring all-reduce of 4P+8 bytes: NVLink {args.nvlink_gbs:g} GB/s + {args.nvlink_us:g} us (assumed), "
          f"network {args.network_gbs:g} GB/s + {args.network_us:g} us (assumed), {args.per_machine} GPUs per machine; "
          f"steps: {'measured' if measured else 'bench/floor.py model of an H100'}")
    print(f"{'config':<8} {'params':>9} {'MB/step':>8} {'GPUs':>4} {'link':>7} | {'all-reduce us':>13} "
          f"{'step(B) us':>10} {'share':>6} | {'grown batch':>11} | {'step(B/N) us':>12} {'same batch':>10}")
    for name in names:
        E, H, L, T, B = CONFIGS[name]
        P = floor.step_cost(args.vocab, E, H, L, T, B, False)[3]
        size = 4 * P + 8
        whole = measured.get(name, step_us(name, B, args, model))
        for gpus in (int(g) for g in args.gpus.split(",")):
            across = gpus > args.per_machine
            t = allreduce_us(size, gpus, args.network_gbs if across else args.nvlink_gbs,
                             args.network_us if across else args.nvlink_us)
            rows = max(1, B // gpus)
            part = step_us(name, rows, args, model) if name not in measured else whole * rows / B
            # Relative to one GPU: N B rows in step(B) + t, and B rows in step(B/N) + t.
            grown = gpus * whole / (whole + t)
            same = whole / (part + t)
            print(f"{name:<8} {P:>9,} {size / 1e6:>8.2f} {gpus:>4} {'network' if across else 'NVLink':>7} | "
                  f"{t:>13.1f} {whole:>10.1f} {t / (whole + t):>6.1%} | {grown:>10.2f}x | {part:>12.1f} "
                  f"{same:>9.2f}x")


if __name__ == "__main__":
    main()
