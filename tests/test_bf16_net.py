"""The bfloat16 net's shim (tests/bf16_net/sitecustomize.py): bf16 results, bf16 rounding, real errors kept.

It runs in a subprocess, as in `make test-notebooks-half`: PYTHONPATH=tests/bf16_net, COURSE_DTYPE=bfloat16.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIM_DIR = ROOT / "tests" / "bf16_net"

PROBE = r"""
import json, os, torch, torch.nn.functional as F
torch.manual_seed(0)
x = torch.randn(2, 3, 9, 9).to(torch.bfloat16); w = torch.randn(4, 3, 3, 3).to(torch.bfloat16)
b = torch.randn(4).to(torch.bfloat16)
y = F.conv2d(x, w, b, padding=1)
# what a GPU's bf16 convolution gives: float32 accumulation of the same bf16 values, one rounding to bf16
ref = torch.conv2d(x.float(), w.float(), b.float(), padding=1).to(torch.bfloat16)
lin = torch.nn.Linear(5, 3).to(torch.bfloat16)
z = lin(torch.randn(4, 5).to(torch.bfloat16))
q = torch.randn(1, 2, 6, 8).to(torch.bfloat16)
a = F.scaled_dot_product_attention(q, q, q)
a_ref = torch._C._nn.scaled_dot_product_attention(q.float(), q.float(), q.float()).to(torch.bfloat16) \
    if hasattr(torch._C._nn, "scaled_dot_product_attention") else None
try:
    F.conv2d(x, w.float())
    mismatch = "no error"
except RuntimeError as err:
    mismatch = str(err)
print(json.dumps({
    "active": os.environ.get("COURSE_BF16_NET_SHIM_ACTIVE") == "1",
    "patched": F.conv2d is not torch.conv2d,
    "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    "dtypes": [str(t.dtype) for t in (y, z, a)],
    "conv_equal_reference": bool(torch.equal(y, ref)),
    "attention_equal_reference": None if a_ref is None else bool(torch.equal(a, a_ref)),
    "mismatch": mismatch,
}))
"""


def probe(**env: str) -> dict:
    full = {k: v for k, v in os.environ.items() if k not in ("COURSE_DTYPE", "COURSE_BF16_NET_SHIM")}
    full.update(PYTHONPATH=f"{SHIM_DIR}{os.pathsep}{ROOT}", **env)
    out = subprocess.run([sys.executable, "-c", PROBE], env=full, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_forced_shim_gives_bf16_results_rounded_once_from_float32():
    seen = probe(COURSE_DTYPE="bfloat16", COURSE_BF16_NET_SHIM="1")
    assert seen["active"] and seen["patched"]
    assert seen["dtypes"] == ["torch.bfloat16"] * 3, "every result the notebook sees stays bfloat16"
    assert seen["conv_equal_reference"], "conv = float32 conv of the same bf16 values, rounded once to bf16"
    assert seen["attention_equal_reference"] is True


def test_a_dtype_mismatch_still_raises_torchs_own_error():
    seen = probe(COURSE_DTYPE="bfloat16", COURSE_BF16_NET_SHIM="1")
    assert "should be the same" in seen["mismatch"] or "same dtype" in seen["mismatch"], seen["mismatch"]


def test_shim_does_nothing_outside_the_bf16_pass_or_when_turned_off():
    assert not probe()["patched"], "without COURSE_DTYPE=bfloat16 nothing is patched"
    assert not probe(COURSE_DTYPE="bfloat16", COURSE_BF16_NET_SHIM="0")["patched"]


def test_auto_mode_acts_only_where_onednn_has_no_bf16_convolutions():
    for extra in ({}, {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}):
        seen = probe(COURSE_DTYPE="bfloat16", **extra)
        assert seen["active"] == (not seen["onednn_bf16"]), seen


def test_the_half_pass_puts_the_shim_on_its_pythonpath():
    makefile = (ROOT / "Makefile").read_text()
    rule = makefile[makefile.index("test-notebooks-half:"):]
    assert "tests/bf16_net" in rule.split("\n\n")[0]
