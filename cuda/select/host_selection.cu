// make_gpu_selector: the GPU selectors behind the CPU Selector interface, for tools and tests (see
// gpu_attention.hpp). Each select() uploads q/k, runs GpuSelection and downloads the mask.
#include <cuda_runtime.h>

#include <cstring>

#include "common/device_array.hpp"
#include "sparsefill/cuda/gpu_selection.hpp"
#include "sparsefill/device.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/gpu_attention.hpp"

namespace sparsefill {
namespace {

class GpuSelector final : public Selector {
 public:
  GpuSelector(const std::string& method, const SelectorSettings& settings)
      : method_(method), settings_(settings), selection_(method, settings) {}
  std::string name() const override { return method_ + " (GPU)"; }

  Selection select(const SelectorInputs& in) const override {
    const AttentionProblem p = describe_attention(in.q, in.k, in.v, in.varlen);
    for (const TensorView* t : {&in.q, &in.k})
      require(t->is_contiguous(), "q", "host tensors must be contiguous for the GPU path");
    const std::size_t es = dtype_size(in.q.dtype);
    cuda::DeviceArray q = cuda::upload(in.q.data, in.q.numel() * es), k = cuda::upload(in.k.data, in.k.numel() * es);
    const std::size_t cu_bytes = p.varlen ? static_cast<std::size_t>(p.batch + 1) * 4 : 0;
    cuda::DeviceArray cu_q = cuda::upload(in.varlen.cu_seqlens_q, cu_bytes),
                      cu_k = cuda::upload(in.varlen.cu_seqlens_k, cu_bytes);
    BlockMask shape(p.batch, p.heads_q, ceil_div(p.max_seqlen_q(), in.block_size),
                    ceil_div(p.max_seqlen_k(), in.block_size), in.block_size, in.block_size);
    cuda::DeviceArray counts(shape.kv_num_blocks().size() * 4), indices(shape.kv_indices().size() * 4);
    cuda::GpuSelectionArgs args{in.q, in.k, in.causal, in.block_size, in.rope_layout,
                                static_cast<std::int32_t*>(counts.get()), static_cast<std::int32_t*>(indices.get())};
    args.q.data = q.get();
    args.k.data = k.get();
    if (p.varlen) {
      args.cu_seqlens_q = static_cast<const std::int32_t*>(cu_q.get());
      // Equal query and key lengths share one device array (PBS requires that form of seqlen_q == seqlen_k).
      const bool same = std::memcmp(in.varlen.cu_seqlens_q, in.varlen.cu_seqlens_k, cu_bytes) == 0;
      args.cu_seqlens_k = static_cast<const std::int32_t*>(same ? cu_q.get() : cu_k.get());
      args.varlen_batch = p.batch;
      args.max_seqlen_q = p.max_seqlen_q();
      args.max_seqlen_k = p.max_seqlen_k();
    }
    const bool permuted = method_ == "pbs";
    const std::size_t order_count =
        permuted ? static_cast<std::size_t>(shape.batch() * shape.heads() * p.max_seqlen_k()) : 0;
    cuda::DeviceArray order(order_count * 4);
    if (permuted) args.key_order = static_cast<std::int32_t*>(order.get());
    selection_.validate(args);
    cuda::DeviceArray workspace(selection_.workspace_size(args));
    selection_.run(args, workspace.get(), nullptr);
    std::vector<std::int32_t> host_counts(shape.kv_num_blocks().size()), host_indices(shape.kv_indices().size());
    cuda::check_device(cudaMemcpy(host_counts.data(), counts.get(), host_counts.size() * 4, cudaMemcpyDeviceToHost),
                       "copy to host");
    cuda::check_device(
        cudaMemcpy(host_indices.data(), indices.get(), host_indices.size() * 4, cudaMemcpyDeviceToHost),
        "copy to host");
    Selection out;
    out.mask = BlockMask::from_arrays(shape.batch(), shape.heads(), shape.num_q_blocks(), shape.num_k_blocks(),
                                      in.block_size, in.block_size, host_counts, host_indices);
    if (permuted) {
      out.key_order.resize(order_count);
      cuda::check_device(cudaMemcpy(out.key_order.data(), order.get(), order_count * 4, cudaMemcpyDeviceToHost),
                         "copy to host");
      out.segment = settings_.pbs.segment;
    }
    return out;
  }

 private:
  std::string method_;
  SelectorSettings settings_;
  cuda::GpuSelection selection_;
};

}  // namespace

std::vector<std::string> gpu_selector_methods() {
  return cuda::GpuSelection::methods();
}

std::unique_ptr<Selector> make_gpu_selector(const std::string& method, const SelectorSettings& settings) {
  require(cuda_device_count() > 0, "device", "no CUDA device: " + cuda_device_description());
  return std::make_unique<GpuSelector>(method, settings);
}

}  // namespace sparsefill
