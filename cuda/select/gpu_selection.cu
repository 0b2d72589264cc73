// Host side of the GPU selectors (see gpu_selection.hpp): validation, workspace layout, launches.
//
// Prism: one launch (pooled_pipeline.cuh) that pools Q and K a chunk of heads at a time, with each pooled
// block's band energies, computes a chunk's band multipliers once it is pooled and scores its mask rows (one
// warp a row) while the next chunk is pooled. Mean pooling (every rule: t1, t2, t4, t5, top-k): the same
// launch with one band of every dim and no calibration. PBS-Attn: its key order (the proxy's launches),
// then the keys pooled in that order and the rows scored (pooling its queries in the row kernel). RRAttention
// and XAttention: the stride kernels (stride_selection.cu). MInference and FlexPrefill: the last-rows
// estimates (minference_selection.cu, flexprefill_selection.cu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>

#include "common/cuda_check.hpp"
#include "common/workspace_align.hpp"
#include "select/flexprefill_selection.hpp"
#include "select/last_rows_params.hpp"
#include "select/minference_selection.hpp"
#include "select/pbs_importance.cuh"
#include "select/pbs_kernels.cuh"
#include "select/pooled_pipeline_launch.cuh"
#include "select/prism_bands.hpp"
#include "select/selection_geometry.hpp"
#include "select/stride_selection.hpp"
#include "sparsefill/cuda/gpu_selection.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill::cuda {
namespace {

static_assert(select::kMaxBandDims >= kMaxHeadDim, "a band may hold every dim");

// Parts of the workspace. PBS pools its queries inside the row kernel (it needs no band statistics) and puts
// the pooled keys where the proxy's importance was once the keys are ranked: importance (then pooled keys) and
// the proxy's chunk statistics.
struct Workspace {
  double *pooled_q, *pooled_k, *energy_q, *energy_k, *scales;
  double *importance, *partial;  // PBS
  unsigned* control;             // the pipeline's (Prism, mean pooling)
};
constexpr int kParts = 6;

struct PbsShape {
  bool on;
  int segment, chunks;
};
PbsShape pbs_shape(const std::string& method, const SelectorSettings& settings, const Geometry& g) {
  return {method == "pbs", static_cast<int>(settings.pbs.segment), last_rows_chunks(g)};
}

// Whether the selection calibrates its bands (Prism's energy-based temperatures).
bool calibrates(const std::string& method, const SelectorSettings& settings) {
  return method == "prism" && settings.prism.calibrate;
}

// Byte sizes of the workspace parts; `energies`: Prism's calibration (the pooled blocks' band energies).
std::size_t sizes(const Geometry& g, const PbsShape& pbs, bool energies, std::int64_t block,
                  std::size_t (&bytes)[kParts]) {
  const std::size_t bq = static_cast<std::size_t>(g.batch) * g.heads_q, d = static_cast<std::size_t>(g.d);
  const std::size_t key_heads = static_cast<std::size_t>(g.batch) * (pbs.on ? g.heads_q : g.heads_kv);
  bytes[0] = sizeof(double) * (pbs.on ? std::max(bq * g.lk, key_heads * g.nk * d) : bq * g.nq * d);
  bytes[1] = sizeof(double) * (pbs.on ? bq * pbs.chunks * block * 2 : key_heads * g.nk * d);
  bytes[2] = energies ? sizeof(double) * bq * g.nq * 3 : 0;
  bytes[3] = energies ? sizeof(double) * g.batch * g.heads_kv * g.nk * 3 : 0;
  bytes[4] = pbs.on ? 0 : sizeof(double) * bq * 2;  // PBS scales every logit by 1 / sqrt(d)
  const int stages = static_cast<int>(g.batch) *
                     select::pipeline_chunks(static_cast<int>(g.heads_q), static_cast<int>(g.heads_kv));
  bytes[5] = pbs.on ? 0 : sizeof(unsigned) * select::pipeline_control_words(stages);
  std::size_t total = 0;
  for (std::size_t& b : bytes) total += (b = align256(b));
  return total;
}

Workspace carve(const Geometry& g, const PbsShape& pbs, bool energies, std::int64_t block, void* base) {
  std::size_t bytes[kParts];
  sizes(g, pbs, energies, block, bytes);
  double* parts[kParts];
  auto* cursor = static_cast<unsigned char*>(base);
  for (int i = 0; i < kParts; ++i) {
    parts[i] = reinterpret_cast<double*>(cursor);
    cursor += bytes[i];
  }
  if (pbs.on) return {nullptr, parts[0], parts[2], parts[3], parts[4], parts[0], parts[1], nullptr};
  return {parts[0], parts[1], parts[2], parts[3],
          parts[4], nullptr,  nullptr,  reinterpret_cast<unsigned*>(parts[5])};
}

select::Band to_band(const std::vector<std::int64_t>& dims, double p) {
  select::Band band{};
  band.count = static_cast<int>(dims.size());
  for (std::size_t i = 0; i < dims.size(); ++i) band.dims[i] = static_cast<int>(dims[i]);
  band.p = p;
  return band;
}

std::vector<std::int64_t> all_dims(int d) {
  std::vector<std::int64_t> dims(static_cast<std::size_t>(d));
  for (int c = 0; c < d; ++c) dims[c] = c;
  return dims;
}

// A pooling job of q (keys = false) or k into `out`, with per-block energies into `energy` when not null; PBS
// pools keys per query head through its key order.
select::PoolJob pool_job(const TensorView& t, const Geometry& g, bool keys, const std::int32_t* order,
                         double* out, double* energy) {
  const Strides st = strides_of(t, g.varlen);
  select::PoolJob job = select::pool_job(t.data, st.batch, st.token, st.head, keys,
                                         keys && !order ? g.heads_kv : g.heads_q, keys ? g.nk : g.nq, out);
  job.group = order ? g.heads_q / g.heads_kv : 1;
  job.order = order;
  job.width = g.lk;
  job.energy = energy;
  return job;
}

// One pool_blocks_kernel launch of p's jobs.
template <typename Element>
void pool(select::PoolParams& p, int batch, cudaStream_t s) {
  select::launch_pooling<Element>(
      p, batch,
      [&](auto kernel, unsigned ctas, unsigned sequences, int threads, std::size_t smem,
          const select::PoolParams& params) {
        if (smem > 0)
          check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)),
                     "pooling shared memory opt-in");
        kernel<<<dim3(ctas, sequences), threads, smem, s>>>(params);
      });
}

