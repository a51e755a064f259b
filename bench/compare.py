#!/usr/bin/env python3
"""charrnn against its peers, side by side on the same machine, data, configurations and device,
alternating runs so that all see the same machine state: PyTorch (bench/peer_torch.py) and, on the
CPU, a plain batched numpy RNN (bench/peer_numpy.py). Prints one table of figures and ratios (ours /
peer; above 1 is faster).

    bench/compare.py [--cell rnn|gru|lstm] [--threads 1,2] [--steps 30] [--rounds 3] [--configs small,...]
    bench/compare.py --device cuda [--cell C] [--tf32] [--cuda-variants | --variants NAME,...] [--steps 30]
    bench/compare.py --quality [--cell C] [--dropout P] [--quality-steps 2000] [--device cpu|cuda] [--tf32]

--cell: the recurrent cell on both sides (charrnn's --cell; the peer's nn.RNN, nn.GRU or nn.LSTM). The numpy
peer has the tanh cell only, so with gru and lstm PyTorch is the only peer. --dropout (with --quality):
the same dropout on both sides (charrnn's --dropout; the peer drops between layers and before the linear
layer, as charrnn drops every layer's output).

Training: median tokens/s of the timed steps (after 3 warm-up steps); the table shows the median over
rounds. Sampling: chars/s, generating one character at a time with the hidden state carried (ours: the
difference of generating 20000 and 4000 characters, so that start-up cancels out). --quality trains the
deep configuration for the same number of steps (Adam 2e-3, constant rate, clip 5, the same batch
shape) in both and compares validation loss.

--device cpu (the default): one row per configuration and thread count (each round runs charrnn and
the peers at every thread count in turn, and a line per configuration says whether charrnn trained
faster with more threads); PyTorch runs with torch
threads x OpenBLAS threads equal to the thread count (both splits tried above one thread, the faster
kept), numpy with that many OpenBLAS threads. The ratio is against the faster peer. Beside it, charrnn's
GFLOP/s (the multiply-adds it performs per token, times 2, times tokens/s; layer 0's input side counted
through the vocabulary as charrnn computes it) and their fraction of the machine's matrix product peak,
measured by build/sgemm-peak (an n^3 product, the best of OpenBLAS and the built-in loops, for each
thread count) before the first configuration and after each, the best measure kept. When charrnn fixes OpenBLAS's choice of kernels (cpu/blas_check.c), the peers get the
same OPENBLAS_CORETYPE. Memory: peak resident set size of the training process.

--device cuda: ours runs `charrnn --device cuda`, the peer `peer_torch.py --device cuda` (cuDNN RNN, the
model and the text on the GPU). Both run in full float32: the peer turns TF32 off for cuBLAS and for
cuDNN (PyTorch's default allows it for cuDNN); --tf32 turns it on for both (ours gets --tf32). The
thread list does not apply. Variants run ours under CUDA backend settings, one row per configuration
and variant, each against the same peer figures of that configuration:
    default            the environment as it is (the backend's defaults: graphs, auto recurrence)
    eager-step         CHARRNN_CUDA_GRAPHS=0 CHARRNN_CUDA_RECURRENCE=step
    graphs-step        CHARRNN_CUDA_GRAPHS=1 CHARRNN_CUDA_RECURRENCE=step
    graphs-auto        CHARRNN_CUDA_GRAPHS=1 CHARRNN_CUDA_RECURRENCE=auto
    (likewise eager-auto, eager-persistent, graphs-persistent)
--cuda-variants is --variants eager-step,graphs-step,graphs-auto. Memory on cuda: the GPU's memory in
use (nvidia-smi, polled every 20 ms) at its peak during the training process above what was in use
before it started, CUDA context included, for both; and the peer's torch.cuda.max_memory_allocated
(its tensors alone).

The peers run on the first Python that imports torch among --python, this interpreter, python3 on the
PATH and /usr/bin/python3 (Debian's python3-torch and python3-numpy live there; scripts/deps.sh --bench
installs them).
"""
import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONFIGS = {"small": (128, 128, 1, 64, 32), "medium": (512, 512, 1, 128, 64), "deep": (256, 256, 2, 128, 64),
           "default": (64, 256, 2, 128, 64)}
