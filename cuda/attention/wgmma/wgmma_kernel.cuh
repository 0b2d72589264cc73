// The Hopper block-sparse attention kernel (design note; tile shapes and layouts in wgmma_traits.cuh).
//
// One CTA per scheduled (sequence, query head, 128-row tile) item. Producer and consumers walk the same mask
// row (kv_indices of the tile's block row) with the same predicate, so they agree on every tile without
// talking: indices outside [0, nKb), blocks past the sequence's keys and (causal) blocks entirely above the
// diagonal are skipped. Only blocks that cross the diagonal or the sequence end pay the element mask. TMA
// zero-fills rows past the tensor; in varlen batches a tile may read the next sequence's rows, which the
// element mask hides. Rows of a tile past the sequence are computed but never written. With key positions
// (PBS's permuted copies, key_positions.hpp) a block's place against the diagonal is that of its first and
// last original position, and the element mask compares original positions.
#pragma once
#include <cutlass/arch/barrier.h>
#include <cutlass/arch/reg_reconfig.h>

#include <cmath>
#include <cute/tensor.hpp>

#include "attention/attention_params.hpp"
#include "attention/wgmma/wgmma_softmax.cuh"
#include "attention/wgmma/wgmma_traits.cuh"
#include "common/warpgroup_gemm.cuh"

namespace sparsefill::cuda::wgmma {

template <class Traits>
struct KernelParams {
  AttentionKernelParams base;
  typename Traits::TmaQ tma_q;
  typename Traits::TmaK tma_k;
  typename Traits::TmaV tma_v;
  // Extents of the TMA views: tokens per batch entry (fixed length) or in total (varlen), batch entries.
  int q_extent, k_extent, batch_extent;
};

// The tile's sequence geometry and mask row, and which of its key blocks are computed.
struct TileWork {
  int b, h, hk, row0, lq, lk, start_q, start_k, shift, count;
  const std::int32_t* blocks;

  __device__ TileWork(const AttentionKernelParams& p, int item, int block_m) {
    const int tile = item % p.q_tiles;
    h = (item / p.q_tiles) % p.heads_q;
    b = item / (p.q_tiles * p.heads_q);
    hk = h / (p.heads_q / p.heads_kv);
    start_q = p.cu_seqlens_q ? p.cu_seqlens_q[b] : 0;
    start_k = p.cu_seqlens_k ? p.cu_seqlens_k[b] : 0;
    lq = p.cu_seqlens_q ? p.cu_seqlens_q[b + 1] - start_q : p.seqlen_q;
    lk = p.cu_seqlens_k ? p.cu_seqlens_k[b + 1] - start_k : p.seqlen_k;
    row0 = tile * block_m;
    shift = lk - lq;
    const int mh = p.mask_heads == 1 ? 0 : (p.mask_heads == p.heads_q ? h : hk);
    const long long mask_row = (static_cast<long long>(b) * p.mask_heads + mh) * p.num_q_blocks + row0 / p.block_q;
    count = min(max(p.kv_num_blocks[mask_row], 0), p.num_k_blocks);
    blocks = p.kv_indices + mask_row * p.num_k_blocks;
    const long long head_row = static_cast<long long>(b) * p.heads_q + h;
    positions_ = p.key_positions ? p.key_positions + head_row * p.seqlen_k : nullptr;
    block_positions_ = p.block_positions ? p.block_positions + head_row * p.num_k_blocks * 2 : nullptr;
    last_row_ = min(row0 + block_m, lq) - 1;
    causal_ = p.causal != 0;
    num_k_blocks_ = p.num_k_blocks;
    block_k_ = p.block_k;
  }

  // Key block of list entry n, or -1 when it is skipped.
  __device__ int block(int n) const {
    const int kb = blocks[n];
    if (kb < 0 || kb >= num_k_blocks_) return -1;
    const int key_begin = kb * block_k_;
    if (key_begin >= lk) return -1;
    const int first = block_positions_ ? block_positions_[2 * kb] : key_begin;
    if (causal_ && first > last_row_ + shift) return -1;
    return kb;
  }

  // Whether block kb needs the element mask: it crosses the sequence end or, causal, the tile's diagonal.
  __device__ bool needs_mask(int kb) const {
    const int key_last = (kb + 1) * block_k_ - 1;
    const int last = block_positions_ ? block_positions_[2 * kb + 1] : key_last;
    return key_last >= lk || (causal_ && last > row0 + shift);
  }

  // The original position of key row `key` (< lk) of the sequence.
  __device__ int position(int key) const { return positions_ ? positions_[key] : key; }