// The proxy's three launches (pbs_importance.cuh) for head_dim kD.
template <typename Element, int kD>
void proxy_importance(const select::LastRowsParams& p, const Geometry& g, const PbsShape& pbs,
                      cudaStream_t s) {
  constexpr std::size_t kSmem = select::importance_smem_bytes<Element, kD>();
  check_cuda(cudaFuncSetAttribute(select::pbs_importance_kernel<Element, kD>,
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmem)),
             "PBS importance shared memory opt-in");
  const dim3 grid(static_cast<unsigned>(pbs.chunks), static_cast<unsigned>(g.heads_q), static_cast<unsigned>(g.batch));
  select::pbs_importance_kernel<Element, kD><<<grid, select::kImportanceThreads, kSmem, s>>>(p, 0);
  select::pbs_row_offsets_kernel<<<dim3(1, static_cast<unsigned>(g.heads_q), static_cast<unsigned>(g.batch)),
                                   select::last_rows_threads(p.rows), 0, s>>>(p);
  select::pbs_importance_kernel<Element, kD><<<grid, select::kImportanceThreads, kSmem, s>>>(p, 1);
}

// proxy_importance for the instance kD of head_dim d (a multiple of 32 up to kImportanceMaxDim).
template <typename Element, int kD = 32>
void proxy_importance_for_dim(int d, const select::LastRowsParams& p, const Geometry& g, const PbsShape& pbs,
                              cudaStream_t s) {
  if constexpr (kD < select::kImportanceMaxDim) {
    if (d > kD) return proxy_importance_for_dim<Element, kD + 32>(d, p, g, pbs, s);
  }
  proxy_importance<Element, kD>(p, g, pbs, s);
}