VOCAB = 65  # tiny shakespeare's characters, for the count of multiply-adds
GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # blocks of H columns in a layer's products
VARIANTS = {"default": {}}
for graphs_name, graphs in (("eager", "0"), ("graphs", "1")):
    for recurrence in ("step", "auto", "persistent"):
        VARIANTS[f"{graphs_name}-{recurrence}"] = {"CHARRNN_CUDA_GRAPHS": graphs, "CHARRNN_CUDA_RECURRENCE": recurrence}
CUDA_VARIANTS = "eager-step,graphs-step,graphs-auto"


def find_python(asked):
    candidates = [asked] if asked else [sys.executable, shutil.which("python3"), "/usr/bin/python3"]
    for python in filter(None, candidates):
        if subprocess.run([python, "-c", "import torch"], capture_output=True).returncode == 0:
            return python
    sys.exit(f"compare: no Python that imports torch among {', '.join(filter(None, candidates))} "
             "(scripts/deps.sh --bench installs it; --python names another)")


class Failed(Exception):
    """A run that failed, with its command, status and stderr."""


def run(cmd, env, work, **kw):
    """Runs cmd; raises Failed when it fails."""
    with open(os.path.join(work, "stderr"), "w+") as err:
        done = subprocess.run(cmd, env=env, stderr=err, text=True, **kw)
        if done.returncode:
            err.seek(0)
            raise Failed(f"compare: {' '.join(cmd)} failed (status {done.returncode}):\n{err.read()}")
    return done


def peak_rss_run(cmd, env, work):
    """Peak resident set size (MiB) of cmd, whose output is discarded; raises Failed when it fails."""
    err_path = os.path.join(work, "stderr")
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(devnull, 1)
        os.dup2(err, 2)
        os.execve(cmd[0], cmd, env)
    _, status, usage = os.wait4(pid, 0)
    if status:
        status = os.waitstatus_to_exitcode(status)
        raise Failed(f"compare: {' '.join(cmd)} failed (status {status}):\n{open(err_path).read()}")
    return usage.ru_maxrss / 1024


class GpuMemory:
    """Peak GPU memory in use (MiB, nvidia-smi polled every 20 ms) while the block runs, above the first
    reading (taken before it starts); NaN when nvidia-smi gives fewer than two readings."""

    def __enter__(self):
        self.values = []
        try:
            self.proc = subprocess.Popen(["nvidia-smi", "-i", "0", "--query-gpu=memory.used",
                                          "--format=csv,noheader,nounits", "-lms", "20"],
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            self.proc = None
            return self
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        deadline = time.monotonic() + 3
        while not self.values and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.01)
        return self

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.values.append(float(line))
            except ValueError:
                pass

    def __exit__(self, *exc):
        if self.proc:
            time.sleep(0.05)
            self.proc.terminate()
            self.proc.wait()
            self.reader.join(2)

    def peak(self):
        return max(self.values) - self.values[0] if len(self.values) >= 2 else float("nan")


def cell_flags(args, dropout=False):
    """charrnn's flags for the cell (and the dropout, when asked): none for the defaults, so that the
    tanh cell's runs are the commands they always were."""
    flags = ["--cell", args.cell] if args.cell != "rnn" else []
    return flags + (["--dropout", str(args.dropout)] if dropout and args.dropout else [])


def peer_cell_flags(args, dropout=False):
    return ["--cell", args.cell] + (["--dropout", str(args.dropout)] if dropout and args.dropout else [])


