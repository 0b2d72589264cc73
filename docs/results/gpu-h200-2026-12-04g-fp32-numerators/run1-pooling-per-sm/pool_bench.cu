// Microbenchmark (not committed): per-SM pooling bandwidth of pool_blocks_cta in row-kernel-shaped CTAs
// (512 threads, 1 CTA an SM) when only N SMs pool, for a chunk of 4 query heads + 1 key head at 128K.
#include <cuda_bf16.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "select/pool_blocks.cuh"
using namespace sparsefill::cuda::select;

template <int kStages>
__global__ void __launch_bounds__(512, 1) persistent_pool(const PoolParams p, int total, int* ticket) {
  __shared__ int t;
  for (;;) {
    if (threadIdx.x == 0) t = atomicAdd(ticket, 1);
    __syncthreads();
    const int cta = t;
    __syncthreads();
    if (cta >= total) return;
    pool_blocks_cta<__nv_bfloat16, 8, kStages>(p, cta, 0);
    __syncthreads();
  }
}
__global__ void fill(unsigned* x, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    x[i] = 0x3f803f80u ^ (unsigned)(i * 2654435761u & 0x007f007fu);
}
int main() {
  const int L = 131072, HQ = 32, HK = 8, D = 128, NB = L / 128;
  __nv_bfloat16 *q, *k;
  double *pq, *pk, *eq, *ek;
  int* ticket;
  cudaMalloc(&q, (size_t)L * HQ * D * 2);
  cudaMalloc(&k, (size_t)L * HK * D * 2);
  fill<<<1024, 256>>>((unsigned*)q, (size_t)L * HQ * D / 2);
  fill<<<1024, 256>>>((unsigned*)k, (size_t)L * HK * D / 2);
  cudaMalloc(&pq, (size_t)HQ * NB * D * 8);
  cudaMalloc(&pk, (size_t)HK * NB * D * 8);
  cudaMalloc(&eq, (size_t)HQ * NB * 3 * 8);
  cudaMalloc(&ek, (size_t)HK * NB * 3 * 8);
  cudaMalloc(&ticket, 4);
  Lengths lengths{nullptr, nullptr, L, L, 128};
  auto make = [&](int heads_q, int heads_k) {
    PoolParams p;
    p.lengths = lengths;
    p.d = D;
    p.job[p.jobs++] = pool_job(q, 0, HQ * D, D, false, heads_q, NB, pq);
    p.job[0].energy = eq;
    p.job[p.jobs++] = pool_job(k, 0, HK * D, D, true, heads_k, NB, pk);
    p.job[1].energy = ek;
    for (int i = 0; i < 64; ++i) p.band_bits[0][i / 64] |= (i % 2 ? 1ull : 0ull) << (i % 64);
    return p;
  };
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  auto timed = [&](auto&& launch) {
    std::vector<float> ms;
    for (int r = 0; r < 12; ++r) {
      launch();
      cudaEventRecord(a);
      launch();
      cudaEventRecord(b);
      cudaEventSynchronize(b);
      float t;
      cudaEventElapsedTime(&t, a, b);
      ms.push_back(t);
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  {  // the full pooling launch as main runs it
    PoolParams p = make(HQ, HK);
    launch_pooling<__nv_bfloat16>(
        p, 1, [&](auto kernel, unsigned ctas, unsigned seqs, int threads, size_t smem, const PoolParams& pp) {
          cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
          float t = timed([&] { kernel<<<dim3(ctas, seqs), threads, smem>>>(pp); });
          double gb = ((double)L * HQ * D * 2 + (double)L * HK * D * 2) / 1e9;
          printf("full pooling (main's launch, %u CTAs): %.1f us, %.0f GB/s\n", ctas, t * 1e3,
                 gb / (t * 1e-3));
        });
  }
  PoolParams p = make(4, 1);
  const int total = (int)pool_layout(p, 8);
  const double gb = ((double)L * 4 * D * 2 + (double)L * 1 * D * 2) / 1e9;
  printf("chunk of 4 q heads + 1 k head: %d items, %.3f GB\n", total, gb);
  auto run = [&](auto kernel, int stages) {
    const size_t smem = 170 * 1024;
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    for (int n : {16, 33, 66, 132}) {
      float t = timed([&] {
        cudaMemsetAsync(ticket, 0, 4);
        kernel<<<n, 512, smem>>>(p, total, ticket);
      });
      printf("stages %2d, %3d SMs: %7.1f us, %6.0f GB/s, %5.1f GB/s an SM\n", stages, n, t * 1e3,
             gb / (t * 1e-3), gb / (t * 1e-3) / n);
    }
  };
  run(persistent_pool<8>, 8);
  run(persistent_pool<16>, 16);
  run(persistent_pool<20>, 20);
  cudaError_t e = cudaDeviceSynchronize();
  printf("status: %s\n", cudaGetErrorString(e));
}
