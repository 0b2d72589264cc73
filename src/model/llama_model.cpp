// Llama forward pass (design note): weights are dequantised to fp32 once at load (135M parameters: ~0.5 GB).
// A forward over N tokens keeps the residual stream [N, hidden]; each projection is one sgemm against the
// [out, in] weight. Attention goes through reference_attention (dense) or a selector plus the block-sparse
// reference, on [1, N, heads, head_dim] fp32 views, so the real model exercises exactly the library's
// attention path. generate() recomputes the prefix for each decoded token with dense attention: simple and
// exact, and cheap at this size.
#include "sparsefill/llama_model.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "sparsefill/error.hpp"
#include "sparsefill/reference_attention.hpp"
#include "sparsefill/rope.hpp"

namespace sparsefill {
namespace {

std::vector<float> load_tensor(const GgufFile& f, const std::string& name, std::vector<std::int64_t> shape) {
  const HostTensor t = f.dequantize(name);
  require(t.shape() == shape, name, "has an unexpected shape");
  return std::vector<float>(t.ptr<float>(), t.ptr<float>() + t.numel());
}

// y[n, out] = x[n, in] . w[out, in]^T
void linear(const std::vector<float>& x, const std::vector<float>& w, std::int64_t n, std::int64_t in,
            std::int64_t out, std::vector<float>& y) {
  y.assign(static_cast<std::size_t>(n * out), 0.0f);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n), static_cast<int>(out),
              static_cast<int>(in), 1.0f, x.data(), static_cast<int>(in), w.data(), static_cast<int>(in),
              0.0f, y.data(), static_cast<int>(out));
}

void rms_norm(const std::vector<float>& x, const std::vector<float>& weight, std::int64_t n, std::int64_t dim,
              double eps, std::vector<float>& y) {
  y.resize(x.size());
  for (std::int64_t r = 0; r < n; ++r) {
    double ss = 0;
    for (std::int64_t c = 0; c < dim; ++c) ss += static_cast<double>(x[r * dim + c]) * x[r * dim + c];
    const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
    for (std::int64_t c = 0; c < dim; ++c) y[r * dim + c] = x[r * dim + c] * inv * weight[c];
  }
}

}  // namespace

LlamaModel LlamaModel::load(const GgufFile& f) {
  require(f.get_string("general.architecture") == "llama", "general.architecture", "is not llama");
  LlamaModel m;
  LlamaConfig& c = m.config_;
  c.layers = static_cast<std::int64_t>(f.get_uint("llama.block_count"));
  c.hidden = static_cast<std::int64_t>(f.get_uint("llama.embedding_length"));
  c.ffn = static_cast<std::int64_t>(f.get_uint("llama.feed_forward_length"));
  c.heads_q = static_cast<std::int64_t>(f.get_uint("llama.attention.head_count"));
  c.heads_kv = static_cast<std::int64_t>(f.get_uint("llama.attention.head_count_kv"));
  c.head_dim = c.hidden / c.heads_q;
  c.rope_theta = f.get_float("llama.rope.freq_base");
  c.norm_eps = f.get_float("llama.attention.layer_norm_rms_epsilon");
  require(c.layers >= 1 && c.hidden % c.heads_q == 0 && c.heads_q % c.heads_kv == 0, "llama",
          "inconsistent geometry");
  const HostTensor embedding = f.dequantize("token_embd.weight");
  c.vocab = embedding.shape()[0];
  require(embedding.shape()[1] == c.hidden, "token_embd.weight", "width differs from the embedding length");
  m.embedding_.assign(embedding.ptr<float>(), embedding.ptr<float>() + embedding.numel());
  m.output_norm_ = load_tensor(f, "output_norm.weight", {c.hidden});
  bool has_output = false;
  for (const auto& t : f.tensors()) has_output = has_output || t.name == "output.weight";
  if (has_output) m.output_ = load_tensor(f, "output.weight", {c.vocab, c.hidden});
  const std::int64_t q_out = c.heads_q * c.head_dim, kv_out = c.heads_kv * c.head_dim;
  for (std::int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    Layer layer;
    layer.attn_norm = load_tensor(f, p + "attn_norm.weight", {c.hidden});
    layer.wq = load_tensor(f, p + "attn_q.weight", {q_out, c.hidden});
    layer.wk = load_tensor(f, p + "attn_k.weight", {kv_out, c.hidden});
    layer.wv = load_tensor(f, p + "attn_v.weight", {kv_out, c.hidden});
    layer.wo = load_tensor(f, p + "attn_output.weight", {c.hidden, q_out});
    layer.ffn_norm = load_tensor(f, p + "ffn_norm.weight", {c.hidden});
    layer.w_gate = load_tensor(f, p + "ffn_gate.weight", {c.ffn, c.hidden});
    layer.w_up = load_tensor(f, p + "ffn_up.weight", {c.ffn, c.hidden});
    layer.w_down = load_tensor(f, p + "ffn_down.weight", {c.hidden, c.ffn});
    m.layers_.push_back(std::move(layer));
  }
  return m;
}