// PBS's proxy importance and segmented ranking into args.key_order.
template <typename Element>
void permute_keys(const GpuSelectionArgs& args, const Geometry& g, const select::Lengths& lengths, const PbsShape& pbs,
                  const Workspace& w, cudaStream_t s) {
  select::LastRowsParams p = last_rows_params(args, g, lengths);
  p.rows = lengths.block;
  p.scale = 1.4426950408889634 / std::sqrt(static_cast<double>(g.d));  // log2(e) / sqrt(d)
  p.segment = pbs.segment;
  p.partial = w.partial;
  p.chunks = pbs.chunks;
  p.importance = w.importance;
  p.key_order = args.key_order;
  proxy_importance_for_dim<Element>(g.d, p, g, pbs, s);  // check_pbs: d a multiple of 32, at most kImportanceMaxDim
  select::segment_rank_kernel<<<dim3(static_cast<unsigned>((g.lk + pbs.segment - 1) / pbs.segment),
                                     static_cast<unsigned>(g.heads_q), static_cast<unsigned>(g.batch)),
                                pbs.segment, 0, s>>>(p);
}

template <typename Element, int kItems>
void score_rows(const select::ScoringParams& p, const Geometry& g, cudaStream_t s) {
  const std::size_t smem = select::score_rows_smem_bytes(g.d, kItems);
  check_cuda(cudaFuncSetAttribute(select::score_rows_kernel<Element, kItems>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  static_cast<int>(smem)),
             "selection shared memory opt-in");
  constexpr int kRows = select::score_rows_per_cta(kItems);
  const select::ScoreRowsGrid grid = select::score_rows_grid(g.batch, g.heads_q, g.heads_kv, g.nq, kItems);
  select::score_rows_kernel<Element, kItems><<<dim3(grid.x, grid.y, grid.z), kRows * 32, smem, s>>>(p);
}

// PBS's conditions on its inputs (algorithms.md §3.3; no device reads).
void check_pbs(const SelectorSettings& settings, const GpuSelectionArgs& args, const Geometry& g) {
  const std::int64_t segment = settings.pbs.segment;
  require(args.causal, "causal", "PBS-Attn is defined for causal attention only");
  require(segment >= args.block_size && segment % args.block_size == 0 && segment <= select::kMaxSegment,
          "pbs.segment", "must be a multiple of the block size " + std::to_string(args.block_size) + " and at most " +
                             std::to_string(select::kMaxSegment) + " on the GPU");
  require(settings.pbs.tau > 0 && settings.pbs.tau <= 1, "pbs.tau", "must be in (0, 1]");
  require(g.d % 32 == 0 && g.d <= select::kImportanceMaxDim, "q",
          "the GPU PBS selector takes head_dim a multiple of 32 up to " + std::to_string(select::kImportanceMaxDim) +
              ", got " + std::to_string(g.d));
  require_16_byte_rows(args, "pbs");
  if (g.varlen) {
    require(args.cu_seqlens_k == args.cu_seqlens_q, "cu_seqlens_k",
            "PBS-Attn needs seqlen_q == seqlen_k: pass the same device array as cu_seqlens_q");
  } else {
    require(g.lq == g.lk, "k", "PBS-Attn needs seqlen_q == seqlen_k (prefill without a prefix)");
  }
  require(args.key_order != nullptr, "key_order", "PBS writes its key order: pass [batch, heads_q, max_seqlen_k] int32");
}

}  // namespace

GpuSelection::GpuSelection(const std::string& method, const SelectorSettings& settings)
    : method_(method), settings_(settings) {
  const std::vector<std::string> known = methods();
  require(std::find(known.begin(), known.end(), method) != known.end(), "method",
          "'" + method + "' has no GPU selector (GPU: prism, meanpool, rr, xattn, pbs, minference, flexprefill); select on the CPU");
  if (method != "prism") make_selector(method, settings);  // the CPU's checks of the method's rule settings
}

