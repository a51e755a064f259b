#!/usr/bin/env python3
"""What a charrnn training step and a generated character should cost on a GPU, per benchmark
configuration: a lower bound (the floor), and a model of each way the CUDA backend can run, so that the
first measurements can be read against both. Pure Python; prints three tables.

    bench/floor.py [--tf32] [--measured FILE] [--configs small,medium,deep] [--vocab V] [--fold]
                   [--peak-tflops F] [--tf32-tflops F] [--bandwidth-tbs B] [--sync-us S] [--launch-us S]
                   [--stage-us S] [--clock-ghz G] [--sample-launch-us S] [--sm-l2-gbs B] [--cpu-gmacs R]

Shapes: V vocabulary (65, tiny shakespeare), E embedding, H hidden, L layers, T timesteps, B batch,
N = T*B tokens per step, I = E for layer 0 and H above. P parameters = VE + (EH + H^2 + H)
+ (L-1)(2H^2 + H) + HV + V.

1. The floor of a step. FLOPs (a multiply-add is 2): forward products per layer 2*N*I*H (input
projection) + 2*N*H*H (recurrence), 2*N*H*V (logits); backward twice the forward products. --fold:
layer 0's input projection through the vocabulary (2*V*E*H forward, 2 * 2*V*E*H backward, N*H adds for
the per-token sum) as charrnn does when V < N. Elementwise: 3*N*H per layer forward, 6*N*V softmax and
cross-entropy, N*V output bias; backward 4*N*H per layer for dA, N*H per layer for the bias gradient,
N*V for the output bias, N*E for the embedding. Optimizer 15 per parameter. With --tf32 the products run
at the TF32 tensor-core rate, everything else at FP32. Minimum DRAM bytes: parameters, gradients and
Adam's moments read and written once (32*P), h of every layer, dA and the logits written and read once
(8*(2*L*N*H + N*V)), the tokens (8*N); the H100's 50 MB L2 holds much of this, so that term is a
reference rather than a strict bound. The serial chain: each layer's recurrence is T dependent steps
each way. Floor = max(FLOPs / peak, bytes / bandwidth) + the fewest grid-wide barriers any schedule
needs, 2*(T + L - 1) (a wavefront over the layers), times --sync-us.

2. A model of each recurrence mode, per step: the products and elementwise work at the floor's rate,
plus the recurrence's serial chain, in which each timestep costs a barrier (a grid-wide sync, or a
kernel boundary inside a graph: --launch-us) plus its own latency: staging the previous state from L2
(--stage-us) and the multiply-add chain of one thread (K/4 dependent multiply-adds, K the inner
dimension per block, 4 cycles each at --clock-ghz; the 4 warps of a block split K):
    per-timestep kernels   2*L*T kernels in the graph; a thread sums all of H (K = H, no split)
    persistent per layer   2*L launches, 2*L*(T-1) grid syncs, K = H/4 per warp
    wavefront              2 launches, 2*(T+L-2) grid syncs, K = H/4 (layer 0) or 2H/4 (layers above,
                           which also compute their input projection)
These are estimates with stated assumptions, not measurements: the first GPU run measures them
(tests/gpu-check.sh), and --sync-us etc. can be set from what it finds.

3. One generated character. CPU: multiply-adds per character (EH + H^2 + (L-1) 2H^2 + HV) at --cpu-gmacs
(measured on the development machine, one thread). GPU, one launch of one block (what charrnn does): a
launch, a two-byte copy back and the wait (--sample-launch-us) plus every weight read once from L2 at
one SM's bandwidth (--sm-l2-gbs). The same model decides `sample --device auto` (common/sampler.c uses
these defaults). For reference, the previous path replayed a graph of 3 + 3L nodes per character:
(3 + 3L) * --launch-us + --sample-launch-us.

Default figures, NVIDIA H100 SXM5 (80 GB HBM3), approximately, from NVIDIA's "H100 Tensor Core GPU"
datasheet (SXM column): FP32 67 TFLOP/s (16,896 FP32 cores x 2 x 1.98 GHz), TF32 tensor core 989 TFLOP/s
with 2:4 sparsity, so about 495 dense, HBM3 3.35 TB/s (the device machines used here measured a
device-to-device copy at about 3.0 TB/s), 1.755 GHz boost clock. ASSUMED, not measured: 1 us per
grid-wide sync, 2 us per kernel boundary in a graph, 0.5 us to stage a block's vectors from L2, 8 us
per sampling launch with its copy and wait, 100 GB/s of L2 reads for one SM.

--measured FILE reads tables bench/compare.py printed (rows "config label | ours peer ratio | ...";
a table whose "# bench/compare.py" line has --tf32 is set against the TF32 floor) or bench/speed.sh
printed (rows "config cuda train sample"), and adds measured tokens/s against the floor and the model.
"""
import argparse
import sys