HostTensor LlamaModel::forward(const std::vector<std::int32_t>& tokens, const AttentionChoice& attention,
                               const std::function<void(const LayerQkv&)>& capture) const {
  const LlamaConfig& c = config_;
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  require(n >= 1, "tokens", "is empty");
  std::vector<float> x(static_cast<std::size_t>(n * c.hidden));
  for (std::int64_t t = 0; t < n; ++t) {
    require(tokens[t] >= 0 && tokens[t] < c.vocab, "tokens",
            "id " + std::to_string(tokens[t]) + " out of range");
    std::copy_n(embedding_.data() + tokens[t] * c.hidden, c.hidden, x.data() + t * c.hidden);
  }
  RopeConfig rope;
  rope.theta = c.rope_theta;
  rope.layout = RopeLayout::kInterleaved;
  const std::vector<double> freqs = rope_frequencies(c.head_dim, rope);
  std::vector<float> h, q, k, v, attn_out, o, gate, up;
  for (std::int64_t l = 0; l < c.layers; ++l) {
    const Layer& L = layers_[l];
    rms_norm(x, L.attn_norm, n, c.hidden, c.norm_eps, h);
    linear(h, L.wq, n, c.hidden, c.heads_q * c.head_dim, q);
    linear(h, L.wk, n, c.hidden, c.heads_kv * c.head_dim, k);
    linear(h, L.wv, n, c.hidden, c.heads_kv * c.head_dim, v);
    for (std::int64_t t = 0; t < n; ++t) {
      for (std::int64_t hq = 0; hq < c.heads_q; ++hq)
        apply_rope(q.data() + (t * c.heads_q + hq) * c.head_dim, c.head_dim, static_cast<double>(t), freqs,
                   rope.layout);
      for (std::int64_t hk = 0; hk < c.heads_kv; ++hk)
        apply_rope(k.data() + (t * c.heads_kv + hk) * c.head_dim, c.head_dim, static_cast<double>(t), freqs,
                   rope.layout);
    }
    const TensorView qv = make_view(q.data(), DType::kFP32, {1, n, c.heads_q, c.head_dim});
    const TensorView kv = make_view(k.data(), DType::kFP32, {1, n, c.heads_kv, c.head_dim});
    const TensorView vv = make_view(v.data(), DType::kFP32, {1, n, c.heads_kv, c.head_dim});
    if (capture) {
      LayerQkv layer{l, HostTensor(DType::kFP32, {1, n, c.heads_q, c.head_dim}),
                     HostTensor(DType::kFP32, {1, n, c.heads_kv, c.head_dim}),
                     HostTensor(DType::kFP32, {1, n, c.heads_kv, c.head_dim})};
      std::copy(q.begin(), q.end(), layer.q.ptr<float>());
      std::copy(k.begin(), k.end(), layer.k.ptr<float>());
      std::copy(v.begin(), v.end(), layer.v.ptr<float>());
      capture(layer);
    }
    attn_out.assign(q.size(), 0.0f);
    const ReferenceOutputs outputs{
        make_view(attn_out.data(), DType::kFP32, {1, n, c.heads_q, c.head_dim}), {}, {}, 0};
    if (attention.selector) {
      SelectorInputs in;
      in.q = qv;
      in.k = kv;
      in.v = vv;
      in.block_size = attention.block_size;
      in.rope_layout = rope.layout;
      const Selection s = attention.selector->select(in);
      if (s.key_order.empty()) {
        reference_attention(qv, kv, vv, {}, &s.mask, {}, outputs);
      } else {
        reference_permuted_attention(qv, kv, vv, {}, s.mask, s.key_order, {}, outputs);
      }
    } else {
      reference_attention(qv, kv, vv, {}, nullptr, {}, outputs);
    }
    linear(attn_out, L.wo, n, c.heads_q * c.head_dim, c.hidden, o);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += o[i];
    rms_norm(x, L.ffn_norm, n, c.hidden, c.norm_eps, h);
    linear(h, L.w_gate, n, c.hidden, c.ffn, gate);
    linear(h, L.w_up, n, c.hidden, c.ffn, up);
    for (std::size_t i = 0; i < gate.size(); ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
    linear(gate, L.w_down, n, c.ffn, c.hidden, o);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += o[i];
  }
  rms_norm(x, output_norm_, n, c.hidden, c.norm_eps, h);
  HostTensor logits(DType::kFP32, {n, c.vocab});
  std::vector<float> out;
  linear(h, output_.empty() ? embedding_ : output_, n, c.hidden, c.vocab, out);
  std::copy(out.begin(), out.end(), logits.ptr<float>());
  return logits;
}

std::vector<std::int32_t> LlamaModel::generate(const std::vector<std::int32_t>& prompt, std::int64_t steps,
                                               const AttentionChoice& attention) const {
  std::vector<std::int32_t> tokens = prompt, generated;
  for (std::int64_t s = 0; s < steps; ++s) {
    const HostTensor logits = forward(tokens, s == 0 ? attention : AttentionChoice{});
    const float* last = logits.ptr<float>() + (static_cast<std::int64_t>(tokens.size()) - 1) * config_.vocab;
    const auto best = static_cast<std::int32_t>(std::max_element(last, last + config_.vocab) - last);
    generated.push_back(best);
    tokens.push_back(best);
  }
  return generated;
}

}  // namespace sparsefill