std::vector<std::string> GpuSelection::methods() {
  return {"prism", "meanpool", "rr", "xattn", "pbs", "minference", "flexprefill"};
}

void GpuSelection::validate(const GpuSelectionArgs& args) const {
  const Geometry g = geometry_of(args);
  if (method_ == "prism") prism_bands(settings_.prism, g.d, args.rope_layout);
  if (is_stride_method(method_)) validate_stride_selection(method_, settings_, args, g);
  if (method_ == "minference") validate_minference_selection(settings_, args, g);
  if (method_ == "flexprefill") validate_flexprefill_selection(settings_, args, g);
  if (method_ == "pbs") {
    check_pbs(settings_, args, g);
    require(is_device_pointer(args.key_order), "key_order", "must point to device memory");
  }
  for (const auto& [ptr, name] : {std::pair<const void*, const char*>{args.q.data, "q"},
                                  {args.k.data, "k"},
                                  {args.kv_num_blocks, "mask.kv_num_blocks"},
                                  {args.kv_indices, "mask.kv_indices"}})
    require(is_device_pointer(ptr), name, "must point to device memory");
  if (g.varlen) {
    require(is_device_pointer(args.cu_seqlens_q), "cu_seqlens_q", "must point to device memory");
    require(is_device_pointer(args.cu_seqlens_k), "cu_seqlens_k", "must point to device memory");
  }
}

std::size_t GpuSelection::workspace_size(const GpuSelectionArgs& args) const {
  const Geometry g = geometry_of(args);
  if (is_stride_method(method_)) return stride_workspace_size(method_, settings_, args, g);
  if (method_ == "minference") return minference_workspace_size(settings_, args, g);
  if (method_ == "flexprefill") return flexprefill_workspace_size(settings_, args, g);
  if (method_ == "pbs") check_pbs(settings_, args, g);
  std::size_t bytes[kParts];
  return sizes(g, pbs_shape(method_, settings_, g), calibrates(method_, settings_), args.block_size, bytes);
}

