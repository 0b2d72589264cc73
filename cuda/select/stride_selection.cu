// Host side of the stride selectors (see stride_selection.hpp): settings checks, the workspace, and the
// launches. RRAttention's key sums are computed for a chunk of (sequence, KV head) slots at a time so that
// their part of the workspace stays bounded (32 MiB) at any length; each chunk's scoring launch follows its
// sums. One pass (rr.passes / xattn.passes = one) adds the tiled kernel's scratch slots after them: a bit
// word per 32 slots, zeroed before the launches, then one slot per CTA that can be resident on the device.
#include "select/stride_selection.hpp"

#include <algorithm>

#include "common/cuda_check.hpp"
#include "common/workspace_align.hpp"
#include "select/stride_kernel.cuh"
#include "select/stride_tile_launch.cuh"
#include "sparsefill/device.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill::cuda {
namespace {

constexpr std::size_t kKeySumBudget = std::size_t{32} << 20;

struct StrideSettings {
  std::int64_t stride;
  bool one_pass;
};

StrideSettings stride_settings(const std::string& method, const SelectorSettings& s) {
  return method == "rr" ? StrideSettings{s.rr.stride, s.rr.passes == "one"}
                        : StrideSettings{s.xattn.stride, s.xattn.passes == "one"};
}

// Key-sum parts: hi + lo for exact sums, hi alone for sums rounded to the input dtype.
int key_parts(const RRConfig& c) { return c.key_sums == "rounded" ? 1 : 2; }

// Bytes of one slot's key sums (all its parts) and the slots per chunk.
std::size_t slot_bytes(const Geometry& g, std::int64_t stride, int parts) {
  const std::size_t strides = static_cast<std::size_t>((g.lk + stride - 1) / stride);
  return align256(strides * static_cast<std::size_t>(g.d) * 2) * static_cast<std::size_t>(parts);
}
int slots_per_chunk(const Geometry& g, std::int64_t stride, int parts) {
  const std::size_t fit = std::max<std::size_t>(1, kKeySumBudget / slot_bytes(g, stride, parts));
  return static_cast<int>(std::min<std::size_t>(fit, static_cast<std::size_t>(g.batch) * g.heads_kv));
}

// The kernel plan of a call.
select::StrideTilePlan tile_plan(const std::string& method, const SelectorSettings& settings,
                                 const GpuSelectionArgs& args, const Geometry& g) {
  const bool rr = method == "rr";
  return select::stride_tile_plan(rr, rr ? key_parts(settings.rr) : 1, static_cast<int>(args.block_size),
                                  static_cast<int>(stride_settings(method, settings).stride),
                                  static_cast<int>(g.d), static_cast<int>(g.nk));
}

// One pass's scratch: a slot for every CTA of the tiled kernel that the current device can hold at once (its
// SMs times the CTAs whose shared memory fits an SM), and the bit words that hand them out.
struct OnePassLayout {
  int slots;
  std::size_t words_bytes, slots_bytes;
};
OnePassLayout one_pass_layout(const std::string& method, const select::StrideTilePlan& plan,
                              const Geometry& g) {
  const std::string argument = (method == "rr" ? "rr." : "xattn.") + std::string("passes");
  require(cuda_device_count() > 0, argument,
          "one pass sizes its scratch by the CUDA device's SMs; no device found");
  int device = 0, sms = 0, smem_per_sm = 0, reserved = 0;
  check_cuda(cudaGetDevice(&device), "current device");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device), "SM count");
  check_cuda(cudaDeviceGetAttribute(&smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device),
             "shared memory per SM");
  check_cuda(cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, device),
             "reserved shared memory per CTA");
  const int per_sm = std::max(1, smem_per_sm / static_cast<int>(plan.smem_bytes + reserved));
  const int slots = sms * per_sm;
  return {slots, align256(static_cast<std::size_t>((slots + 31) / 32) * sizeof(unsigned)),
          align256(select::one_pass_slot_floats(static_cast<int>(g.nk)) * sizeof(float) * slots)};
}

