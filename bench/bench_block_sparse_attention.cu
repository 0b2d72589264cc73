// Benchmark of the GPU block-sparse attention (not a test): Llama-3.1-8B shape (32/8 heads, d 128, bf16,
// causal), dense and random causal masks that keep the diagonal, per query head. Times plan + run with CUDA
// events (median of
// --reps after warm-up) and prints useful TFLOP/s (4 * d * visible (q, k) pairs of the selected blocks) next
// to the dense-equivalent rate. Writes every mask as a dense bool .npy [1, heads_q, nQb, nKb] to --mask-dir
// so that bench/peers.py runs FlexAttention on the identical masks.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "sparsefill/block_mask.hpp"
#include "sparsefill/cuda/block_sparse_attention.hpp"
#include "sparsefill/io.hpp"

namespace {

using namespace sparsefill;
using bench::check;
using bench::median_ms;
using bench::split;

__global__ void fill_random_bf16(__nv_bfloat16* x, long long n, unsigned seed) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    unsigned h = static_cast<unsigned>(i) * 2654435761u ^ seed;
    h ^= h >> 13;
    h *= 0x5bd1e995u;
    h ^= h >> 15;
    x[i] = __float2bfloat16((static_cast<float>(h & 0xFFFFFF) / 16777216.0f - 0.5f) * 3.4f);
  }
}

// Random causal mask (per query head) keeping the diagonal; density counts visible blocks.
BlockMask random_causal_mask(std::int64_t heads, std::int64_t nb, double density, std::mt19937_64& rng) {
  BlockMask mask(1, heads, nb, nb);
  std::bernoulli_distribution keep(density);
  for (std::int64_t h = 0; h < heads; ++h) {
    for (std::int64_t u = 0; u < nb; ++u) {
      std::vector<std::int32_t> row;
      for (std::int64_t v = 0; v < u; ++v) {
        if (density >= 1.0 || keep(rng)) row.push_back(static_cast<std::int32_t>(v));
      }
      row.push_back(static_cast<std::int32_t>(u));
      mask.set_row(0, h, u, row);
    }
  }
  return mask;
}

// Visible (query, key) pairs of the selected blocks (square L, causal).
double visible_pairs(const BlockMask& mask, std::int64_t L) {
  double pairs = 0;
  const std::int64_t B = mask.block_q();
  for (std::int64_t h = 0; h < mask.heads(); ++h) {
    for (std::int64_t u = 0; u < mask.num_q_blocks(); ++u) {
      for (std::int32_t n = 0; n < mask.row_count(0, h, u); ++n) {
        const std::int64_t v = mask.row_indices(0, h, u)[n];
        for (std::int64_t i = u * B; i < std::min(L, u * B + B); ++i) {
          pairs +=
              static_cast<double>(std::max<std::int64_t>(0, std::min(std::min(L, v * B + B), i + 1) - v * B));
        }
      }
    }
  }
  return pairs;
}

}  // namespace

int main(int argc, char** argv) {
  std::string lens = "8192,32768", densities = "1,0.5,0.25,0.1,0.05", mask_dir = "";
  int reps = 10;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--len")
      lens = value;
    else if (flag == "--densities")
      densities = value;
    else if (flag == "--reps")
      reps = std::stoi(value);
    else if (flag == "--mask-dir")
      mask_dir = value;
    else {
      std::fprintf(stderr, "unknown flag %s (flags: --len L1,L2 --densities D1,D2 --reps N --mask-dir DIR)\n",
                   flag.c_str());
      return 2;
    }
  }
  const std::int64_t hq = 32, hk = 8, d = 128;
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "device");
  std::printf("device %s; shape 32/8 heads, d 128, bf16, causal, block 128, per-query-head random masks\n",
              prop.name);
  std::printf("%8s %8s %9s %10s %12s %14s  %s\n", "len", "density", "ms", "TFLOP/s", "useful TF/s",
              "x dense time", "kernel");
  std::mt19937_64 rng(1234);
  for (const std::string& len_text : split(lens)) {
    const std::int64_t L = std::stoll(len_text), nb = (L + 127) / 128;
    __nv_bfloat16 *q, *k, *v, *out;
    check(cudaMalloc(&q, L * hq * d * 2), "malloc q");
    check(cudaMalloc(&k, L * hk * d * 2), "malloc k");
    check(cudaMalloc(&v, L * hk * d * 2), "malloc v");
    check(cudaMalloc(&out, L * hq * d * 2), "malloc out");
    fill_random_bf16<<<1024, 256>>>(q, L * hq * d, 1);
    fill_random_bf16<<<1024, 256>>>(k, L * hk * d, 2);
    fill_random_bf16<<<1024, 256>>>(v, L * hk * d, 3);
    const double dense_flops = 4.0 * hq * static_cast<double>(L) * L * d / 2;
    double dense_ms = 0;
    for (const std::string& density_text : split(densities)) {
      const double density = std::stod(density_text);
      const BlockMask mask = random_causal_mask(hq, nb, density, rng);
      if (!mask_dir.empty()) {
        write_block_mask(mask_dir + "/mask_" + len_text + "_" + density_text + ".npy", mask);
      }
      std::int32_t *counts, *indices;
      check(cudaMalloc(&counts, mask.kv_num_blocks().size() * 4), "malloc counts");
      check(cudaMalloc(&indices, mask.kv_indices().size() * 4), "malloc indices");
      check(cudaMemcpy(counts, mask.kv_num_blocks().data(), mask.kv_num_blocks().size() * 4,
                       cudaMemcpyHostToDevice),
            "copy");
      check(
          cudaMemcpy(indices, mask.kv_indices().data(), mask.kv_indices().size() * 4, cudaMemcpyHostToDevice),
          "copy");
      cuda::BlockSparseAttentionArgs args;
      args.q = make_view(q, DType::kBF16, {1, L, hq, d});
      args.k = make_view(k, DType::kBF16, {1, L, hk, d});
      args.v = make_view(v, DType::kBF16, {1, L, hk, d});
      args.out = make_view(out, DType::kBF16, {1, L, hq, d});
      args.mask = {counts, indices, hq, nb, nb, 128, 128};
      void* workspace;
      check(cudaMalloc(&workspace, cuda::BlockSparseAttention::workspace_size(args)), "malloc workspace");
      const double ms = median_ms(reps, [&] {
        cuda::BlockSparseAttention::plan(args, workspace, nullptr);
        cuda::BlockSparseAttention::run(args, workspace, nullptr);
      });
      if (density >= 1.0) dense_ms = ms;
      const double useful = 4.0 * d * visible_pairs(mask, L);  // pairs summed over the heads
      std::printf("%8lld %8.3f %9.3f %10.1f %12.1f %14s  %s\n", static_cast<long long>(L),
                  mask_density(mask, describe_attention(args.q, args.k, args.v), true).overall, ms,
                  dense_flops / ms / 1e9, useful / ms / 1e9,
                  dense_ms > 0 ? std::to_string(ms / dense_ms).substr(0, 5).c_str() : "-",
                  cuda::BlockSparseAttention::kernel_name(args));
      cudaFree(workspace);
      cudaFree(counts);
      cudaFree(indices);
    }
    cudaFree(q);
    cudaFree(k);
    cudaFree(v);
    cudaFree(out);
  }
  return 0;
}
