#!/usr/bin/env python3
"""charrnn against the PyTorch peer (bench/peer_torch.py), side by side on the same machine, data,
configurations and thread count, alternating runs so that both see the same machine state. Prints
one table of figures and ratios (ours / peer; above 1 is faster).

    bench/compare.py [--threads 1,2] [--steps 30] [--rounds 3] [--configs small,medium,deep]
    bench/compare.py --quality [--quality-steps 2000]

Training: median tokens/s of the timed steps; the table shows the median over rounds. The peer runs
with torch threads x OpenBLAS threads equal to the thread count (both splits tried above one thread). Sampling:
chars/s, generating one character at a time with the hidden state carried. Memory: peak resident set
size of the training process. --quality trains the deep configuration for the same number of steps
(Adam 2e-3, constant rate, clip 5, the same batches shape) in both and compares validation loss.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONFIGS = {"small": (128, 128, 1, 64, 32), "medium": (512, 512, 1, 128, 64), "deep": (256, 256, 2, 128, 64)}
PYTHON = "/usr/bin/python3"  # Debian's python3-torch lives there


def peak_rss_run(cmd, env=None):
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.execve(cmd[0], cmd, env or os.environ)
    _, status, usage = os.wait4(pid, 0)
    if status:
        sys.exit(f"compare: {' '.join(cmd)} failed (status {status})")
    return usage.ru_maxrss / 1024


def ours(binary, name, threads, steps, data, work):
    E, H, L, T, B = CONFIGS[name]
    log, ckpt = os.path.join(work, "log.csv"), os.path.join(work, f"{name}.ckpt")
    if os.path.exists(log):
        os.remove(log)
    cmd = [binary, "--device", "cpu", "train", "--threads", str(threads), "--data", data, "--embed", str(E),
           "--hidden", str(H), "--layers", str(L), "--seq-len", str(T), "--batch", str(B), "--steps", str(steps + 3),
           "--lr-schedule", "constant", "--eval-every", "0", "--save-every", "0", "--out", ckpt, "--log", log]
    peak = peak_rss_run(cmd)
    rates = [float(line.split(",")[2]) for line in open(log).read().splitlines()[4:]]

    def seconds(length):
        t0 = time.perf_counter()
        subprocess.run([binary, "--device", "cpu", "sample", "--threads", str(threads), "--checkpoint", ckpt,
                        "--length", str(length)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t0

    sample = 16000 / (seconds(20000) - seconds(4000))
    return statistics.median(rates), sample, peak


def peer(name, threads, steps, data):
    """The peer's figures with `threads` threads in all: torch threads x OpenBLAS threads = threads. With
    more than one, both ways of splitting them are run and the faster training kept (fairest to it)."""
    splits = [(threads, 1)] if threads == 1 else [(threads, 1), (1, threads)]
    best = None
    for torch_threads, blas_threads in splits:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(torch_threads))
        cmd = [PYTHON, os.path.join(HERE, "peer_torch.py"), "--configs", name, "--threads", str(torch_threads),
               "--steps", str(steps), "--data", data]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        fields = out.strip().splitlines()[-1].split()
        figures = (float(fields[2]), float(fields[3]), float(fields[4]))
        if best is None or figures[0] > best[0]:
            best = figures
    return best


def quality(binary, steps, data, work):
    E, H, L, T, B = CONFIGS["deep"]
    ckpt = os.path.join(work, "quality.ckpt")
    subprocess.run([binary, "--device", "cpu", "train", "--data", data, "--embed", str(E), "--hidden", str(H),
                    "--layers", str(L), "--seq-len", str(T), "--batch", str(B), "--steps", str(steps),
                    "--lr-schedule", "constant", "--eval-every", "0", "--save-every", "0", "--out", ckpt],
                   check=True, stderr=subprocess.DEVNULL)
    ours_loss = float(subprocess.run([binary, "--device", "cpu", "eval", "--checkpoint", ckpt], capture_output=True,
                                     text=True, check=True).stdout.split()[0])
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    out = subprocess.run([PYTHON, os.path.join(HERE, "peer_torch.py"), "--quality", "--steps", str(steps), "--data",
                          data, "--threads", str(os.cpu_count())], env=env, capture_output=True, text=True,
                         check=True).stdout
    peer_loss = float(out.strip().splitlines()[-1].split()[-1])
    print(f"deep config, {steps} steps, validation loss (nats/char): charrnn {ours_loss:.4f}, PyTorch {peer_loss:.4f}, "
          f"difference {ours_loss - peer_loss:+.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "charrnn"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "tinyshakespeare", "input.txt"))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--configs", default="small,medium,deep")
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--quality-steps", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        if args.quality:
            quality(args.bin, args.quality_steps, args.data, work)
            return
        print(f"{'config':<7} {'thr':>3} | {'train tok/s: ours':>17} {'peer':>8} {'ratio':>6} | "
              f"{'sample char/s: ours':>19} {'peer':>7} {'ratio':>6} | {'MiB: ours':>9} {'peer':>5}")
        for threads in [int(t) for t in args.threads.split(",")]:
            for name in args.configs.split(","):
                o, p = [], []
                for _ in range(args.rounds):
                    o.append(ours(args.bin, name, threads, args.steps, args.data, work))
                    p.append(peer(name, threads, args.steps, args.data))
                med = lambda rows, k: statistics.median(r[k] for r in rows)
                print(f"{name:<7} {threads:>3} | {med(o, 0):>17.0f} {med(p, 0):>8.0f} {med(o, 0) / med(p, 0):>6.2f} | "
                      f"{med(o, 1):>19.0f} {med(p, 1):>7.0f} {med(o, 1) / med(p, 1):>6.1f} | "
                      f"{med(o, 2):>9.0f} {med(p, 2):>5.0f}", flush=True)


if __name__ == "__main__":
    main()
