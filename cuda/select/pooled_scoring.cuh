// Kernels of the pooled-score selectors on the GPU (Prism and mean pooling; design note).
//
// Every step mirrors the CPU reference (src/select/prism_selector.cpp, meanpool_selector.cpp) in fp64 and in
// the same summation order where the order is per element: block pooling sums a block's tokens in token
// order and divides by the block; a logit sums its band's dims in the reference's dim order. Reductions over
// many elements (the bands' RMS statistics, the softmax normaliser, the prefix mass of the top-p rule) run
// as tree reductions, so a decision can differ from the CPU's only where a value sits within rounding of the
// threshold or two probabilities tie to the last bit.
//
// One CTA scores one (sequence, query head, query block) row: logits of every candidate key block per band,
// softmax, a stable descending radix sort of the probabilities (ties by block index, as the CPU's stable
// sort), the exclusive prefix mass, and the kept set OR-ed across bands; then the forced blocks, and the row
// is compacted into the canonical mask (ascending indices, zeros after the count).
#pragma once
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cuda/functional>
#include <cstdint>

namespace sparsefill::cuda::select {

inline constexpr int kMaxBandDims = 256;
inline constexpr double kRmsFloor = 1e-6;

struct Band {
  int dims[kMaxBandDims];
  int count = 0;
  double p = 0.0;  // top-p threshold
};

struct ScoringParams {
  const double* pooled_q;  // [batch, heads_q, nq, d]
  const double* pooled_k;  // [batch, heads_kv, d, nk] (transposed)
  const double* scales;    // [batch, heads_q, bands]: the logit multiplier of each band
  int batch, heads_q, heads_kv, d, nq, nk, bands;
  int causal;
  int rule_t2;  // 0: T1 (keep while the mass before < p); 1: T2 (the same set, empty if the total never reaches p)
  int force_sink, force_diagonal;
  Band band[2];
  std::int32_t* kv_num_blocks;  // [batch, heads_q, nq]
  std::int32_t* kv_indices;     // [batch, heads_q, nq, nk]
};

// Block mean pooling: the sum over the block's tokens (token order) of x / block, fp64, written as
// out[b, h, u, c] or, `transposed`, out[b, h, c, u] (pooled keys: the row kernel's threads walk blocks u, so
// that layout makes their loads coalesced).
template <typename Element>
__global__ void pool_blocks_kernel(const Element* x, std::int64_t s_batch, std::int64_t s_token, std::int64_t s_head,
                                   int length, int heads, int d, int block, bool transposed, double* out) {
  const int u = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int nb = gridDim.x;
  const int t_end = min(length, (u + 1) * block);
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    double sum = 0.0;
    for (int t = u * block; t < t_end; ++t)
      sum += static_cast<double>(static_cast<float>(x[b * s_batch + t * s_token + h * s_head + c]));
    const std::int64_t head = static_cast<std::int64_t>(b) * heads + h;
    out[transposed ? (head * d + c) * nb + u : (head * nb + u) * d + c] = sum / block;
  }
}

inline constexpr int kEnergySlices = 64;  // CTAs per head of the energy sums (partials reduced in order)