def ours(args, name, threads, env, work):
    """(training tokens/s, sampling chars/s, MiB) of charrnn on one configuration."""
    E, H, L, T, B = CONFIGS[name]
    log, ckpt = os.path.join(work, "log.csv"), os.path.join(work, f"{name}.ckpt")
    if os.path.exists(log):
        os.remove(log)
    device = ["--device", args.device] + (["--threads", str(threads)] if args.device == "cpu" else []) + \
        (["--tf32"] if args.tf32 else [])
    cmd = [args.bin, "train"] + device + cell_flags(args) + [
        "--data", args.data, "--embed", str(E), "--hidden", str(H), "--layers", str(L), "--seq-len", str(T),
        "--batch", str(B), "--steps", str(args.steps + 3), "--lr", "0.002", "--lr-schedule", "constant",
        "--eval-every", "0", "--save-every", "0", "--out", ckpt, "--overwrite", "--log", log]
    if args.device == "cuda":
        with GpuMemory() as gpu:
            peak_rss_run(cmd, env, work)
        memory = gpu.peak()
    else:
        memory = peak_rss_run(cmd, env, work)
    rates = [float(line.split(",")[2]) for line in open(log).read().splitlines()[4:]]

    def seconds(length):
        t0 = time.perf_counter()
        run([args.bin, "sample"] + device + ["--checkpoint", ckpt, "--length", str(length)], env, work,
            stdout=subprocess.DEVNULL)
        return time.perf_counter() - t0

    sample = 16000 / (seconds(20000) - seconds(4000))
    return statistics.median(rates), sample, memory


def peer(args, name, threads, work):
    """(training tokens/s, sampling chars/s, MiB, GPU tensor MiB, header line) of the PyTorch peer. On the
    CPU with `threads` threads in all: torch threads x OpenBLAS threads = threads; with more than one, both
    ways of splitting them are run and the faster training kept (fairest to it)."""
    if args.device == "cuda":
        splits = [(os.cpu_count(), 1)]
    else:
        splits = [(threads, 1)] if threads == 1 else [(threads, 1), (1, threads)]
    best = None
    for torch_threads, blas_threads in splits:
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas_threads), OMP_NUM_THREADS=str(torch_threads),
                   **args.peer_env)
        cmd = [args.python, os.path.join(HERE, "peer_torch.py"), "--configs", name, "--threads", str(torch_threads),
               "--steps", str(args.steps), "--data", args.data, "--device", args.device] + \
            (["--tf32"] if args.tf32 else []) + peer_cell_flags(args)
        with GpuMemory() if args.device == "cuda" else contextlib.nullcontext() as gpu:
            lines = run(cmd, env, work, stdout=subprocess.PIPE).stdout.strip().splitlines()
        fields = lines[-1].split()
        figures = [float(fields[2]), float(fields[3]), float(fields[4]), float(fields[5]), lines[0]]
        if args.device == "cuda":
            figures[2] = gpu.peak()
        if best is None or figures[0] > best[0]:
            best = figures
    return best


