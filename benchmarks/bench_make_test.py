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


def run_part(target: str, make: str, extra: list[str]) -> tuple[float, int]:
    """(seconds, exit code) of ``make <target>`` in the repository root."""
    start = time.perf_counter()
    code = subprocess.run([make, target, *extra], cwd=ROOT).returncode
    return time.perf_counter() - start, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=list(PARTS), default=list(PARTS), help="parts to run")
    parser.add_argument("--make", default="make", help="the make program")
    parser.add_argument("--make-arg", action="append", default=[], dest="make_args",
                        help="extra argument for make, e.g. --make-arg HALF_JOBS=1 (repeatable)")
    parser.add_argument("--cpu-only", action="store_true", help="print the CPU report and stop")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    cpu = cpu_report()
    print(f"CPU: {cpu['cpu']}, {cpu['cores']} cores; " + ", ".join(f"{f} {'yes' if cpu[f] else 'no'}" for f in FLAGS)
          + f" -> native bfloat16: {'yes' if cpu['native_bf16'] else 'NO (emulated: the bf16 pass is slow)'}")
    if args.cpu_only:
        return 0
    results, total = [], 0.0
    for part in args.only:
        seconds, code = run_part(PARTS[part], args.make, args.make_args)
        total += seconds
        results.append({"part": part, "target": PARTS[part], "seconds": round(seconds, 1), "rc": code})
        print(f"{part}: make {PARTS[part]} {seconds:.1f} s (rc {code})", flush=True)
    print(f"\nCPU: {cpu['cpu']}, {cpu['cores']} cores, native bf16: {'yes' if cpu['native_bf16'] else 'no'}")
    print("\n| part | make target | seconds | rc |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['part']} | `{r['target']}` | {r['seconds']} | {r['rc']} |")
    print(f"| all run | | {total:.1f} | |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu, "parts": results, "python": sys.version.split()[0]}, indent=2))
    return max((r["rc"] for r in results), default=0)


if __name__ == "__main__":
    raise SystemExit(main())
