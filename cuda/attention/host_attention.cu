// gpu_block_sparse_attention: host tensors through the device kernel (see gpu_attention.hpp).
#include <cuda_runtime.h>

#include <string>
#include <utility>
#include <vector>

#include "common/device_array.hpp"
#include "sparsefill/cuda/block_sparse_attention.hpp"
#include "sparsefill/device.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/gpu_attention.hpp"

namespace sparsefill {
using cuda::check_device;
using cuda::DeviceArray;
using cuda::upload;

void gpu_block_sparse_attention(const TensorView& q, const TensorView& k, const TensorView& v,
                                const BlockMask& mask, bool causal, const TensorView& out,
                                const TensorView& lse, const std::vector<std::int32_t>& key_order) {
  require(cuda_device_count() > 0, "device", "no CUDA device: " + cuda_device_description());
  const AttentionProblem p = describe_attention(q, k, v);
  mask.validate_for(p);
  for (const TensorView* t : {&q, &k, &v})
    require(t->is_contiguous(), "q", "host tensors must be contiguous for the GPU path");
  require(out.rank == q.rank && out.is_contiguous() && out.numel() == q.numel() && is_floating(out.dtype),
          "out", "must be a contiguous floating tensor of q's shape");
  if (lse.data) {
    require(lse.dtype == DType::kFP32 && lse.numel() == p.batch * p.heads_q * p.max_seqlen_q(), "lse",
            "must be fp32 [batch, heads_q, seqlen_q]");
  }
  const std::size_t es = dtype_size(q.dtype);
  DeviceArray dq = upload(q.data, q.numel() * es), dk = upload(k.data, k.numel() * es),
              dv = upload(v.data, v.numel() * es);
  if (!key_order.empty()) {
    require(static_cast<std::int64_t>(key_order.size()) == p.batch * p.heads_q * p.max_seqlen_k(), "key_order",
            "expected batch * heads_q * seqlen_k entries");
  }
  DeviceArray order = upload(key_order.data(), key_order.size() * 4);
  DeviceArray counts = upload(mask.kv_num_blocks().data(), mask.kv_num_blocks().size() * 4);
  DeviceArray indices = upload(mask.kv_indices().data(), mask.kv_indices().size() * 4);
  DeviceArray dout(q.numel() * es),
      dlse(static_cast<std::size_t>(p.batch * p.heads_q * p.max_seqlen_q()) * 4);
  cuda::BlockSparseAttentionArgs args;
  args.q = q;
  args.q.data = dq.get();
  args.k = k;
  args.k.data = dk.get();
  args.v = v;
  args.v.data = dv.get();
  args.out = q;
  args.out.data = dout.get();
  args.lse = static_cast<float*>(dlse.get());
  args.mask = {static_cast<const std::int32_t*>(counts.get()),
               static_cast<const std::int32_t*>(indices.get()),
               mask.heads(),
               mask.num_q_blocks(),
               mask.num_k_blocks(),
               mask.block_q(),
               mask.block_k()};
  args.causal = causal;
  args.key_order = key_order.empty() ? nullptr : static_cast<const std::int32_t*>(order.get());
  cuda::BlockSparseAttention::validate(args);
  DeviceArray workspace(cuda::BlockSparseAttention::workspace_size(args));
  cuda::BlockSparseAttention::plan(args, workspace.get(), nullptr);
  cuda::BlockSparseAttention::run(args, workspace.get(), nullptr);
  std::vector<unsigned char> host_out(q.numel() * es);
  check_device(cudaMemcpy(host_out.data(), dout.get(), host_out.size(), cudaMemcpyDeviceToHost), "copy to host");
  for (std::int64_t i = 0; i < q.numel(); ++i)
    store_from_double(out.data, out.dtype, i, load_as_double(host_out.data(), q.dtype, i));
  if (lse.data)
    check_device(cudaMemcpy(lse.data, dlse.get(), lse.numel() * 4, cudaMemcpyDeviceToHost), "copy to host");
}

}  // namespace sparsefill