def numpy_peer(args, name, threads, work):
    """(training tokens/s, sampling chars/s, MiB, header line) of the numpy peer with `threads` OpenBLAS
    threads."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS="1", **args.peer_env)
    cmd = [args.python, os.path.join(HERE, "peer_numpy.py"), "--configs", name, "--steps", str(args.steps),
           "--data", args.data]
    lines = run(cmd, env, work, stdout=subprocess.PIPE).stdout.strip().splitlines()
    fields = lines[-1].split()
    return float(fields[2]), float(fields[3]), float(fields[4]), lines[0]


def flops_per_token(name, cell="rnn"):
    """Floating-point operations charrnn performs per training token (2 per multiply-add), as its CPU
    backend schedules them: per layer the input projection, the recurrence forward (h W_hh) and backward
    (da W_hh^T), dW_hh and, above layer 0, dW_xh and the gradient for the layer below; the logits, dW_hy
    and the gradient into the top layer. Layer 0's input side goes through the vocabulary (a [V, E] x
    [E, H] product and its two gradients once per batch) when the batch has more rows than the vocabulary
    has characters. A gated cell does all of a layer's products G times as wide (G = 3 for gru, 4 for
    lstm: one block of H columns per gate)."""
    E, H, L, T, B = CONFIGS[name]
    V, G = VOCAB, GATES[cell]
    recurrence = 3 * G * H * H  # forward, backward carry, dW_hh
    per_token = L * recurrence + 3 * H * V + (L - 1) * 3 * G * H * H
    per_token += 3 * V * E * G * H / (T * B) if V <= T * B else 3 * E * G * H
    return 2 * per_token


def sgemm_peak(args, thread_counts, work):
    """{threads: GFLOP/s} of the machine's best n^3 product, from build/sgemm-peak, which also checks
    OpenBLAS's kernels as charrnn does; sets args.peer_env to the fix charrnn applies, if any, and returns
    a line describing the kernels. (cpu_table measures it again after every configuration and keeps the
    best: a moment of other work on the machine lowers a measure, nothing raises it.)"""
    tool = os.path.join(os.path.dirname(args.bin), "sgemm-peak")
    if not os.access(tool, os.X_OK):
        raise Failed(f"compare: {tool} is missing (it is built with charrnn)")
    done = run([tool, "--threads", ",".join(map(str, thread_counts))], os.environ, work, stdout=subprocess.PIPE)
    note = open(os.path.join(work, "stderr")).read()
    fix = note.split("OPENBLAS_CORETYPE=")[1].split()[0] if "OPENBLAS_CORETYPE=" in note else None
    args.peer_env = {"OPENBLAS_CORETYPE": fix} if fix else {}
    peaks, kernels = {}, []
    for line in done.stdout.splitlines():
        f = line.split()
        if f[0] in ("openblas", "loops"):
            kernels.append(f"{f[0]} {' '.join(f[1:])}")
        else:
            peaks[int(f[0])] = max(v for v in (float(f[2]), float(f[4])) if v == v)
            kernels.append(f"{f[0]} thread(s): OpenBLAS {f[2]}, loops {f[4]} GFLOP/s")
    about = "; ".join(kernels) + (f" (OpenBLAS's own choice fixed: OPENBLAS_CORETYPE={fix}, for the peers too)"
                                  if fix else "")
    return peaks, about


def quality(args, work):
    E, H, L, T, B = CONFIGS["deep"]
    ckpt = os.path.join(work, "quality.ckpt")
    device = ["--device", args.device] + (["--tf32"] if args.tf32 else [])
    run([args.bin, "train"] + device + cell_flags(args, dropout=True) + [
        "--data", args.data, "--embed", str(E), "--hidden", str(H), "--layers", str(L), "--seq-len", str(T),
        "--batch", str(B), "--steps", str(args.quality_steps), "--lr", "0.002", "--lr-schedule", "constant",
        "--eval-every", "0", "--save-every", "0", "--out", ckpt, "--overwrite"],
        os.environ, work, stdout=subprocess.DEVNULL)
    out = run([args.bin, "eval"] + device + ["--checkpoint", ckpt], os.environ, work, stdout=subprocess.PIPE)
    ours_loss = float(out.stdout.split()[0])
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    out = run([args.python, os.path.join(HERE, "peer_torch.py"), "--quality", "--steps", str(args.quality_steps),
               "--data", args.data, "--threads", str(os.cpu_count()), "--device", args.device] +
              (["--tf32"] if args.tf32 else []) + peer_cell_flags(args, dropout=True), env, work,
              stdout=subprocess.PIPE)
    lines = out.stdout.strip().splitlines()
    peer_loss = float(lines[-1].split()[-1])
    print(lines[0])
    about = args.cell + (f", dropout {args.dropout}" if args.dropout else "")
    print(f"deep config ({about}) on {args.device}{' (TF32)' if args.tf32 else ''}, {args.quality_steps} steps, validation "
          f"loss (nats/char): charrnn {ours_loss:.4f}, PyTorch {peer_loss:.4f}, difference "
          f"{ours_loss - peer_loss:+.4f}", flush=True)


def machine(device):
    if device == "cuda":
        try:
            return "GPU: " + subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                                             "--format=csv,noheader"], capture_output=True, text=True,
                                            check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as e:
            return f"GPU: nvidia-smi failed ({e})"
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 "unknown")
    return f"CPU: {model}, {os.cpu_count()} cores"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "charrnn"))
    ap.add_argument("--data", default=os.path.join(ROOT, "data", "tinyshakespeare", "input.txt"))
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--tf32", action="store_true", help="cuda: TF32 tensor cores on both sides")
    ap.add_argument("--threads", default="1,2", help="cpu: thread counts, one row each")
    ap.add_argument("--variants", default="default", help=f"cuda: ours under these settings ({', '.join(VARIANTS)})")
    ap.add_argument("--cuda-variants", action="store_const", dest="variants", const=CUDA_VARIANTS,
                    help=f"cuda: --variants {CUDA_VARIANTS}")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--peers", default="torch,numpy", help="cpu: the peers to run (torch, numpy)")
    ap.add_argument("--quality", action="store_true")
    ap.add_argument("--quality-steps", type=int, default=2000)
    ap.add_argument("--cell", choices=list(GATES), default="rnn", help="the recurrent cell on both sides")
    ap.add_argument("--dropout", type=float, default=0.0, help="--quality: dropout on both sides (default 0)")
    ap.add_argument("--python", help="the Python that runs the peer")
    args = ap.parse_args()
    variants = args.variants.split(",")
    for variant in variants:
        if variant not in VARIANTS:
            ap.error(f"--variants: unknown variant '{variant}' (variants: {', '.join(VARIANTS)})")
    for name in args.configs.split(","):
        if name not in CONFIGS:
            ap.error(f"--configs: unknown config '{name}' (configs: {', '.join(CONFIGS)})")
    if args.device == "cpu" and (args.tf32 or variants != ["default"]):
        ap.error("--tf32 and --variants apply to --device cuda only")
    args.peers = args.peers.split(",") if args.device == "cpu" else ["torch"]
    for name in args.peers:
        if name not in ("torch", "numpy"):
            ap.error(f"--peers: unknown peer '{name}' (peers: torch, numpy)")
    if not 0 <= args.dropout < 1:
        ap.error(f"--dropout {args.dropout}: must be at least 0 and below 1")
    if args.dropout and not args.quality:
        ap.error("--dropout applies to --quality only (the speed tables train without it)")
    if args.cell != "rnn" and "numpy" in args.peers and not args.quality:
        args.peers.remove("numpy")
        print(f"# the numpy peer has the tanh cell only: PyTorch alone is the peer for --cell {args.cell}",
              flush=True)
    args.peer_env = {}
    args.bin = os.path.abspath(args.bin)
    if not os.access(args.bin, os.X_OK):
        sys.exit(f"compare: {args.bin} is not an executable (build first, or pass --bin)")
    args.python = find_python(args.python)
    print(f"# {' '.join(['bench/compare.py'] + sys.argv[1:])}")
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, {machine(args.device)}; charrnn: {args.bin}; peer: {args.python}",
          flush=True)
    with tempfile.TemporaryDirectory() as work:
        try:
            if args.quality:
                quality(args, work)
            elif args.device == "cpu":
                cpu_table(args, work)
            else:
                table(args, variants, work)
        except Failed as e:
            sys.exit(str(e))


class Attempts:
    """Runs measurements; one that fails is reported on stderr and gives None, and the benchmark goes on
    (and fails at the end)."""

    def __init__(self):
        self.failures = []

    def __call__(self, measure, *a):
        try:
            return measure(*a)
        except Failed as e:
            print(e, file=sys.stderr, flush=True)
            self.failures.append(e)
            return None

    def finish(self):
        if self.failures:
            sys.exit(f"compare: {len(self.failures)} run(s) failed (above)")


def med(rows, k):
    """The median of field k over the rounds that produced it (nan where none did)."""
    values = [r[k] for r in rows if r is not None and r[k] == r[k]]
    return statistics.median(values) if values else float("nan")


def cpu_table(args, work):
    """The CPU table: per config, every round runs charrnn and the peers at every thread count, one after
    the other (so that the thread counts see the same machine state too); then one row per thread
    count, and a line saying whether charrnn's training was faster with more threads."""
    attempt = Attempts()
    thread_counts = [int(t) for t in args.threads.split(",")]
    peaks, kernels = sgemm_peak(args, thread_counts, work)
    print(f"# matrix product peak (build/sgemm-peak): {kernels}", flush=True)

    def update_peaks():
        again, line = sgemm_peak(args, thread_counts, work)
        if any(again[k] > peaks[k] for k in thread_counts):
            print(f"# matrix product peak measured again, higher: {line}", flush=True)
        for k in thread_counts:
            peaks[k] = max(peaks[k], again[k])

    print(f"{'config':<7} {'thr':>3} | {'train tok/s: ours':>17} {'torch':>8} {'numpy':>8} {'ratio':>6} "
          f"{'GFLOP/s (of peak)':>17} | {'sample char/s: ours':>19} {'torch':>7} {'numpy':>7} {'ratio':>6} | "
          f"{'MiB: ours':>9} {'torch':>5} {'numpy':>5}", flush=True)
    about, gflops_of = set(), {}
    for name in args.configs.split(","):
        o, t, n = ({k: [] for k in thread_counts} for _ in range(3))
        for _ in range(args.rounds):
            for threads in thread_counts:
                o[threads].append(attempt(ours, args, name, threads, dict(os.environ), work))
                t[threads].append(attempt(peer, args, name, threads, work) if "torch" in args.peers else None)
                n[threads].append(attempt(numpy_peer, args, name, threads, work) if "numpy" in args.peers else None)
        update_peaks()
        for threads in thread_counts:
            ot, tt, nt = o[threads], t[threads], n[threads]
            for line in {r[-1] for r in tt + nt if r is not None} - about:
                print(line, flush=True)
                about.add(line)
            train = med(ot, 0)
            best_peer = max((v for v in (med(tt, 0), med(nt, 0)) if v == v), default=float("nan"))
            gflops = gflops_of[name, threads] = train * flops_per_token(name, args.cell) / 1e9
            print(f"{name:<7} {threads:>3} | {train:>17.0f} {med(tt, 0):>8.0f} {med(nt, 0):>8.0f} "
                  f"{train / best_peer:>6.2f} {gflops:>8.1f} ({gflops / peaks[threads]:>4.0%}) | "
                  f"{med(ot, 1):>19.0f} {med(tt, 1):>7.0f} {med(nt, 1):>7.0f} {med(ot, 1) / med(tt, 1):>6.1f} | "
                  f"{med(ot, 2):>9.0f} {med(tt, 2):>5.0f} {med(nt, 2):>5.0f}", flush=True)
        rates = [med(o[k], 0) for k in thread_counts]
        if len(rates) > 1:
            faster = all(b >= a for a, b in zip(rates, rates[1:]))
            print(f"# {name}: training {' -> '.join(f'{r:.0f}' for r in rates)} tok/s on "
                  f"{', '.join(map(str, thread_counts))} threads: "
                  f"{'never slower with more threads' if faster else 'SLOWER with more threads'}", flush=True)
    print(f"# charrnn's GFLOP/s against the best peak measured in the whole run "
          f"({', '.join(f'{k} thread(s): {peaks[k]:.1f}' for k in thread_counts)}): " +
          ", ".join(f"{name} {k}: {g:.1f} ({g / peaks[k]:.0%})" for (name, k), g in gflops_of.items()), flush=True)
    attempt.finish()