CONFIGS = {"small": (128, 128, 1, 64, 32), "medium": (512, 512, 1, 128, 64), "deep": (256, 256, 2, 128, 64)}
MODES = ("per-timestep", "per-layer", "wavefront")


def step_cost(V, E, H, L, T, B, fold):
    """(product FLOPs, other FLOPs, DRAM bytes, parameters) of one training step."""
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
    return products, other, dram, P


def chain_us(args, K):
    """One timestep's own latency: staging plus one thread's K/4 dependent multiply-adds."""
    return args.stage_us + (K / 4) * 4 / (args.clock_ghz * 1e3)


def recurrence_us(args, mode, H, L, T):
    """The recurrence's serial chain per training step (forward and backward), in microseconds."""
    if mode == "per-timestep":
        return 2 * L * T * (args.launch_us + chain_us(args, 4 * H))
    if mode == "per-layer":
        return 2 * L * (args.launch_us + (T - 1) * args.sync_us + T * chain_us(args, H))
    steps = T + L - 1
    deepest = H if L == 1 else 2 * H  # the layers above the first also project their input
    return 2 * (args.launch_us + (steps - 1) * args.sync_us + steps * chain_us(args, deepest))


def sample_us(args, V, E, H, L):
    """(CPU, GPU one-block launch, previous graph path) per generated character, in microseconds."""
    macs = E * H + H * H + (L - 1) * 2 * H * H + H * V
    weights = 4 * (H * H + (L - 1) * 2 * H * H + H * V + H)
    one_block = args.sample_launch_us + weights / (args.sm_l2_gbs * 1e3)
    graph = (3 + 3 * L) * args.launch_us + args.sample_launch_us
    return macs / (args.cpu_gmacs * 1e3), one_block, graph


def read_measured(path):
    """{(config, tf32): [(label, ours tok/s, peer tok/s or None)]} from compare.py or speed.sh output."""
    rows, tf32 = {}, False
    for line in open(path, encoding="utf-8"):
        if line.startswith("# bench/compare.py"):
            tf32 = "--tf32" in line.split()
        parts = line.split("|")
        head = parts[0].split()
        if len(head) < 2 or head[0] not in CONFIGS:
            continue
        try:
            if len(parts) >= 2:  # compare.py: config label | ours peer ratio | ...
                ours, peer = (float(x) for x in parts[1].split()[:2])
                rows.setdefault((head[0], tf32), []).append((head[1], ours, peer))
            elif head[1] == "cuda" and len(head) >= 4:  # speed.sh: config device train sample
                rows.setdefault((head[0], tf32), []).append(("charrnn alone", float(head[2]), None))
        except ValueError:
            continue
    return rows