// Partial sums of squares of pooled blocks per (b, h) and slice of its blocks: [0] over every dim, [1 + z]
// over band z's dims, into partial[(bh * kEnergySlices + slice) * 3 + i]. Element (u, c) of a head sits at
// u * u_stride + c * c_stride.
__global__ void pooled_energy_kernel(const double* pooled, int nb, int d, int u_stride, int c_stride, Band high,
                                     Band low, double* partial) {
  const int bh = blockIdx.x, slice = blockIdx.y;
  const double* rows = pooled + static_cast<std::int64_t>(bh) * nb * d;
  const int u_begin = static_cast<int>(static_cast<long long>(nb) * slice / kEnergySlices);
  const int n = static_cast<int>(static_cast<long long>(nb) * (slice + 1) / kEnergySlices) - u_begin;
  double all = 0, band0 = 0, band1 = 0;
  for (int i = threadIdx.x; i < n * d; i += blockDim.x) {
    const double x = rows[(u_begin + i / d) * u_stride + (i % d) * c_stride];
    all += x * x;
  }
  for (int i = threadIdx.x; i < n * high.count; i += blockDim.x) {
    const double x = rows[(u_begin + i / high.count) * u_stride + high.dims[i % high.count] * c_stride];
    band0 += x * x;
  }
  for (int i = threadIdx.x; i < n * low.count; i += blockDim.x) {
    const double x = rows[(u_begin + i / low.count) * u_stride + low.dims[i % low.count] * c_stride];
    band1 += x * x;
  }
  using Reduce = cub::BlockReduce<double, 256>;
  __shared__ typename Reduce::TempStorage temp;
  all = Reduce(temp).Sum(all);
  __syncthreads();
  band0 = Reduce(temp).Sum(band0);
  __syncthreads();
  band1 = Reduce(temp).Sum(band1);
  if (threadIdx.x == 0) {
    double* out = partial + (static_cast<std::int64_t>(bh) * kEnergySlices + slice) * 3;
    out[0] = all;
    out[1] = band0;
    out[2] = band1;
  }
}

// Sum i of a head's energy partials, in slice order (deterministic).
__device__ inline double energy_sum(const double* partial, int bh, int i) {
  double sum = 0;
  for (int slice = 0; slice < kEnergySlices; ++slice) sum += partial[(bh * kEnergySlices + slice) * 3 + i];
  return sum;
}

// Prism's band multipliers 1 / (sqrt(d_z) * max(tau_z, 1e-6)), tau_z = sqrt(d_z / d) * rms(Q_z)/rms(Q) *
// rms(K_z)/rms(K) (1 without calibration); mean pooling: one band, 1 / sqrt(d).
__global__ void band_scale_kernel(const double* energy_q, const double* energy_k, int batch, int heads_q,
                                  int heads_kv, int nq, int nk, int d, int bands, int calibrate, Band high, Band low,
                                  double* scales) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= batch * heads_q) return;
  const int b = i / heads_q, h = i % heads_q, hk = h / (heads_q / heads_kv);
  const int bk = b * heads_kv + hk;
  for (int z = 0; z < bands; ++z) {
    const double dz = z == 0 ? high.count : low.count;
    double tau = 1.0;
    if (calibrate) {
      const double rq = sqrt(energy_sum(energy_q, i, 1 + z) / (static_cast<double>(nq) * dz)),
                   rq_all = sqrt(energy_sum(energy_q, i, 0) / (static_cast<double>(nq) * d));
      const double rk = sqrt(energy_sum(energy_k, bk, 1 + z) / (static_cast<double>(nk) * dz)),
                   rk_all = sqrt(energy_sum(energy_k, bk, 0) / (static_cast<double>(nk) * d));
      tau = sqrt(dz / d) * (rq / fmax(rq_all, kRmsFloor)) * (rk / fmax(rk_all, kRmsFloor));
    }
    scales[i * bands + z] = 1.0 / (sqrt(dz) * fmax(tau, kRmsFloor));
  }
}

