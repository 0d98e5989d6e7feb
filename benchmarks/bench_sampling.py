"""PixelCNN++ sampling speed: the cached fast sampler against the naive one (one full pass per pixel).

For every image size and batch size it times ``sample(..., method="fast")`` from start to end
(building the plan included) and the naive sampler. The naive sampler is run in full when that
is expected to take at most ``--naive-budget`` seconds; then both images are compared. Beyond
that its time is ESTIMATED as H*W x the measured time of one full network pass on that batch
(every naive step is exactly one such pass plus a negligible draw), and the table says "est.".
On CUDA the fast sampler is timed twice, side by side: with its steps captured as CUDA graphs (what
``sample`` does by default there) and eagerly (``cuda_graphs=False``: one Python call per small op).

    .venv/bin/python benchmarks/bench_sampling.py --device cuda --nr-resnet 5 --nr-filters 160 \
        --sizes 32 --batches 16 256 --naive-budget 40 --images 1000 --chunk 256   # paper size on a GPU

``--images N --chunk B`` also times drawing N images with the fast sampler in chunks of B (the caches of
a paper-size model take about 0.1 GB per image, so 1000 at once do not fit on one GPU).

    .venv/bin/python benchmarks/bench_sampling.py                 # batches 1..256, sizes 16 and 32
    .venv/bin/python benchmarks/bench_sampling.py --quick         # batches 1 and 16, size 16

``--repeats N`` times the fast sampler(s) and the full pass N times, in turn, and takes medians (on a shared
machine one run can be 1.5x slower than the next). The fast sampler is timed twice per repeat: its first
draw (building the plan and recording the steps, "first draw") and a second draw of the same batch size,
which reuses both ("fast"; the plan is kept per model, the caches when they take at most 256 MiB).

``--before REV`` also times the fast sampler of an earlier commit (its ``helpers/pixelcnnpp/fast_sampler.py``
read with ``git show``, run on the same model and uniforms) in the same run, so before/after is a ratio
measured side by side; ``--count-ops`` counts the aten ops per pixel step (torch.profiler) of both.

    .venv/bin/python benchmarks/bench_sampling.py --threads 1 --sizes 16 --batches 1 16 --before 68e8a8d --count-ops

On a CPU in float32 the fast sampler runs each block's elementwise tail and the pixel draw as C calls
(``helpers/pixelcnnpp/fused.c``, compiled on first use); ``COURSE_C_KERNELS=0`` times it with PyTorch's
operations only.

Results go to docs/benchmarks.md by hand, with the command and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import types


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64, 256])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 32], help="square image sides")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--nr-resnet", type=int, default=2)
    parser.add_argument("--nr-filters", type=int, default=64)
    parser.add_argument("--nr-logistic-mix", type=int, default=10)
    parser.add_argument("--naive-budget", type=float, default=120.0,
                        help="run the naive sampler in full only when expected to take at most this (s)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="batches 1 and 16, size 16 only")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--images", type=int, default=0, help="also time N images drawn in chunks (fast only)")
    parser.add_argument("--chunk", type=int, default=256, help="chunk size for --images")
    parser.add_argument("--before", help="git revision whose fast sampler is timed alongside (before/after)")
    parser.add_argument("--count-ops", action="store_true", help="aten ops per pixel step (torch.profiler)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="time the fast sampler(s) and the full pass this many times, in turn; medians")
    args = parser.parse_args()
    if args.quick:
        args.batches, args.sizes = [1, 16], [16]

    import torch

    from helpers.pixelcnnpp import PixelCNNpp, sample

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = PixelCNNpp(args.channels, args.nr_resnet, args.nr_filters, args.nr_logistic_mix, dropout=0.0)
    model = model.to(args.device).eval()
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    print(f"model: in_channels={args.channels} nr_resnet={args.nr_resnet} nr_filters={args.nr_filters} "
          f"nr_logistic_mix={args.nr_logistic_mix} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    from helpers.pixelcnnpp import fused

    print("C kernels for the CPU steps (helpers/pixelcnnpp/fused.c): "
          + ("compiled, used in float32" if fused.kernels() else "not available or off: PyTorch's operations only"))

    def timed(fn):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        return out, time.perf_counter() - start

    before = load_fast_sampler(args.before) if args.before else None
    if args.count_ops:
        shape = (args.channels, min(args.sizes), min(args.sizes))
        for name, module in [("now", None), (f"before ({args.before})", before)]:
            if name == "now" or module is not None:
                print(f"aten ops per pixel step, fast sampler {name}: {ops_per_step(module, model, shape):.0f}")
    rows = []
    for size in args.sizes:
        shape = (args.channels, size, size)
        sample(model, 1, shape, method="fast")  # warm-up: library initialisation is not the sampler's time
        for batch in args.batches:
            gen = lambda: torch.Generator(device=args.device).manual_seed(0)  # noqa: E731
            x = torch.zeros(batch, *shape, device=args.device)
            with torch.no_grad():
                model(x)  # warm-up
            fast_times, first_times, before_times, pass_times = [], [], [], []
            for _ in range(args.repeats):  # in turn, so that other work on the machine slows all alike
                forget_plan(model)  # the first draw builds the plan and records the steps
                first_times.append(timed(lambda: sample(model, batch, shape, generator=gen(), method="fast"))[1])
                fast, seconds = timed(lambda: sample(model, batch, shape, generator=gen(), method="fast"))
                fast_times.append(seconds)
                if before is not None:
                    before_times.append(timed(lambda: sample_with(before, model, batch, shape, gen()))[1])
                with torch.no_grad():
                    passes = 3
                    pass_times.append(timed(lambda: [model(x) for _ in range(passes)])[1] / passes)
            fast_s, pass_s = statistics.median(fast_times), statistics.median(pass_times)
            first_s = statistics.median(first_times)
            row = {"size": size, "batch": batch, "fast_s": round(fast_s, 3), "first_s": round(first_s, 3)}
            eager_s = None
            if args.device.startswith("cuda"):
                eager, eager_s = timed(lambda: sample(model, batch, shape, generator=gen(), method="fast",
                                                      cuda_graphs=False))
                eager_same = round((eager == fast).double().mean().item(), 5)
            if before is not None:
                row["fast_before_s"] = round(statistics.median(before_times), 3)
            estimate = pass_s * size * size
            row.update(pass_s=round(pass_s, 4), fast_in_passes=round(fast_s / pass_s, 2),
                       first_in_passes=round(first_s / pass_s, 2))
            if before is not None:
                row["before_in_passes"] = round(row["fast_before_s"] / pass_s, 2)
                row["after_vs_before"] = round(row["fast_before_s"] / fast_s, 2)
            if eager_s is not None:
                row.update(fast_eager_s=round(eager_s, 3), graphs_vs_eager_equal_subpixels=eager_same)
            if estimate <= args.naive_budget:
                naive, naive_s = timed(lambda: sample(model, batch, shape, generator=gen(), method="naive"))
                row.update(naive_s=round(naive_s, 2), naive_measured=True,
                           identical=bool(torch.equal(naive, fast)),
                           equal_subpixels=round((naive == fast).double().mean().item(), 5))
            else:
                row.update(naive_s=round(estimate, 1), naive_measured=False)
            row["speedup"] = round(row["naive_s"] / fast_s, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)

    if args.images:
        size = max(args.sizes)
        chunks = [min(args.chunk, args.images - k) for k in range(0, args.images, args.chunk)]
        _, many_s = timed(lambda: [sample(model, b, (args.channels, size, size), method="fast",
                                          generator=torch.Generator(device=args.device).manual_seed(k))
                                   for k, b in enumerate(chunks)])
        print(f"{args.images} images {args.channels}x{size}x{size}, fast, chunks of {args.chunk}: {many_s:.2f} s "
              f"({args.images / many_s:.1f} images/s)")

    # Exactness where it is exact: a float64 copy of the model, TF32 off. In float32 on a GPU, TF32
    # matmuls and other kernel choices can flip a rare 8-bit draw between the two samplers (99.94% of
    # sub-pixels equal on an H100); in float64 both must draw the same images.
    from helpers.core.hardware import exact_float64

    model64 = PixelCNNpp(args.channels, args.nr_resnet, args.nr_filters, args.nr_logistic_mix, dropout=0.0)
    model64.load_state_dict(model.state_dict())
    model64 = model64.to(args.device, torch.float64).eval()
    with exact_float64():
        shape64 = (args.channels, min(args.sizes), min(args.sizes))
        a = sample(model64, 2, shape64, generator=torch.Generator(device=args.device).manual_seed(1), method="fast")
        b = sample(model64, 2, shape64, generator=torch.Generator(device=args.device).manual_seed(1), method="naive")
    print(f"float64, TF32 off, 2 images {shape64}: fast == naive: {bool(torch.equal(a, b))}")

    print_table(rows, args.channels, args.device.startswith("cuda"), before is not None)
    print("\nReference (Ramachandran et al. 2017, Fast PixelCNN++ on a GPU, paper size 3x32x32): "
          "18x at batch 16, 183x at batch 256.")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


def print_table(rows: list[dict], channels: int, graphs: bool, before: bool) -> None:
    """The rows as a markdown table (times in s; "passes": the fast run in units of one full network pass;
    "fast": a draw with the plan built and the steps recorded by an earlier draw of that batch size;
    "first draw": one that builds and records them)."""
    print("\n| image | batch | fast (s)" + (" CUDA graphs | fast eager (s)" if graphs else "")
          + " | fast in passes | first draw (s) | first in passes |"
          + (" before (s) | before in passes | after vs before |" if before else "")
          + " naive (s) | speed-up | fast == naive (float32) |")
    print("|---|---|---|" + ("---|" if graphs else "") + "---|---|---|" + ("---|---|---|" if before else "") + "---|---|---|")
    for r in rows:
        naive = f"{r['naive_s']}" if r["naive_measured"] else f"{r['naive_s']} (est.)"
        same = ("identical" if r["identical"] else f"{100 * r['equal_subpixels']:.1f}% equal") \
            if r["naive_measured"] else "not run"
        eager = f" {r['fast_eager_s']} |" if graphs else ""
        old = f" {r['fast_before_s']} | {r['before_in_passes']} | {r['after_vs_before']}x |" if before else ""
        print(f"| {channels}x{r['size']}x{r['size']} | {r['batch']} | {r['fast_s']} |{eager} {r['fast_in_passes']} |"
              f" {r['first_s']} | {r['first_in_passes']} |{old} {naive} | {r['speedup']}x | {same} |")


def load_fast_sampler(rev: str) -> types.ModuleType:
    """The fast sampler module of git revision ``rev``, with that revision's ``fast_plan.py`` where it has
    one (other imports resolve to today's model and likelihood)."""
    def show(path: str) -> str | None:
        done = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else None

    def load(name: str, source: str) -> types.ModuleType:
        module = types.ModuleType(name)
        sys.modules[name] = module
        exec(compile(source, f"{rev}:{name}.py", "exec"), module.__dict__)
        return module

    source = show("helpers/pixelcnnpp/fast_sampler.py")
    if source is None:
        raise SystemExit(f"{rev} has no helpers/pixelcnnpp/fast_sampler.py")
    plan = show("helpers/pixelcnnpp/fast_plan.py")
    if plan is not None:
        plan_name = f"fast_plan_{rev}".replace("-", "_").replace("~", "_").replace("^", "_")
        load(plan_name, plan)
        source = source.replace("from helpers.pixelcnnpp.fast_plan import", f"from {plan_name} import")
    return load(f"fast_sampler_{rev}", source)


def sample_with(module: types.ModuleType | None, model, n: int, shape, generator):
    """``sample(method="fast")`` with the FastSampler of ``module`` (None: today's), same uniforms."""
    import torch

    from helpers.pixelcnnpp import sample
    from helpers.pixelcnnpp.sampling import _draw_uniforms

    if module is None:
        return sample(model, n, shape, generator=generator, method="fast")
    param = next(model.parameters())
    u_mix, u_log = _draw_uniforms(n, shape, model.nr_logistic_mix, generator, param.device, param.dtype)
    with torch.no_grad():  # a revision that keeps its plan per model: like today's, reused from the first draw
        make = getattr(module.FastSampler, "for_model", module.FastSampler)
        return make(model, shape).run(n, u_mix, u_log, 1.0)


def forget_plan(model) -> None:
    """Drop the fast sampler's plan of ``model`` (and its kept caches), so the next draw builds them."""
    from helpers.pixelcnnpp import fast_sampler

    fast_sampler._PLANS.pop(model, None)


def ops_per_step(module: types.ModuleType | None, model, shape) -> float:
    """aten ops recorded by torch.profiler for one fast run of batch 1 (after a first run that built the
    plan and, for revisions that keep them, recorded the steps), divided by H*W."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    sample_with(module, model, 1, shape, torch.Generator().manual_seed(0))
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        sample_with(module, model, 1, shape, torch.Generator().manual_seed(0))
    ops = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
    return ops / (shape[1] * shape[2])


if __name__ == "__main__":
    main()
