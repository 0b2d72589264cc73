// A Llama-architecture model (SmolLM2-135M and kin) on the CPU, from a GGUF file: RMSNorm, RoPE as GGUF's
// llama weights expect it (ggml's adjacent-pair "normal" mode, i.e. the interleaved layout), GQA attention,
// SwiGLU MLP, tied or separate output head. Matrix products through OpenBLAS; attention is pluggable (dense,
// or any selector plus the block-sparse reference attention). Prefill runs the pluggable attention; decode
// steps attend densely over the cache, as the papers do.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sparsefill/gguf.hpp"
#include "sparsefill/selector.hpp"

namespace sparsefill {

struct LlamaConfig {
  std::int64_t layers = 0, hidden = 0, ffn = 0, heads_q = 0, heads_kv = 0, head_dim = 0, vocab = 0;
  double rope_theta = 10000.0, norm_eps = 1e-5;
};

// The post-RoPE q/k/v of one layer during prefill: [1, tokens, heads, head_dim] fp32.
struct LayerQkv {
  std::int64_t layer = 0;
  HostTensor q, k, v;
};

class LlamaModel {
 public:
  // Error(path) for a file that is not a llama model or lacks a tensor.
  static LlamaModel load(const GgufFile& file);
  const LlamaConfig& config() const { return config_; }

  // Prefill attention: dense when `selector` is null, else its mask (block `block_size`) with the sparse
  // reference.
  struct AttentionChoice {
    const Selector* selector = nullptr;
    std::int64_t block_size = 128;
  };
  // Logits of every position [tokens, vocab] for `tokens` (no cache); `capture` receives each layer's q/k/v.
  HostTensor forward(const std::vector<std::int32_t>& tokens, const AttentionChoice& attention,
                     const std::function<void(const LayerQkv&)>& capture = {}) const;
  // Greedy continuation: prefill with `attention`, then `steps` tokens decoded with dense attention over the
  // cache.
  std::vector<std::int32_t> generate(const std::vector<std::int32_t>& prompt, std::int64_t steps,
                                     const AttentionChoice& attention) const;

 private:
  struct Layer {
    std::vector<float> attn_norm, wq, wk, wv, wo, ffn_norm, w_gate, w_up, w_down;
  };
  LlamaConfig config_;
  std::vector<float> embedding_, output_norm_, output_;  // output_ empty when tied to the embedding
  std::vector<Layer> layers_;
};

}  // namespace sparsefill