// The tiled kernel's parameters; for RRAttention with the TMA descriptor of its key sums, viewed as [key
// strides, d, slots of the launch, parts] (the lo part at its offset from hi; one part for rounded sums).
template <typename Element>
select::StrideTileParams<Element> tile_params(const select::StrideParams& p) {
  using namespace cute;
  using Gemm = select::StrideTileGemm<Element>;
  using E = typename Gemm::E;
  select::StrideTileParams<Element> out{p, {}, {}};
  if (!p.rr) return out;
  const int slots = p.slot_end - p.slot_begin;
  const std::int64_t slot_elements = static_cast<std::int64_t>(p.strides_max) * p.d;
  const auto* hi = static_cast<const E*>(p.key_hi);
  const std::int64_t part_stride =
      p.key_parts == 2 ? static_cast<const E*>(p.key_lo) - hi : slot_elements * slots;
  const auto keys =
      make_tensor(make_gmem_ptr(hi),
                  make_layout(make_shape(p.strides_max, p.d, slots, p.key_parts),
                              make_stride(static_cast<std::int64_t>(p.d), _1{}, slot_elements, part_stride)));
  out.key_sums = make_tma_copy(SM90_TMA_LOAD{}, keys, typename Gemm::ChunkLayout{});
  return out;
}

// The scoring launch of one chunk of slots: the tiled kernel (one or two passes) or the per-warp kernel.
template <typename Element>
void launch_scoring(const select::StrideParams& p, const select::StrideTilePlan& plan,
                    const select::OnePassScratch& one_pass, const Geometry& g, int slots, cudaStream_t s) {
  const int group = g.heads_q / g.heads_kv;
  if (plan.tiled) {
    const int heads_here = std::min(group, select::kRowGroups), blocks_here = select::kRowGroups / heads_here;
    const dim3 grid(static_cast<unsigned>((g.nq + blocks_here - 1) / blocks_here), static_cast<unsigned>(slots),
                    static_cast<unsigned>((group + heads_here - 1) / heads_here));
    select::StrideTileParams<Element> params = tile_params<Element>(p);
    params.one_pass = one_pass;
    (one_pass.words != nullptr ? select::launch_stride_tile<Element, true>
                               : select::launch_stride_tile<Element, false>)(params, plan, grid, s);
    return;
  }
  select::with_rule_items(g.nk, [&](auto items) {
    constexpr int kItems = decltype(items)::value;
    const auto kernel = p.rr ? select::stride_select_kernel<Element, kItems, true>
                             : select::stride_select_kernel<Element, kItems, false>;
    const std::size_t smem = select::stride_smem_bytes(g.nk);
    check_cuda(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)),
        "stride selection shared memory opt-in");
    const int items_q = g.nq * group;
    const dim3 grid(static_cast<unsigned>((items_q + select::kStrideWarps - 1) / select::kStrideWarps),
                    static_cast<unsigned>(slots));
    kernel<<<grid, select::kStrideWarps * 32, smem, s>>>(p);
  });
}

// Bytes of RRAttention's key sums in the workspace (0 for XAttention).
std::size_t key_sums_bytes(bool rr, const Geometry& g, std::int64_t stride, int parts) {
  return rr ? slot_bytes(g, stride, parts) * static_cast<std::size_t>(slots_per_chunk(g, stride, parts)) : 0;
}

// One pass's scratch in the workspace at `at` (after the key sums), its slot words zeroed on the stream.
select::OnePassScratch one_pass_scratch(const std::string& method, const select::StrideTilePlan& plan,
                                        const Geometry& g, unsigned char* at, cudaStream_t s) {
  const OnePassLayout layout = one_pass_layout(method, plan, g);
  select::OnePassScratch scratch{};
  scratch.words = reinterpret_cast<unsigned*>(at);
  scratch.slots_at = reinterpret_cast<float*>(at + layout.words_bytes);
  scratch.slots = layout.slots;
  scratch.tiles = select::one_pass_tiles(g.nk);
  scratch.slot_floats = static_cast<std::int64_t>(select::one_pass_slot_floats(g.nk));
  check_cuda(cudaMemsetAsync(scratch.words, 0, layout.words_bytes, s), "one-pass slot words");
  return scratch;
}

// scratch: one pass's (null words: two passes).
template <typename Element>
void run_typed(const select::StrideParams& base, const select::StrideTilePlan& plan,
               const select::OnePassScratch& scratch, const Geometry& g, bool rr, void* workspace,
               cudaStream_t s) {
  const int total_slots = g.batch * g.heads_kv;
  const int chunk = rr ? slots_per_chunk(g, base.stride, base.key_parts) : total_slots;
  const std::size_t half = rr ? slot_bytes(g, base.stride, 1) * static_cast<std::size_t>(chunk) : 0;
  auto* hi = static_cast<Element*>(workspace);
  auto* lo = rr && base.key_parts == 2
                 ? reinterpret_cast<Element*>(static_cast<unsigned char*>(workspace) + half)
                 : nullptr;
  for (int first = 0; first < total_slots; first += chunk) {
    select::StrideParams p = base;
    p.slot_begin = first;
    p.slot_end = std::min(first + chunk, total_slots);
    p.key_hi = hi;
    p.key_lo = lo;
    if (rr)
      select::key_stride_sums_kernel<Element><<<dim3(static_cast<unsigned>(p.strides_max),
                                                     static_cast<unsigned>(p.slot_end - p.slot_begin)),
                                                g.d, 0, s>>>(p, hi, lo);
    launch_scoring<Element>(p, plan, scratch, g, p.slot_end - p.slot_begin, s);
  }
}

}  // namespace

