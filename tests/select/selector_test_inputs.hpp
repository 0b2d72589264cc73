// Small hand-designed q/k/v for selector tests: fp32, constant vectors per block, so pooled scores are known.
#pragma once
#include <cmath>
#include <cstdint>

#include "sparsefill/tensor.hpp"

namespace sparsefill::testing {

struct DesignedInputs {
  HostTensor q, k, v;
  DesignedInputs(std::int64_t seqlen, std::int64_t heads_q, std::int64_t heads_kv, std::int64_t dim)
      : q(DType::kFP32, {1, seqlen, heads_q, dim}),
        k(DType::kFP32, {1, seqlen, heads_kv, dim}),
        v(DType::kFP32, {1, seqlen, heads_kv, dim}) {}
  float& q_at(std::int64_t t, std::int64_t h, std::int64_t c) {
    return q.ptr<float>()[(t * q.shape()[2] + h) * q.shape()[3] + c];
  }
  float& k_at(std::int64_t t, std::int64_t h, std::int64_t c) {
    return k.ptr<float>()[(t * k.shape()[2] + h) * k.shape()[3] + c];
  }
  // Sets dim c of every token in [first, last) of query head h (or key head h) to value.
  void fill_q(std::int64_t first, std::int64_t last, std::int64_t h, std::int64_t c, float value) {
    for (std::int64_t t = first; t < last; ++t) q_at(t, h, c) = value;
  }
  void fill_k(std::int64_t first, std::int64_t last, std::int64_t h, std::int64_t c, float value) {
    for (std::int64_t t = first; t < last; ++t) k_at(t, h, c) = value;
  }
};

}  // namespace sparsefill::testing
