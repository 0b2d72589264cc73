// A Llama-architecture model (SmolLM2-135M and kin) on the CPU, from a GGUF file: RMSNorm, RoPE as GGUF's
// llama weights expect it (ggml's adjacent-pair "normal" mode, i.e. the interleaved layout), GQA attention,
// SwiGLU MLP, tied or separate output head. Matrix products and attention through OpenBLAS (attention by
// blocked_attention, the fast CPU form of the reference); attention is pluggable (dense, or any selector's
// mask). Prefill runs the pluggable attention; decode steps attend densely over everything before them, as
// with a KV cache and as the papers do.
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
  // What a sparse prefill did in one layer (ForwardOptions::layer_stats).
  struct LayerStats {
    std::int64_t layer = 0;
    double density = 0.0;      // selected / causally visible blocks over the layer's heads
    double recall_mean = 0.0;  // mean over (head, query block) of the attention mass kept, exp(lse_s - lse_d)
  };
  struct ForwardOptions {
    AttentionChoice attention;
    // 0: every token is prefill. Else tokens [prefill_tokens, n) are decode steps: dense attention over all
    // earlier tokens (what a KV cache computes), while the prefill tokens use `attention`.
    std::int64_t prefill_tokens = 0;
    std::int64_t logits_from = 0;                       // logits of positions [logits_from, n) only
    std::function<void(const LayerQkv&)> capture;       // each layer's post-RoPE q/k/v
    std::function<void(const LayerStats&)> layer_stats;  // sparse prefills only; costs a dense LSE pass
  };
  // Logits [n - logits_from, vocab] of `tokens` (no cache: the whole sequence is recomputed).
  HostTensor forward(const std::vector<std::int32_t>& tokens, const ForwardOptions& options) const;
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