bool is_stride_method(const std::string& method) {
  return method == "rr" || method == "xattn";
}

void validate_stride_selection(const std::string& method, const SelectorSettings& settings,
                               const GpuSelectionArgs& args, const Geometry& g) {
  const std::string prefix = method == "rr" ? "rr." : "xattn.";
  const StrideSettings s = stride_settings(method, settings);
  if (method == "rr") {
    settings.rr.check(args.block_size);
  } else {
    settings.xattn.check(args.block_size);
  }
  require(g.d % 32 == 0, "q", "the GPU " + method + " selector takes head_dim a multiple of 32, got " + std::to_string(g.d));
  require_16_byte_rows(args, method);
  require(
      !s.one_pass || tile_plan(method, settings, args, g).tiled, prefix + "passes",
      "one pass takes the tiled kernel's geometry (block / stride = 16, head_dim a multiple of 128, the key "
      "blocks' rows in shared memory); use two");
}

std::size_t stride_workspace_size(const std::string& method, const SelectorSettings& settings,
                                  const GpuSelectionArgs& args, const Geometry& g) {
  validate_stride_selection(method, settings, args, g);
  const bool rr = method == "rr";
  const std::size_t sums = key_sums_bytes(rr, g, settings.rr.stride, key_parts(settings.rr));
  if (!stride_settings(method, settings).one_pass) return sums;
  const OnePassLayout layout = one_pass_layout(method, tile_plan(method, settings, args, g), g);
  return sums + layout.words_bytes + layout.slots_bytes;
}

void run_stride_selection(const std::string& method, const SelectorSettings& settings, const GpuSelectionArgs& args,
                          const Geometry& g, void* workspace, cudaStream_t stream) {
  validate_stride_selection(method, settings, args, g);
  const bool rr = method == "rr";
  select::StrideParams p{};
  static_cast<select::QkTensors&>(p) = qk_tensors(args, g);
  p.batch = g.batch, p.heads_q = g.heads_q, p.heads_kv = g.heads_kv, p.d = g.d, p.nq = g.nq, p.nk = g.nk;
  p.lengths = {g.varlen ? args.cu_seqlens_q : nullptr, g.varlen ? args.cu_seqlens_k : nullptr, g.lq, g.lk,
               static_cast<int>(args.block_size)};
  p.stride = static_cast<int>(stride_settings(method, settings).stride);
  p.strides_max = (g.lk + p.stride - 1) / p.stride;
  p.causal = args.causal ? 1 : 0;
  p.rr = rr ? 1 : 0;
  if (rr) {
    const RRConfig& c = settings.rr;
    p.mirrored = c.offset == "mirrored";
    p.key_parts = key_parts(c);
    p.rule_v2 = c.rule == "v2";
    p.t3_clean = c.t3 == "clean";
    p.tau = c.tau;
    p.keep_sink = c.keep_sink;
    p.keep_last_row = c.keep_last_row;
  } else {
    const XAttentionConfig& c = settings.xattn;
    p.t3_clean = c.t3 == "clean";
    p.tau = c.tau;
    p.keep_sink = c.keep_sink;
    p.keep_recent = c.keep_recent;
    p.chunk_tokens = static_cast<int>(c.chunk_size);
  }
  p.kv_num_blocks = args.kv_num_blocks;
  p.kv_indices = args.kv_indices;
  const select::StrideTilePlan plan = tile_plan(method, settings, args, g);
  const select::OnePassScratch scratch =
      stride_settings(method, settings).one_pass
          ? one_pass_scratch(
                method, plan, g,
                static_cast<unsigned char*>(workspace) + key_sums_bytes(rr, g, p.stride, p.key_parts), stream)
          : select::OnePassScratch{};
  (args.q.dtype == DType::kBF16 ? run_typed<__nv_bfloat16> : run_typed<__half>)(p, plan, scratch, g, rr,
                                                                                workspace, stream);
  check_cuda(cudaGetLastError(), "stride selection launch");
}

}  // namespace sparsefill::cuda