void GpuSelection::run(const GpuSelectionArgs& args, void* workspace, void* stream) const {
  const Geometry g = geometry_of(args);
  require(workspace != nullptr || workspace_size(args) == 0, "workspace", "is null (allocate workspace_size bytes)");
  auto s = static_cast<cudaStream_t>(stream);
  if (is_stride_method(method_)) {
    run_stride_selection(method_, settings_, args, g, workspace, s);
    return;
  }
  if (method_ == "minference") {
    run_minference_selection(settings_, args, g, workspace, s);
    return;
  }
  if (method_ == "flexprefill") {
    run_flexprefill_selection(settings_, args, g, workspace, s);
    return;
  }
  const PbsShape pbs = pbs_shape(method_, settings_, g);
  if (pbs.on) check_pbs(settings_, args, g);
  const Workspace w = carve(g, pbs, calibrates(method_, settings_), args.block_size, workspace);
  const select::Lengths lengths{g.varlen ? args.cu_seqlens_q : nullptr, g.varlen ? args.cu_seqlens_k : nullptr, g.lq,
                                g.lk, static_cast<int>(args.block_size)};
  const bool bf16 = args.q.dtype == DType::kBF16;
  if (pbs.on) (bf16 ? permute_keys<__nv_bfloat16> : permute_keys<__half>)(args, g, lengths, pbs, w, s);

  select::ScoringParams p{};
  p.pooled_q = w.pooled_q;
  const Strides q_strides = strides_of(args.q, g.varlen);
  p.q = args.q.data;
  p.q_batch = q_strides.batch, p.q_token = q_strides.token, p.q_head = q_strides.head;
  p.pooled_k = w.pooled_k;
  p.scales = w.scales;
  p.batch = g.batch, p.heads_q = g.heads_q, p.heads_kv = pbs.on ? g.heads_q : g.heads_kv, p.d = g.d, p.nq = g.nq;
  p.nk = g.nk;
  p.lengths = lengths;
  p.causal = args.causal ? 1 : 0;
  p.kv_num_blocks = args.kv_num_blocks;
  p.kv_indices = args.kv_indices;
  const int calibrate = calibrates(method_, settings_) ? 1 : 0;
  if (method_ == "prism") {
    const PrismBands bands = prism_bands(settings_.prism, g.d, args.rope_layout);
    p.bands = 2;
    p.band[0] = to_band(bands.high.dims, bands.high.p);
    p.band[1] = to_band(bands.low.dims, bands.low.p);
    p.force_sink = settings_.prism.force_sink;
    p.force_diagonal = settings_.prism.force_recent;
  } else if (pbs.on) {
    p.bands = 1;
    p.band[0] = to_band(all_dims(g.d), settings_.pbs.tau);
    p.band[1] = p.band[0];
    p.rule = select::kT2;
    p.segment_blocks = static_cast<int>(pbs.segment / args.block_size);
    p.key_order = args.key_order;
    p.width = g.lk;
  } else {
    p.bands = 1;
    p.band[0] = to_band(all_dims(g.d), settings_.meanpool.threshold);
    p.band[1] = p.band[0];
    const std::string& rule = settings_.meanpool.rule;
    p.rule = rule == "t1" ? select::kT1 : rule == "t2" ? select::kT2 : rule == "t4" ? select::kT4
           : rule == "t5" ? select::kT5 : select::kTopK;
    p.top_k = static_cast<int>(std::min<std::int64_t>(settings_.meanpool.top_k, 1 << 30));
    p.force_sink = settings_.meanpool.force_sink;
    p.force_diagonal = settings_.meanpool.force_diagonal;
  }
  if (!pbs.on) {
    select::PipelineParams pipeline{};
    pipeline.scoring = p;
    pipeline.scales = w.scales;
    select::PoolParams& pooling = pipeline.pooling;
    pooling.lengths = lengths;
    pooling.d = g.d;
    pooling.jobs = 2;
    pooling.job[0] = pool_job(args.q, g, false, nullptr, w.pooled_q, calibrate ? w.energy_q : nullptr);
    pooling.job[1] = pool_job(args.k, g, true, nullptr, w.pooled_k, calibrate ? w.energy_k : nullptr);
    select::set_band_bits(p.band[0], pooling.band_bits[0]);
    select::set_band_bits(p.band[1], pooling.band_bits[1]);
    pipeline.calibrate = calibrate;
    pipeline.control = w.control;
    (bf16 ? select::launch_pooled_pipeline<__nv_bfloat16> : select::launch_pooled_pipeline<__half>)(pipeline,
                                                                                                    s);
    check_cuda(cudaGetLastError(), "selection kernels launch");
    return;
  }
  // PBS: its keys pooled in its key order (its queries are pooled by the row kernel), no calibration.
  select::PoolParams pooling;
  pooling.lengths = lengths;
  pooling.d = g.d;
  pooling.job[pooling.jobs++] = pool_job(args.k, g, true, args.key_order, w.pooled_k, nullptr);
  (bf16 ? pool<__nv_bfloat16> : pool<__half>)(pooling, g.batch, s);
  p.scales = nullptr;
  p.fixed_scale = 1.0 / std::sqrt(static_cast<double>(g.d));
  // Blocks per lane: the smallest capacity that holds every key block (registers follow it).
  if (g.nk <= 8 * 32) {
    (bf16 ? score_rows<__nv_bfloat16, 8> : score_rows<__half, 8>)(p, g, s);
  } else if (g.nk <= 32 * 32) {
    (bf16 ? score_rows<__nv_bfloat16, 32> : score_rows<__half, 32>)(p, g, s);
  } else {
    (bf16 ? score_rows<__nv_bfloat16, 64> : score_rows<__half, 64>)(p, g, s);
  }
  check_cuda(cudaGetLastError(), "selection kernels launch");
}

}  // namespace sparsefill::cuda