def table(args, variants, work):
    """The CUDA table: one row per (config, variant) as soon as its rounds are done."""
    attempt = Attempts()
    width = max(map(len, variants))
    print(f"{'config':<7} {'variant':>{width}} | {'train tok/s: ours':>17} {'peer':>8} {'ratio':>6} | "
          f"{'sample char/s: ours':>19} {'peer':>7} {'ratio':>6} | {'GPU MiB: ours':>13} {'peer':>5} (tensors)",
          flush=True)
    peer_about = None
    for name in args.configs.split(","):
        o, p = {v: [] for v in variants}, []
        for _ in range(args.rounds):
            for variant in variants:
                o[variant].append(attempt(ours, args, name, None, dict(os.environ, **VARIANTS[variant]), work))
            p.append(attempt(peer, args, name, None, work))
        if peer_about is None:
            peer_about = next((r[4] for r in p if r is not None), None)
            if peer_about:
                print(peer_about, flush=True)
        for variant in variants:
            train, sample = med(o[variant], 0), med(o[variant], 1)
            print(f"{name:<7} {variant:>{width}} | {train:>17.0f} {med(p, 0):>8.0f} {train / med(p, 0):>6.2f} | "
                  f"{sample:>19.0f} {med(p, 1):>7.0f} {sample / med(p, 1):>6.1f} | "
                  f"{med(o[variant], 2):>13.0f} {med(p, 2):>5.0f} ({med(p, 3):.0f})", flush=True)
    attempt.finish()


if __name__ == "__main__":
    main()