def parser():
    """The options and their defaults (bench/allreduce.py takes the step model's from here)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peak-tflops", type=float, default=67.0, help="FP32 (non-tensor) peak, TFLOP/s")
    ap.add_argument("--tf32", action="store_true", help="the products at the TF32 tensor-core rate")
    ap.add_argument("--tf32-tflops", type=float, default=495.0, help="TF32 tensor-core dense peak, TFLOP/s")
    ap.add_argument("--bandwidth-tbs", type=float, default=3.35, help="DRAM bandwidth, TB/s")
    ap.add_argument("--sync-us", type=float, default=1.0, help="one grid-wide sync (assumed), us")
    ap.add_argument("--launch-us", type=float, default=2.0, help="one kernel boundary inside a graph (assumed), us")
    ap.add_argument("--stage-us", type=float, default=0.5, help="staging a block's vectors from L2 (assumed), us")
    ap.add_argument("--clock-ghz", type=float, default=1.755, help="SM clock, GHz")
    ap.add_argument("--sample-launch-us", type=float, default=8.0,
                    help="one sampling launch with its copy back and wait (assumed), us")
    ap.add_argument("--sm-l2-gbs", type=float, default=100.0, help="L2 bandwidth of one SM (assumed), GB/s")
    ap.add_argument("--cpu-gmacs", type=float, default=20.0,
                    help="CPU multiply-adds per second when sampling, G (measured: development machine, 1 thread)")
    ap.add_argument("--fold", action="store_true", help="layer 0's input projection through the vocabulary")
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--configs", default="small,medium,deep")
    ap.add_argument("--measured", metavar="FILE", help="bench/compare.py or bench/speed.sh output")
    return ap


def main():
    args = parser().parse_args()
    names = args.configs.split(",")
    for name in names:
        if name not in CONFIGS:
            sys.exit(f"floor: unknown config '{name}' (configs: {', '.join(CONFIGS)})")
    measured = read_measured(args.measured) if args.measured else {}

    def step(name, tf32, mode=None):
        """(floor us, modelled us of mode) of one step."""
        E, H, L, T, B = CONFIGS[name]
        products, other, dram, _ = step_cost(args.vocab, E, H, L, T, B, args.fold)
        rate = (args.tf32_tflops if tf32 else args.peak_tflops) * 1e12
        work = max(products / rate + other / (args.peak_tflops * 1e12), dram / (args.bandwidth_tbs * 1e12)) * 1e6
        floor = work + 2 * (T + L - 1) * args.sync_us
        return floor, (work + recurrence_us(args, mode, H, L, T)) if mode else None

    print(f"# 1. floor per training step: FP32 {args.peak_tflops:g} TFLOP/s"
          f"{f', products on TF32 tensor cores {args.tf32_tflops:g} TFLOP/s' if args.tf32 else ''}, "
          f"DRAM {args.bandwidth_tbs:g} TB/s, {args.sync_us:g} us per grid sync (assumed), V={args.vocab}"
          f"{', layer 0 folded through the vocabulary' if args.fold else ''}")
    print(f"{'config':<7} {'params':>9} {'GFLOP':>7} {'MB':>7} {'syncs':>5} | {'floor us':>8} {'floor tok/s':>12}")
    for name in names:
        E, H, L, T, B = CONFIGS[name]
        products, other, dram, P = step_cost(args.vocab, E, H, L, T, B, args.fold)
        floor, _ = step(name, args.tf32)
        print(f"{name:<7} {P:>9,} {(products + other) / 1e9:>7.2f} {dram / 1e6:>7.1f} {2 * (T + L - 1):>5} | "
              f"{floor:>8.1f} {T * B / floor * 1e6:>12,.0f}")

    print(f"\n# 2. modelled step per recurrence mode: {args.launch_us:g} us per kernel in a graph, {args.sync_us:g} us "
          f"per grid sync, {args.stage_us:g} us staging, {args.clock_ghz:g} GHz (assumed; see --help)")
    print(f"{'config':<7} " + " ".join(f"{m + ' us':>16} {'tok/s':>10}" for m in MODES))
    for name in names:
        E, H, L, T, B = CONFIGS[name]
        cells = []
        for mode in MODES:
            _, us = step(name, args.tf32, mode)
            cells.append(f"{us:>16.1f} {T * B / us * 1e6:>10,.0f}")
        print(f"{name:<7} " + " ".join(cells))

    print(f"\n# 3. one generated character: CPU at {args.cpu_gmacs:g} G multiply-adds/s (one thread, measured); GPU "
          f"one-block launch {args.sample_launch_us:g} us + weights at {args.sm_l2_gbs:g} GB/s from L2 (assumed)")
    print(f"{'config':<7} {'cpu us':>8} {'gpu us':>8} {'auto':>5} {'graph path us':>14}")
    for name in names:
        E, H, L, T, B = CONFIGS[name]
        cpu, gpu, graph = sample_us(args, args.vocab, E, H, L)
        print(f"{name:<7} {cpu:>8.1f} {gpu:>8.1f} {'cuda' if gpu < cpu else 'cpu':>5} {graph:>14.1f}")

    if args.measured:
        print(f"\n# measured ({args.measured}): tokens/s against the floor and the wavefront model")
        print(f"{'config':<7} {'table':<7} {'label':<18} | {'ours tok/s':>11} {'/ floor':>7} {'/ model':>7} | "
              f"{'peer tok/s':>11} {'/ floor':>7}")
        for name in names:
            E, H, L, T, B = CONFIGS[name]
            for tf32 in (False, True):
                floor, model = step(name, tf32, "wavefront")
                for label, ours, peer in measured.get((name, tf32), []):
                    peer_cells = f"{peer:>11,.0f} {peer / (T * B / floor * 1e6):>7.3f}" if peer else f"{'-':>11} {'-':>7}"
                    print(f"{name:<7} {'tf32' if tf32 else 'float32':<7} {label:<18} | {ours:>11,.0f} "
                          f"{ours / (T * B / floor * 1e6):>7.3f} {ours / (T * B / model * 1e6):>7.3f} | {peer_cells}")


if __name__ == "__main__":
    main()
