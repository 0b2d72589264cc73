"""Peers of the block-sparse attention benchmark, timed on the GPU machine in the same run (not a test).

torch SDPA with the cuDNN and flash backends (dense causal, GQA without copying K/V) and FlexAttention on the
identical block masks written by bench_block_sparse_attention and bench_prefill (--mask-dir: random masks named by
density, scene masks by method). Same shape: 32/8 heads, d 128, bf16,
causal. Prints one line per (length, method) with the median time (CUDA events) and dense-equivalent TFLOP/s.
"""
import argparse
import glob
import os

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import BlockMask, flex_attention


def timed(fn, reps):
    for _ in range(2):
        fn()
    times = []
    for _ in range(reps):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(stop))
    return sorted(times)[len(times) // 2]


def indices_of(blocks):
    """Canonical ordered indices [1, H, nQb] and [1, H, nQb, nKb] of a bool block map [H, nQb, nKb]."""
    counts = blocks.sum(-1).to(torch.int32)
    order = torch.argsort((~blocks).to(torch.int8), dim=-1, stable=True).to(torch.int32)  # selected first, ascending
    return counts[None].contiguous(), order[None].contiguous()


def flex_block_mask(block_map, block):
    """FlexAttention BlockMask of the same blocks: off-diagonal blocks as "full" (no element mask), the diagonal
    blocks as partial with the causal mask_mod, which is the fastest form FlexAttention offers for this mask."""
    blocks = torch.from_numpy(block_map).cuda()
    n = blocks.shape[-1]
    diagonal = torch.eye(n, dtype=torch.bool, device="cuda")[None]
    partial, full = blocks & diagonal, blocks & ~diagonal
    kv_num, kv_idx = indices_of(partial)
    full_num, full_idx = indices_of(full)

    def causal(b, h, q_idx, kv_idx):
        return q_idx >= kv_idx

    return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block, mask_mod=causal)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--len", default="8192,32768")
    parser.add_argument("--mask-dir", required=True)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    hq, hk, d, block = 32, 8, 128, 128
    flex = torch.compile(flex_attention, dynamic=False)
    print(f"peers on {torch.cuda.get_device_name()} (torch {torch.__version__})")
    print(f"{'len':>8} {'method':<26} {'ms':>9} {'TFLOP/s':>10}")
    for text in args.len.split(","):
        n = int(text)
        q = torch.randn(1, hq, n, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(1, hk, n, d, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(1, hk, n, d, device="cuda", dtype=torch.bfloat16)
        flops = 4.0 * hq * n * n * d / 2
        for name, backend in (("sdpa cudnn", SDPBackend.CUDNN_ATTENTION), ("sdpa flash", SDPBackend.FLASH_ATTENTION)):
            def run(backend=backend):
                with sdpa_kernel(backend):
                    torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            try:
                ms = timed(run, args.reps)
                print(f"{n:>8} {name:<26} {ms:>9.3f} {flops / ms / 1e9:>10.1f}")
            except RuntimeError as error:
                print(f"{n:>8} {name:<26} failed: {str(error).splitlines()[0]}")
        for path in sorted(glob.glob(os.path.join(args.mask_dir, f"mask_{text}_*.npy"))):
            density = os.path.basename(path)[len(f"mask_{text}_"):-len(".npy")]
            block_mask = flex_block_mask(np.load(path)[0], block)
            ms = timed(lambda: flex(q, k, v, block_mask=block_mask, enable_gqa=True), args.reps)
            label = ("flex density " if density[0].isdigit() else "flex mask ") + density
            print(f"{n:>8} {label:<26} {ms:>9.3f} {flops / ms / 1e9:>10.1f}")


if __name__ == "__main__":
    main()
