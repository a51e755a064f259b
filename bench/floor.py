#!/usr/bin/env python3
"""A lower bound on the time of one charrnn training step on a GPU, per benchmark configuration: the
arithmetic at the GPU's peak rate or the minimum DRAM traffic at its bandwidth, whichever is longer,
plus the latency of the recurrence's serial chain. Pure Python; prints one table.

    bench/floor.py [--peak-tflops F] [--tf32] [--tf32-tflops F] [--bandwidth-tbs B] [--sync-us S]
                   [--fold] [--vocab V] [--configs small,medium,deep] [--measured FILE]

Shapes: V vocabulary (65, tiny shakespeare), E embedding, H hidden, L layers, T timesteps, B batch,
N = T*B tokens per step, I = E for layer 0 and H above. P parameters = VE + (EH + H^2 + H)
+ (L-1)(2H^2 + H) + HV + V.

FLOPs per step (a multiply-add is 2 FLOPs):
  forward products:  per layer 2*N*I*H (input projection) + 2*N*H*H (recurrence); 2*N*H*V (logits).
                     --fold: layer 0's input projection through the vocabulary, as charrnn does when
                     V < N: 2*V*E*H forward and 2 * 2*V*E*H backward, plus N*H adds for the per-token
                     sum of the gradient, in place of 2*N*E*H and 2 * 2*N*E*H.
  backward products: twice the forward products (the gradient with respect to the input and to the
                     weights, each the size of the forward product).
  elementwise:       forward 3*N*H per layer (input projection + bias + tanh, tanh counted as 1);
                     6*N*V for softmax, cross-entropy and the logits' gradient; N*V for the output
                     bias; backward 4*N*H per layer for dA = (dh + c)(1 - h^2), N*H per layer for the
                     bias gradient, N*V for the output bias gradient, N*E for the embedding gradient.
  optimizer:         15 per parameter: 3 for the squared gradient norm and the clipping scale, 12 for
                     Adam (two moment updates, two bias corrections, sqrt, eps, divide, learning rate,
                     subtract).
  With --tf32 the products run at the TF32 tensor-core rate and everything else at the FP32 rate;
  without it all of it runs at the FP32 (non-tensor) rate, as charrnn's default full-float32 cuBLAS.

Minimum DRAM bytes per step (float32, 4 bytes; int32 tokens):
  parameters read once and written once, gradients written once and read once, Adam's two moments
  read once and written once: 32*P. Activations written once and read once: the hidden states h of
  every layer (kept for backward), the per-layer dA of backward (read by the weight-gradient
  products), and the logits (their gradient written over them): 8*(2*L*N*H + N*V). The tokens X and
  Y read once: 8*N. Assumed: nothing else reaches DRAM (input projections, dh and the recurrence
  carry fused or kept on chip; W_hh kept on chip across timesteps). The H100's 50 MB L2 cache can
  hold much of this at these sizes, so this term is a reference figure rather than a strict bound;
  it is small beside the others here anyway.

Serial chain: each layer's recurrence is T dependent steps forward and T backward, so a step has at
least 2*L*T grid-wide synchronisations (or kernel boundaries), each costing at least the sync
latency. Floor time per step = max(FLOPs / peak, bytes / bandwidth) + 2*L*T * sync latency: the
arithmetic may run at peak as if perfectly parallel, but the chain's latencies cannot overlap each
other. Floor tokens/s = T*B / floor time.

Default figures, NVIDIA H100 SXM5 (80 GB HBM3), approximately, from NVIDIA's "H100 Tensor Core GPU"
datasheet (SXM column): FP32 67 TFLOP/s (66.9: 16,896 FP32 cores x 2 x 1.98 GHz), TF32 tensor core
989 TFLOP/s with 2:4 sparsity, so about 495 dense, HBM3 3.35 TB/s. The device machines used here
measured a device-to-device copy at about 3.0 TB/s. The grid-sync latency of 1 microsecond is an
ASSUMPTION, not a measurement (a cooperative grid sync or a kernel boundary inside a CUDA graph costs
on the order of 1 to a few microseconds); override it with --sync-us.

--measured FILE reads the table bench/compare.py printed (rows "config label | ours peer ratio | ...")
and adds measured tokens/s and the fraction of the floor's rate reached (measured / floor).
"""
import argparse
import sys

CONFIGS = {"small": (128, 128, 1, 64, 32), "medium": (512, 512, 1, 128, 64), "deep": (256, 256, 2, 128, 64)}


