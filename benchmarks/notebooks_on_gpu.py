"""Execute every notebook with nbval on a GPU and tabulate wall time and peak GPU memory.

Used by ``make test-gpu``. Each notebook runs in its own ``pytest --nbval-lax`` process while a
thread polls ``nvidia-smi`` for the memory in use; the peak above the idle baseline is reported.
Exits non-zero if any notebook fails. Writes the table to stdout and to --table (Markdown).

    COURSE_PROFILE=colab COURSE_WEIGHTS=random python benchmarks/notebooks_on_gpu.py --table outputs/gpu_table.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def gpu_memory_used_mib() -> int | None:
    if not shutil.which("nvidia-smi"):
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                         capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[0]) if out.returncode == 0 and out.stdout.strip() else None


class PeakPoller(threading.Thread):
    def __init__(self, every: float = 0.2):
        super().__init__(daemon=True)
        self.every, self.peak, self.stop = every, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, gpu_memory_used_mib() or 0)
            time.sleep(self.every)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: all of notebooks/)")
    parser.add_argument("--table", default=str(ROOT / "outputs" / "gpu_notebooks.md"), help="Markdown table to write")
    parser.add_argument("--timeout", type=int, default=600, help="seconds after which a notebook is stopped")
    parser.add_argument("--budget", type=int, default=120,
                        help="seconds a notebook may take in the GPU test mode (over it: 'slow', and the run fails)")
    parser.add_argument("--total-budget", type=int, default=600, help="seconds the whole series may take")
    args = parser.parse_args()
    notebooks = [Path(p) for p in args.notebooks] or sorted((ROOT / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
    baseline = gpu_memory_used_mib()
    if baseline is None:
        print("note: nvidia-smi not found: peak GPU memory will read 'n/a'")
    profile = os.environ.get("COURSE_PROFILE", "(detected)")
    weights = "random full-size" if os.environ.get("COURSE_WEIGHTS") == "random" else "real"
    rows, failed, total = [], [], 0.0
    gpu_class = os.environ.get("COURSE_GPU_CLASS") or "(detected)"
    for notebook in notebooks:
        poller = PeakPoller()
        poller.start()
        start = time.perf_counter()
        try:
            result = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-q",
                                     "-p", "no:cacheprovider", str(notebook)], cwd=ROOT, timeout=args.timeout,
                                    capture_output=True, text=True)
            ok = result.returncode == 0
            tail = result.stdout[-3000:]
        except subprocess.TimeoutExpired:
            ok, tail = False, f"timed out after {args.timeout} s"
        seconds = time.perf_counter() - start
        poller.stop.set()
        poller.join()
        peak = f"{(poller.peak - baseline) / 1024:.1f}" if baseline is not None else "n/a"
        result_word = "pass" if ok and seconds <= args.budget else ("slow" if ok else "FAIL")
        rows.append(f"| {notebook.name} | {result_word} | {seconds:.0f} | {peak} |")
        total += seconds
        print(rows[-1], flush=True)
        if result_word != "pass":
            failed.append(notebook.name)
            print(tail if not ok else f"{notebook.name}: {seconds:.0f} s, over the budget of {args.budget} s")
    device = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                            text=True).stdout.strip() if baseline is not None else "no GPU"
    table = "\n".join([f"Profile `{profile}` (GPU class {gpu_class}), {weights} weights, on {device}:", "",
                       "| notebook | result | wall time (s) | peak GPU memory (GiB) |",
                       "|---|---|---|---|", *rows, f"| whole series | {'pass' if total <= args.total_budget else 'slow'} "
                       f"| {total:.0f} | |", ""])
    if total > args.total_budget:
        failed.append(f"whole series ({total:.0f} s > {args.total_budget} s)")
    Path(args.table).parent.mkdir(parents=True, exist_ok=True)
    Path(args.table).write_text(table)
    print("\n" + table)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