 private:
  int last_row_, num_k_blocks_, block_k_;
  bool causal_;
  const std::int32_t* positions_;
  const std::int32_t* block_positions_;
};

template <class Traits>
__device__ void write_padding_lse(const AttentionKernelParams& p, const TileWork& w, int first_row) {
  if (p.lse == nullptr) return;
  for (int row = first_row + static_cast<int>(threadIdx.x); row < w.row0 + Traits::kBlockM && row < p.seqlen_q;
       row += Traits::kThreads)
    p.lse[(static_cast<long long>(w.b) * p.heads_q + w.h) * p.seqlen_q + row] = -INFINITY;
}

template <class Traits>
__device__ void produce(const KernelParams<Traits>& params, const TileWork& w,
                        typename Traits::SharedStorage& shared, typename Traits::Pipeline& pipeline_k,
                        typename Traits::Pipeline& pipeline_v) {
  using namespace cute;
  using T = Traits;
  const AttentionKernelParams& p = params.base;
  const int bq = p.cu_seqlens_q ? 0 : w.b;
  const int d = T::kHeadDim;
  Tensor mQ = params.tma_q.get_tma_tensor(make_shape(params.q_extent, d, p.heads_q, params.batch_extent));
  Tensor mK = params.tma_k.get_tma_tensor(make_shape(params.k_extent, d, p.heads_kv, params.batch_extent));
  Tensor mV = params.tma_v.get_tma_tensor(make_shape(d, params.k_extent, p.heads_kv, params.batch_extent));
  Tensor gQ = local_tile(domain_offset(make_coord(w.start_q + w.row0, 0), mQ(_, _, w.h, bq)),
                         Shape<Int<T::kBlockM>, Int<T::kHeadDim>>{}, make_coord(0, 0));
  Tensor gK = local_tile(domain_offset(make_coord(w.start_k, 0), mK(_, _, w.hk, bq)),
                         Shape<Int<T::kBlockN>, Int<T::kHeadDim>>{}, make_coord(_, 0));
  Tensor gV = local_tile(domain_offset(make_coord(0, w.start_k), mV(_, _, w.hk, bq)),
                         Shape<Int<T::kHeadDim>, Int<T::kBlockN>>{}, make_coord(0, _));
  Tensor sQ = make_tensor(make_smem_ptr(shared.q.data()), typename T::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(shared.k.data()), typename T::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(shared.v.data()), typename T::SmemLayoutV{});
  auto [tQgQ, tQsQ] = tma_partition(params.tma_q, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sQ), group_modes<0, 2>(gQ));
  auto [tKgK, tKsK] = tma_partition(params.tma_k, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sK), group_modes<0, 2>(gK));
  auto [tVgV, tVsV] = tma_partition(params.tma_v, Int<0>{}, Layout<_1>{}, group_modes<0, 2>(sV), group_modes<0, 2>(gV));

  cutlass::arch::ClusterTransactionBarrier::arrive_and_expect_tx(&shared.q_barrier, T::kQBytes);
  copy(params.tma_q.with(shared.q_barrier), tQgQ, tQsQ);
  auto state_k = cutlass::make_producer_start_state<typename T::Pipeline>();
  auto state_v = cutlass::make_producer_start_state<typename T::Pipeline>();
  for (int n = 0; n < w.count; ++n) {
    const int kb = w.block(n);
    if (kb < 0) continue;
    pipeline_k.producer_acquire(state_k);
    copy(params.tma_k.with(*pipeline_k.producer_get_barrier(state_k)), tKgK(_, kb), tKsK(_, state_k.index()));
    ++state_k;
    pipeline_v.producer_acquire(state_v);
    copy(params.tma_v.with(*pipeline_v.producer_get_barrier(state_v)), tVgV(_, kb), tVsV(_, state_v.index()));
    ++state_v;
  }
}

