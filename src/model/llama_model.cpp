// Llama forward pass (design note): weights are dequantised to fp32 once at load (135M parameters: ~0.5 GB).
// A forward over N tokens keeps the residual stream [N, hidden]; each projection is one sgemm against the
// [out, in] weight. Attention runs on [1, N, heads, head_dim] fp32 views through blocked_attention (the
// tested fast form of the reference), dense or with a selector's mask (PBS: its key order), so the real model
// exercises the library's selectors. Decode tokens (after ForwardOptions::prefill_tokens) attend densely over
// everything before them, which is exactly what a KV cache computes; generate() recomputes the sequence per
// step that way: simple and exact, and cheap at this size.
#include "sparsefill/llama_model.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "sparsefill/blocked_attention.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/metrics.hpp"
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

// [1, count, heads, head_dim] view of rows [first, first + count) of a [n, heads * head_dim] buffer.
TensorView rows_view(const std::vector<float>& t, std::int64_t heads, std::int64_t head_dim, std::int64_t first,
                     std::int64_t count) {
  return make_view(const_cast<float*>(t.data()) + first * heads * head_dim, DType::kFP32,
                   {1, count, heads, head_dim});
}

struct LayerTensors {
  const std::vector<float>&q, &k, &v;
  std::vector<float>& out;
};

// Prefill rows through the selector (or dense), with the layer's statistics when asked for.
void attend_prefill(const LayerTensors& t, const LlamaConfig& c, std::int64_t prefill, std::int64_t layer,
                    RopeLayout layout, const LlamaModel::ForwardOptions& o) {
  const TensorView q = rows_view(t.q, c.heads_q, c.head_dim, 0, prefill);
  const TensorView k = rows_view(t.k, c.heads_kv, c.head_dim, 0, prefill);
  const TensorView v = rows_view(t.v, c.heads_kv, c.head_dim, 0, prefill);
  const TensorView out = rows_view(t.out, c.heads_q, c.head_dim, 0, prefill);
  if (!o.attention.selector) {
    blocked_attention(q, k, v, nullptr, nullptr, {}, {out, {}, {}, 0});
    return;
  }
  SelectorInputs in;
  in.q = q;
  in.k = k;
  in.v = v;
  in.block_size = o.attention.block_size;
  in.rope_layout = layout;
  const Selection s = o.attention.selector->select(in);
  const std::vector<std::int32_t>* order = s.key_order.empty() ? nullptr : &s.key_order;
  if (!o.layer_stats) {
    blocked_attention(q, k, v, &s.mask, order, {}, {out, {}, {}, 0});
    return;
  }
  HostTensor sparse_lse(DType::kFP32, {1, c.heads_q, prefill}), dense_lse(DType::kFP32, {1, c.heads_q, prefill});
  HostTensor dense_out(DType::kFP32, {1, prefill, c.heads_q, c.head_dim});
  blocked_attention(q, k, v, &s.mask, order, {}, {out, sparse_lse.view(), {}, 0});
  blocked_attention(q, k, v, nullptr, nullptr, {}, {dense_out.view(), dense_lse.view(), {}, 0});
  const AttentionProblem problem = describe_attention(q, k, v);
  const RecallReport recall = recall_from_lse(sparse_lse.view(), dense_lse.view(), problem, o.attention.block_size);
  double recall_sum = 0;
  for (double r : recall.head_mean) recall_sum += r;
  o.layer_stats({layer, mask_density(s.mask, problem, true).overall,
                 recall_sum / static_cast<double>(recall.head_mean.size())});
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

HostTensor LlamaModel::forward(const std::vector<std::int32_t>& tokens, const ForwardOptions& options) const {
  const LlamaConfig& c = config_;
  const std::int64_t n = static_cast<std::int64_t>(tokens.size());
  require(n >= 1, "tokens", "is empty");
  require(options.prefill_tokens >= 0 && options.prefill_tokens <= n, "prefill_tokens",
          "must be in [0, tokens] (0: all prefill), got " + std::to_string(options.prefill_tokens));
  require(options.logits_from >= 0 && options.logits_from < n, "logits_from",
          "must be in [0, tokens), got " + std::to_string(options.logits_from));
  const std::int64_t prefill = options.prefill_tokens > 0 ? options.prefill_tokens : n;
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
    if (options.capture) {
      LayerQkv layer{l, HostTensor(DType::kFP32, {1, n, c.heads_q, c.head_dim}),
                     HostTensor(DType::kFP32, {1, n, c.heads_kv, c.head_dim}),
                     HostTensor(DType::kFP32, {1, n, c.heads_kv, c.head_dim})};
      std::copy(q.begin(), q.end(), layer.q.ptr<float>());
      std::copy(k.begin(), k.end(), layer.k.ptr<float>());
      std::copy(v.begin(), v.end(), layer.v.ptr<float>());
      options.capture(layer);
    }
    attn_out.assign(q.size(), 0.0f);
    const LayerTensors tensors{q, k, v, attn_out};
    attend_prefill(tensors, c, prefill, l, rope.layout, options);
    if (prefill < n) {  // decode rows: dense over every earlier token (bottom-right causal)
      blocked_attention(rows_view(q, c.heads_q, c.head_dim, prefill, n - prefill),
                        rows_view(k, c.heads_kv, c.head_dim, 0, n), rows_view(v, c.heads_kv, c.head_dim, 0, n),
                        nullptr, nullptr, {}, {rows_view(attn_out, c.heads_q, c.head_dim, prefill, n - prefill), {}, {}, 0});
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
  const std::int64_t rows = n - options.logits_from;
  x.erase(x.begin(), x.begin() + options.logits_from * c.hidden);
  rms_norm(x, output_norm_, rows, c.hidden, c.norm_eps, h);
  HostTensor logits(DType::kFP32, {rows, c.vocab});
  std::vector<float> out;
  linear(h, output_.empty() ? embedding_ : output_, rows, c.hidden, c.vocab, out);
  std::copy(out.begin(), out.end(), logits.ptr<float>());
  return logits;
}

std::vector<std::int32_t> LlamaModel::generate(const std::vector<std::int32_t>& prompt, std::int64_t steps,
                                               const AttentionChoice& attention) const {
  std::vector<std::int32_t> tokens = prompt, generated;
  ForwardOptions options;
  options.attention = attention;
  options.prefill_tokens = static_cast<std::int64_t>(prompt.size());
  for (std::int64_t s = 0; s < steps; ++s) {
    options.logits_from = static_cast<std::int64_t>(tokens.size()) - 1;
    const HostTensor logits = forward(tokens, options);
    const float* last = logits.ptr<float>();
    const auto best = static_cast<std::int32_t>(std::max_element(last, last + config_.vocab) - last);
    generated.push_back(best);
    tokens.push_back(best);
  }
  return generated;
}

}  // namespace sparsefill