template <int kThreads, int kItems>
__global__ void __launch_bounds__(kThreads) score_rows_kernel(const ScoringParams p) {
  constexpr int kCapacity = kThreads * kItems;
  using Sort = cub::BlockRadixSort<double, kThreads, kItems, int>;
  using Scan = cub::BlockScan<double, kThreads>;
  using CountScan = cub::BlockScan<int, kThreads>;
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ union {
    typename Sort::TempStorage sort;
    typename Scan::TempStorage scan;
    typename CountScan::TempStorage count_scan;
    typename Reduce::TempStorage reduce;
  } temp;
  __shared__ double q_row[kMaxBandDims];
  __shared__ double probs[kCapacity];
  __shared__ unsigned char kept[kCapacity];
  __shared__ double broadcast;

  const int u = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
  const int hk = h / (p.heads_q / p.heads_kv);
  const int shift = p.nk - p.nq;
  const int candidates = p.causal ? min(max(u + shift + 1, 0), p.nk) : p.nk;
  const double* pq = p.pooled_q + ((static_cast<std::int64_t>(b) * p.heads_q + h) * p.nq + u) * p.d;
  const double* pk = p.pooled_k + (static_cast<std::int64_t>(b) * p.heads_kv + hk) * p.nk * p.d;
  for (int c = threadIdx.x; c < p.d; c += kThreads) q_row[c] = pq[c];
  for (int v = threadIdx.x; v < kCapacity; v += kThreads) kept[v] = 0;
  __syncthreads();

  for (int z = 0; z < p.bands && candidates > 0; ++z) {
    const Band& band = p.band[z];
    const double scale = p.scales[(b * p.heads_q + h) * p.bands + z];
    double local_max = -INFINITY;
    for (int v = threadIdx.x; v < candidates; v += kThreads) {
      double s = 0.0;
      for (int i = 0; i < band.count; ++i) s += q_row[band.dims[i]] * pk[static_cast<std::int64_t>(band.dims[i]) * p.nk + v];
      probs[v] = s * scale;
      local_max = fmax(local_max, probs[v]);
    }
    const double row_max = Reduce(temp.reduce).Reduce(local_max, ::cuda::maximum<>{});
    if (threadIdx.x == 0) broadcast = row_max;
    __syncthreads();
    const double m = broadcast;
    double local_sum = 0.0;
    for (int v = threadIdx.x; v < candidates; v += kThreads) local_sum += (probs[v] = exp(probs[v] - m));
    __syncthreads();
    const double z_sum = Reduce(temp.reduce).Sum(local_sum);
    if (threadIdx.x == 0) broadcast = z_sum;
    __syncthreads();
    const double total = broadcast;
    // Blocked arrangement in index order (non-candidates sort last), then a stable descending sort.
    double keys[kItems];
    int ids[kItems];
#pragma unroll
    for (int i = 0; i < kItems; ++i) {
      const int v = threadIdx.x * kItems + i;
      ids[i] = v;
      keys[i] = v < candidates ? probs[v] / total : -1.0;
    }
    __syncthreads();
    Sort(temp.sort).SortDescending(keys, ids);
    __syncthreads();
    double before[kItems];
    double mass = 0.0;
    Scan(temp.scan).ExclusiveSum(keys, before, mass);  // -1 paddings sit after every candidate
    __syncthreads();
    // T2 keeps nothing when the cumulative mass over all candidates never reaches p.
    double candidate_mass = 0.0;
#pragma unroll
    for (int i = 0; i < kItems; ++i) candidate_mass += ids[i] < candidates ? keys[i] : 0.0;
    candidate_mass = Reduce(temp.reduce).Sum(candidate_mass);
    if (threadIdx.x == 0) broadcast = candidate_mass;
    __syncthreads();
    const bool reached = !p.rule_t2 || broadcast >= band.p;
#pragma unroll
    for (int i = 0; i < kItems; ++i)
      if (ids[i] < candidates && before[i] < band.p && reached) kept[ids[i]] = 1;
    __syncthreads();
    (void)mass;
  }
  if (threadIdx.x == 0) {
    if (p.force_sink && p.nk > 0) kept[0] = 1;
    if (p.force_diagonal && u + shift >= 0 && u + shift < p.nk) kept[u + shift] = 1;
  }
  __syncthreads();
  int flags[kItems], positions[kItems];
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int v = threadIdx.x * kItems + i;
    flags[i] = v < p.nk ? kept[v] : 0;
  }
  int count = 0;
  CountScan(temp.count_scan).ExclusiveSum(flags, positions, count);
  const std::int64_t row = (static_cast<std::int64_t>(b) * p.heads_q + h) * p.nq + u;
  std::int32_t* out = p.kv_indices + row * p.nk;
#pragma unroll
  for (int i = 0; i < kItems; ++i) {
    const int v = threadIdx.x * kItems + i;
    if (flags[i]) out[positions[i]] = v;
  }
  for (int i = count + threadIdx.x; i < p.nk; i += kThreads) out[i] = 0;
  if (threadIdx.x == 0) p.kv_num_blocks[row] = count;
}

}  // namespace sparsefill::cuda::select
