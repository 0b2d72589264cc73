"""Peers of the block-sparse attention benchmark, timed on the GPU machine in the same run (not a test).

torch SDPA with the cuDNN and flash backends (dense causal, GQA without copying K/V) and FlexAttention on the
identical block masks written by bench_block_sparse_attention (--mask-dir). Same shape: 32/8 heads, d 128, bf16,
causal. Prints one line per (length, method) with the median time (CUDA events) and dense-equivalent TFLOP/s.
"""
import argparse
import glob
import os

import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.flex_attention import create_block_mask, flex_attention


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
            blocks = torch.from_numpy(np.load(path)[0]).cuda()  # [heads_q, nQb, nKb] bool

            def mask_mod(b, h, q_idx, kv_idx):
                return blocks[h, q_idx // block, kv_idx // block] & (q_idx >= kv_idx)

            block_mask = create_block_mask(mask_mod, 1, hq, n, n, device="cuda", BLOCK_SIZE=block)
            ms = timed(lambda: flex(q, k, v, block_mask=block_mask, enable_gqa=True), args.reps)
            print(f"{n:>8} {'flex density ' + density:<26} {ms:>9.3f} {flops / ms / 1e9:>10.1f}")


if __name__ == "__main__":
    main()