template <class Traits>
__device__ void consume(const KernelParams<Traits>& params, const TileWork& w,
                        typename Traits::SharedStorage& shared, typename Traits::Pipeline& pipeline_k,
                        typename Traits::Pipeline& pipeline_v, int warpgroup) {
  using namespace cute;
  using T = Traits;
  using Element = typename T::Element;
  const AttentionKernelParams& p = params.base;
  const int t = threadIdx.x % 128;
  Tensor sQ = make_tensor(make_smem_ptr(shared.q.data()), typename T::SmemLayoutQ{});
  Tensor sK = make_tensor(make_smem_ptr(shared.k.data()), typename T::SmemLayoutK{});
  Tensor sV = make_tensor(make_smem_ptr(shared.v.data()), typename T::SmemLayoutV{});
  typename T::MmaQK mma_qk;
  typename T::MmaPV mma_pv;
  auto thread_qk = mma_qk.get_thread_slice(t);
  auto thread_pv = mma_pv.get_thread_slice(t);
  Tensor tSrQ = thread_qk.partition_fragment_A(
      local_tile(sQ, Shape<Int<T::kWarpgroupRows>, Int<T::kHeadDim>>{}, make_coord(warpgroup, 0)));
  Tensor tSrK = thread_qk.partition_fragment_B(sK);
  Tensor tOrV = thread_pv.partition_fragment_B(sV);
  Tensor tOrO = partition_fragment_C(mma_pv, Shape<Int<T::kWarpgroupRows>, Int<T::kHeadDim>>{});
  clear(tOrO);

  const AccumulatorCoord coord(t);
  const int tile_row0 = w.row0 + warpgroup * T::kWarpgroupRows;  // this warpgroup's first row
  OnlineSoftmax softmax(p.scale_log2);
  typename T::Pipeline::PipelineState state_k, state_v;
  cutlass::arch::ClusterTransactionBarrier::wait(&shared.q_barrier, 0);
  for (int n = 0; n < w.count; ++n) {
    const int kb = w.block(n);
    if (kb < 0) continue;
    Tensor tSrS = partition_fragment_C(mma_qk, Shape<Int<T::kWarpgroupRows>, Int<T::kBlockN>>{});
    pipeline_k.consumer_wait(state_k);
    warpgroup_gemm<true>(mma_qk, tSrQ, tSrK(_, _, _, state_k.index()), tSrS);
    pipeline_k.consumer_release(state_k);
    ++state_k;
    if (w.needs_mask(kb)) {
      const int key0 = kb * T::kBlockN;
      // Registers i .. i + 3 (i a multiple of 4) are columns col(i) and col(i) + 1 of both row halves.
#pragma unroll
      for (int i = 0; i < size(tSrS); i += 4) {
        const int key = key0 + coord.col(i);
        const int at[2] = {key < w.lk ? w.position(key) : 0, key + 1 < w.lk ? w.position(key + 1) : 0};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = e & 1, row = tile_row0 + coord.row(i + e);
          if (key + c >= w.lk || (p.causal && at[c] > row + w.shift)) tSrS(i + e) = -INFINITY;
        }
      }
    }
    softmax.step(tSrS, tOrO);
    Tensor tOrP = convert_scores_to_operand<Element, T::kBlockN>(tSrS);
    pipeline_v.consumer_wait(state_v);
    warpgroup_fence_operand(tOrP);
    warpgroup_gemm<false>(mma_pv, tOrP, tOrV(_, _, _, state_v.index()), tOrO);
    pipeline_v.consumer_release(state_v);
    ++state_v;
  }

  float inverse[2], lse[2];
  softmax.finish(inverse, lse);
  Element* out = static_cast<Element*>(p.out) + w.b * p.o_batch + w.h * p.o_head;
  cutlass::NumericArrayConverter<Element, float, 2> convert;
#pragma unroll
  for (int i = 0; i < size(tOrO); i += 2) {
    const int row = tile_row0 + coord.row(i);
    if (row >= w.lq) continue;
    const int r = AccumulatorCoord::row_half(i);
    cutlass::Array<float, 2> values;
    values[0] = tOrO(i) * inverse[r];
    values[1] = tOrO(i + 1) * inverse[r];
    *reinterpret_cast<cutlass::Array<Element, 2>*>(out + (w.start_q + row) * p.o_token + coord.col(i)) =
        convert(values);
  }
  if (p.lse != nullptr && t % 4 == 0) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int row = tile_row0 + coord.row_base + 8 * r;
      if (row < p.seqlen_q)
        p.lse[(static_cast<long long>(w.b) * p.heads_q + w.h) * p.seqlen_q + row] = row < w.lq ? lse[r] : -INFINITY;
    }
  }
}

template <class Traits>
__global__ void __launch_bounds__(Traits::kThreads, 1)
    block_sparse_attention_kernel(const __grid_constant__ KernelParams<Traits> params) {
  using T = Traits;
  extern __shared__ __align__(1024) unsigned char shared_bytes[];
  auto& shared = *reinterpret_cast<typename T::SharedStorage*>(shared_bytes);
  const AttentionKernelParams& p = params.base;
  const TileWork w(p, p.schedule[blockIdx.x], T::kBlockM);
  if (w.row0 >= w.lq) {  // a tile past a shorter sequence's end (varlen): only LSE padding to write
    write_padding_lse<T>(p, w, w.row0);
    return;
  }
  const int warpgroup = threadIdx.x / 128;
  const bool producer = warpgroup == 0;
  typename T::Pipeline::Params pipe{};
  pipe.transaction_bytes = T::kTileBytes;
  pipe.role = producer ? T::Pipeline::ThreadCategory::Producer : T::Pipeline::ThreadCategory::Consumer;
  pipe.is_leader = threadIdx.x == 0;
  pipe.num_consumers = 128 * T::kConsumerWarpgroups;
  if (threadIdx.x == 0) cutlass::arch::ClusterTransactionBarrier::init(&shared.q_barrier, 1);
  typename T::Pipeline pipeline_k(shared.pipeline_k, pipe, cute::Shape<cute::_1, cute::_1, cute::_1>{});
  typename T::Pipeline pipeline_v(shared.pipeline_v, pipe, cute::Shape<cute::_1, cute::_1, cute::_1>{});
  __syncthreads();
  if (producer) {
    cutlass::arch::warpgroup_reg_dealloc<T::kProducerRegisters>();
    if (threadIdx.x == 0) produce<T>(params, w, shared, pipeline_k, pipeline_v);
  } else {
    cutlass::arch::warpgroup_reg_alloc<T::kConsumerRegisters>();
    consume<T>(params, w, shared, pipeline_k, pipeline_v, warpgroup - 1);
  }
}

}  // namespace sparsefill::cuda::wgmma
