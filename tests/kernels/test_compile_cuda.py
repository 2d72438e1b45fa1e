"""The Triton kernels lower all the way to CUDA binaries (sm_80, sm_90) without a GPU.

The interpreter tests check the values; this checks that the same kernel source also compiles
(type errors, unsupported ops and loop-carried type mismatches only show up in the compiler).
Each kernel compiles in a subprocess without TRITON_INTERPRET (the interpreter patches triton.language in
ways the compiler does not survive). Skipped where Triton's NVIDIA backend or ptxas is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

PREAMBLE = r'''
import importlib, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
try:
    from triton.backends.nvidia.compiler import get_ptxas
    try:
        get_ptxas(90)
    except TypeError:
        get_ptxas()
except Exception as e:
    print("SKIP", e)
    sys.exit(0)

def compile_(module, sig, constexprs, arch, warps):
    fn = importlib.import_module(module)._build_kernel()
    c = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs), target=GPUTarget("cuda", arch, 32),
                       options={"num_warps": warps})
    assert c.asm["cubin"]
'''

# Per kernel module: the compile calls, over the dtypes and tile shapes the dispatcher uses.
KERNELS = {
    "token_stats": r'''
for arch in (80, 90):
    for dt, k_pad, block_v in (("fp32", 32, 4096), ("bf16", 64, 4096), ("fp16", 2, 1024)):
        sig = {"x_ptr": "*" + dt, "ids_ptr": "*i64", "lp_ptr": "*fp32", "ent_ptr": "*fp32", "conf_ptr": "*fp32",
               "lse_ptr": "*fp32", "V": "i32", "stride_row": "i64", "tau": "fp32", "K": "i32",
               "BLOCK_V": "constexpr", "K_PAD": "constexpr"}
        compile_("treecredit_kernels.token_stats", sig, {"BLOCK_V": block_v, "K_PAD": k_pad}, arch, 8)
''',
    "topk_confidence": r'''
for arch in (80, 90):
    sig = {"x_ptr": "*bf16", "conf_ptr": "*fp32", "ent_ptr": "*fp32", "T": "i32", "K": "i32", "stride_row": "i64",
           "BLOCK_T": "constexpr", "K_PAD": "constexpr"}
    compile_("treecredit_kernels.topk_confidence", sig, {"BLOCK_T": 128, "K_PAD": 32}, arch, 4)
''',
    "tree_window_confidence": r'''
sig = {"prefix_ptr": "*fp64", "seg_off_ptr": "*i64", "seg_base_ptr": "*fp64", "seg_pos_ptr": "*i64",
       "far_ptr": "*fp64", "far_off_ptr": "*i64", "out_ptr": "*fp64", "seg_min_ptr": "*fp64",
       "U": "i32", "N": "i32", "W": "i32", "SEARCH_STEPS": "i32", "BLOCK": "constexpr"}
for arch in (80, 90):
    compile_("treecredit_kernels.tree_window_confidence", sig, {"BLOCK": 1024}, arch, 4)
''',
    "reflection_reward": r'''
sig = {"x_ptr": "*fp64", "base_ptr": "*fp64", "power_ptr": "*fp64", "rows_ptr": "*i64", "cols_ptr": "*i64",
       "elem_off_ptr": "*i64", "col_off_ptr": "*i64", "row_off_ptr": "*i64", "sigma_ptr": "*fp64",
       "weight_ptr": "*fp64", "reward_ptr": "*fp64", "spread_ptr": "*fp64", "HAS_BASE": "constexpr",
       "POWER_ONE": "constexpr", "BLOCK_R": "constexpr", "BLOCK_C": "constexpr"}
for arch, flag in ((80, True), (90, False)):
    compile_("treecredit_kernels.reflection_reward", sig,
             {"HAS_BASE": flag, "POWER_ONE": flag, "BLOCK_R": 16, "BLOCK_C": 256}, arch, 4)
''',
}


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_compiles_for_sm80_and_sm90(kernel):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    script = PREAMBLE + KERNELS[kernel] + 'print("OK")\n'
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-4000:]
    last = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    if last.startswith("SKIP"):
        pytest.skip(last)
    assert last == "OK", out.stdout[-2000:] + out.stderr[-2000:]
