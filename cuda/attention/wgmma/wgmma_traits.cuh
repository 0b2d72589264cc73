// Compile-time description of the Hopper (wgmma + TMA) block-sparse attention kernel (design note).
//
// A CTA owns 128 query rows of one (sequence, query head): one producer warpgroup issues TMA loads (Q once, then
// the K and V tiles of each selected key block into two-stage rings guarded by mbarriers) and two consumer
// warpgroups of 64 rows each compute S = Q K^T (wgmma, both operands in shared memory), the online softmax in
// registers, and O += P V (wgmma with P taken straight from the score registers). A selected 128x128 mask block
// is exactly one K tile and one V tile, so sparsity costs nothing in the load path.
//
// Shared-memory layouts are the 128-byte-swizzled GMMA atoms: Q and K are K-major (head_dim contiguous, as in
// global memory); V is read as the (head_dim x keys) B operand of P V, which is MN-major in the same bytes.
#pragma once
#include <cute/arch/copy_sm90_tma.hpp>
#include <cute/atom/copy_traits_sm90_tma.hpp>
#include <cute/atom/mma_traits_sm90_gmma.hpp>
#include <cute/tensor.hpp>
#include <cutlass/numeric_types.h>
#include <cutlass/pipeline/sm90_pipeline.hpp>
#include <cstdint>

namespace sparsefill::cuda::wgmma {

using namespace cute;

template <typename Element_, int kHeadDim_>
struct AttentionTraits {
  using Element = Element_;  // cutlass::bfloat16_t or cutlass::half_t
  static constexpr int kHeadDim = kHeadDim_;
  static constexpr int kBlockM = 128;  // query rows per CTA (the mask's block_q)
  static constexpr int kBlockN = 128;  // keys per tile (the mask's block_k)
  static constexpr int kWarpgroupRows = 64;
  static constexpr int kConsumerWarpgroups = kBlockM / kWarpgroupRows;
  static constexpr int kThreads = 128 * (kConsumerWarpgroups + 1);
  static constexpr int kStages = 2;
  static constexpr int kProducerRegisters = 24;
  static constexpr int kConsumerRegisters = 240;

  using TileQK = Shape<Int<kWarpgroupRows>, Int<kBlockN>, Int<kHeadDim>>;
  using TilePV = Shape<Int<kWarpgroupRows>, Int<kHeadDim>, Int<kBlockN>>;
  using MmaQK = decltype(make_tiled_mma(GMMA::ss_op_selector<Element, Element, float, TileQK>()));
  using MmaPV = decltype(make_tiled_mma(
      GMMA::rs_op_selector<Element, Element, float, TilePV, GMMA::Major::K, GMMA::Major::MN>()));

  using SmemLayoutQ =
      decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Element>{}, Shape<Int<kBlockM>, Int<kHeadDim>>{}));
  using SmemLayoutK = decltype(tile_to_shape(GMMA::Layout_K_SW128_Atom<Element>{},
                                             Shape<Int<kBlockN>, Int<kHeadDim>, Int<kStages>>{}));
  using SmemLayoutV = decltype(tile_to_shape(GMMA::Layout_MN_SW128_Atom<Element>{},
                                             Shape<Int<kHeadDim>, Int<kBlockN>, Int<kStages>>{}));

  using Pipeline = cutlass::PipelineTmaAsync<kStages>;
  static constexpr std::uint32_t kTileBytes = kBlockN * kHeadDim * sizeof(Element);
  static constexpr std::uint32_t kQBytes = kBlockM * kHeadDim * sizeof(Element);

  struct SharedStorage {
    alignas(1024) cute::array_aligned<Element, cute::cosize_v<SmemLayoutQ>> q;
    alignas(1024) cute::array_aligned<Element, cute::cosize_v<SmemLayoutK>> k;
    alignas(1024) cute::array_aligned<Element, cute::cosize_v<SmemLayoutV>> v;
    typename Pipeline::SharedStorage pipeline_k;
    typename Pipeline::SharedStorage pipeline_v;
    alignas(8) std::uint64_t q_barrier;
  };

  // Global views the TMA descriptors are built from: q/k [tokens, head_dim, heads, batch] and v transposed,
  // [head_dim, tokens, heads, batch] (head_dim contiguous in every case).
  using GlobalStride = Stride<std::int64_t, _1, std::int64_t, std::int64_t>;
  using GlobalStrideT = Stride<_1, std::int64_t, std::int64_t, std::int64_t>;
  using GlobalShape = Shape<std::int32_t, std::int32_t, std::int32_t, std::int32_t>;
  using GlobalQK = decltype(make_tensor(make_gmem_ptr(static_cast<const Element*>(nullptr)),
                                        make_layout(GlobalShape{}, GlobalStride{})));
  using GlobalVt = decltype(make_tensor(make_gmem_ptr(static_cast<const Element*>(nullptr)),
                                        make_layout(GlobalShape{}, GlobalStrideT{})));
  using TmaQ = decltype(make_tma_copy(SM90_TMA_LOAD{}, std::declval<GlobalQK>(), SmemLayoutQ{}));
  using TmaK = decltype(make_tma_copy(SM90_TMA_LOAD{}, std::declval<GlobalQK>(), take<0, 2>(SmemLayoutK{})));
  using TmaV = decltype(make_tma_copy(SM90_TMA_LOAD{}, std::declval<GlobalVt>(), take<0, 2>(SmemLayoutV{})));
};

}  // namespace sparsefill::cuda::wgmma
