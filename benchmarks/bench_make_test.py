"""`make test`'s parts, timed, with the CPU they ran on (issue 27: the bfloat16 net on CPUs without native bf16).

Runs the parts as `make` runs them (unit tests, every notebook, the bfloat16 pass) one after the other,
times each (wall clock) and prints a markdown table with the CPU model and the lscpu flags that decide
how fast bfloat16 is on a CPU: avx512_bf16 and amx_bf16 (native bf16), avx512f, avx2. Without
avx512_bf16/AMX, PyTorch converts bf16 to float32 around every matrix product and convolution, so the
bf16 pass is several times slower than float32 (docs/benchmarks.md).

    .venv/bin/python benchmarks/bench_make_test.py                  # all three parts (~10+ minutes)
    .venv/bin/python benchmarks/bench_make_test.py --only bf16      # just the bfloat16 pass
    .venv/bin/python benchmarks/bench_make_test.py --only unit notebooks --json times.json
    .venv/bin/python benchmarks/bench_make_test.py --cpu-only       # only the CPU report, runs nothing
    .venv/bin/python benchmarks/bench_make_test.py --only bf16 --emulate-avx2            # as on an AVX2-only CPU
    .venv/bin/python benchmarks/bench_make_test.py --only bf16 --emulate-avx2 --no-shim  # ... without the shim

--emulate-avx2 sets ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2: PyTorch and oneDNN then take
the code paths of a CPU without AVX-512 (no oneDNN bf16 convolutions: aten::_slow_conv2d_forward), which
is what makes the bf16 pass slow on an AVX2-only AMD EPYC. It emulates the code paths, not that CPU's
clock or caches: say "emulated" next to such a figure. --no-shim turns off tests/bf16_net/sitecustomize.py.

Run it on an otherwise idle machine: on a shared one the times say more about the neighbours.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = {"unit": "test-unit", "notebooks": "test-notebooks", "bf16": "test-notebooks-half"}
FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")


def cpu_report() -> dict:
    """CPU model, core count and the bf16-relevant lscpu flags (False where lscpu is missing)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            model = value.strip()
        elif key.strip() == "Flags":
            flags = set(value.split())
    report = {"cpu": model, "cores": os.cpu_count()}
    report.update({flag: flag in flags for flag in FLAGS})
    report["native_bf16"] = report["avx512_bf16"] or report["amx_bf16"]
    return report


def torch_report(env: dict) -> dict:
    """What PyTorch sees with ``env``: its CPU capability and whether oneDNN has bf16 convolutions."""
    python = ROOT / ".venv" / "bin" / "python"
    code = ("import torch, json; print(json.dumps({'torch_cpu_capability': torch.backends.cpu.get_cpu_capability(), "
            "'onednn_bf16': bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())}))")
    try:
        out = subprocess.run([str(python if python.exists() else sys.executable), "-c", code], env=env,
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])
    except (OSError, subprocess.CalledProcessError, ValueError, IndexError):
        return {"torch_cpu_capability": "?", "onednn_bf16": None}


def shim_state(cpu: dict) -> str:
    """tests/bf16_net/sitecustomize.py acts only where oneDNN has no bf16 convolutions."""
    if not cpu["bf16_net_shim"]:
        return "off (--no-shim)"
    return "active" if cpu["onednn_bf16"] is False else "idle (oneDNN has bf16 convolutions here)"


def run_part(target: str, make: str, extra: list[str], env: dict) -> tuple[float, int]:
    """(seconds, exit code) of ``make <target>`` in the repository root."""
    start = time.perf_counter()
    code = subprocess.run([make, target, *extra], cwd=ROOT, env=env).returncode
    return time.perf_counter() - start, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(PARTS), default=list(PARTS), help="parts to run")
    parser.add_argument("--make", default="make", help="the make program")
    parser.add_argument("--make-arg", action="append", default=[], dest="make_args",
                        help="extra argument for make, e.g. --make-arg HALF_JOBS=1 (repeatable)")
    parser.add_argument("--cpu-only", action="store_true", help="print the CPU report and stop")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--emulate-avx2", action="store_true",
                        help="ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2: the code paths of an AVX2-only CPU")
    parser.add_argument("--no-shim", action="store_true", help="COURSE_BF16_NET_SHIM=0 (tests/bf16_net off)")
    args = parser.parse_args()

    env = dict(os.environ)
    if args.emulate_avx2:
        env.update(ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    if args.no_shim:
        env["COURSE_BF16_NET_SHIM"] = "0"
    cpu = cpu_report()
    cpu.update(torch_report(env), emulated_avx2=args.emulate_avx2, bf16_net_shim=not args.no_shim)
    print(f"PyTorch sees: {cpu['torch_cpu_capability']}, oneDNN bf16 convolutions: {cpu['onednn_bf16']}"
          + (" (AVX2 EMULATED)" if args.emulate_avx2 else "") + f"; bf16 net shim {shim_state(cpu)}")
    print(f"CPU: {cpu['cpu']}, {cpu['cores']} cores; " + ", ".join(f"{f} {'yes' if cpu[f] else 'no'}" for f in FLAGS)
          + f" -> native bfloat16: {'yes' if cpu['native_bf16'] else 'NO (emulated: the bf16 pass is slow)'}")
    if args.cpu_only:
        return 0
    results, total = [], 0.0
    for part in args.only:
        seconds, code = run_part(PARTS[part], args.make, args.make_args, env)
        total += seconds
        results.append({"part": part, "target": PARTS[part], "seconds": round(seconds, 1), "rc": code})
        print(f"{part}: make {PARTS[part]} {seconds:.1f} s (rc {code})", flush=True)
    print(f"\nCPU: {cpu['cpu']}, {cpu['cores']} cores, native bf16: {'yes' if cpu['native_bf16'] else 'no'}, "
          f"PyTorch path {cpu['torch_cpu_capability']}{' (emulated)' if args.emulate_avx2 else ''}, "
          f"oneDNN bf16 conv {cpu['onednn_bf16']}, bf16 net shim {shim_state(cpu)}")
    print("\n| part | make target | seconds | rc |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['part']} | `{r['target']}` | {r['seconds']} | {r['rc']} |")
    print(f"| all run | | {total:.1f} | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu, "parts": results, "python": sys.version.split()[0]}, indent=2))
    return max((r["rc"] for r in results), default=0)


if __name__ == "__main__":
    raise SystemExit(main())