def step_cost(V, E, H, L, T, B, fold):
    """(product FLOPs, other FLOPs, DRAM bytes, syncs, parameters) of one training step."""
    N = T * B
    P = V * E + (E * H + H * H + H) + (L - 1) * (2 * H * H + H) + H * V + V
    products = 0
    for layer in range(L):
        inputs = E if layer == 0 else H
        if layer == 0 and fold:
            products += 3 * 2 * V * E * H  # forward Emb W_xh, backward Emb^T G and G W_xh^T
        else:
            products += 3 * 2 * N * inputs * H
        products += 3 * 2 * N * H * H  # recurrence, and twice that backward
    products += 3 * 2 * N * H * V  # logits
    other = L * (3 * N * H + 4 * N * H + N * H) + 6 * N * V + 2 * N * V + N * E + 15 * P
    if fold:
        other += N * H  # the per-token sum of layer 0's gradient
    dram = 32 * P + 8 * (2 * L * N * H + N * V) + 8 * N
    return products, other, dram, 2 * L * T, P


def read_measured(path):
    """{config: [(label, ours tok/s, peer tok/s)]} from bench/compare.py's table."""
    rows = {}
    for line in open(path, encoding="utf-8"):
        parts = line.split("|")
        head = parts[0].split()
        if len(parts) < 2 or len(head) < 2 or head[0] not in CONFIGS:
            continue
        try:
            ours, peer = (float(x) for x in parts[1].split()[:2])
        except ValueError:
            continue
        rows.setdefault(head[0], []).append((head[1], ours, peer))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peak-tflops", type=float, default=67.0, help="FP32 (non-tensor) peak, TFLOP/s")
    ap.add_argument("--tf32", action="store_true", help="the products at the TF32 tensor-core rate")
    ap.add_argument("--tf32-tflops", type=float, default=495.0, help="TF32 tensor-core dense peak, TFLOP/s")
    ap.add_argument("--bandwidth-tbs", type=float, default=3.35, help="DRAM bandwidth, TB/s")
    ap.add_argument("--sync-us", type=float, default=1.0, help="latency of one grid-wide sync (assumed), us")
    ap.add_argument("--fold", action="store_true", help="layer 0's input projection through the vocabulary")
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--configs", default="small,medium,deep")
    ap.add_argument("--measured", metavar="FILE", help="bench/compare.py output to set against the floor")
    args = ap.parse_args()
    names = args.configs.split(",")
    for name in names:
        if name not in CONFIGS:
            sys.exit(f"floor: unknown config '{name}' (configs: {', '.join(CONFIGS)})")
    measured = read_measured(args.measured) if args.measured else {}
    product_rate = (args.tf32_tflops if args.tf32 else args.peak_tflops) * 1e12
    print(f"# floor per training step: FP32 {args.peak_tflops:g} TFLOP/s"
          f"{f', products on TF32 tensor cores {args.tf32_tflops:g} TFLOP/s' if args.tf32 else ''}, "
          f"DRAM {args.bandwidth_tbs:g} TB/s, grid sync {args.sync_us:g} us (assumed), V={args.vocab}"
          f"{', layer 0 folded through the vocabulary' if args.fold else ''}")
    print(f"{'config':<7} {'params':>9} {'GFLOP':>7} {'MB':>7} {'syncs':>5} | {'compute us':>10} {'DRAM us':>8} "
          f"{'sync us':>8} | {'floor us':>8} {'floor tok/s':>12}")
    floors = {}
    for name in names:
        E, H, L, T, B = CONFIGS[name]
        products, other, dram, syncs, P = step_cost(args.vocab, E, H, L, T, B, args.fold)
        compute = products / product_rate + other / (args.peak_tflops * 1e12)
        memory = dram / (args.bandwidth_tbs * 1e12)
        chain = syncs * args.sync_us * 1e-6
        floor = max(compute, memory) + chain
        floors[name] = T * B / floor
        print(f"{name:<7} {P:>9,} {(products + other) / 1e9:>7.2f} {dram / 1e6:>7.1f} {syncs:>5} | "
              f"{compute * 1e6:>10.1f} {memory * 1e6:>8.1f} {chain * 1e6:>8.1f} | {floor * 1e6:>8.1f} "
              f"{floors[name]:>12,.0f}")
    if args.measured:
        print(f"\n# measured ({args.measured}) against the floor: tokens/s and measured / floor")
        print(f"{'config':<7} {'label':<18} | {'ours tok/s':>11} {'/ floor':>7} | {'peer tok/s':>11} {'/ floor':>7}")
        for name in names:
            for label, ours, peer in measured.get(name, []):
                print(f"{name:<7} {label:<18} | {ours:>11,.0f} {ours / floors[name]:>7.3f} | {peer:>11,.0f} "
                      f"{peer / floors[name]:>7.3f}")


if __name__ == "__main__":
    main()
