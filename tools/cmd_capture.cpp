// `sparsefill capture`: run a prompt through the real model and save the post-RoPE q/k/v of chosen layers as
// .safetensors (tensors q, k, v; [1, tokens, heads, head_dim]), for `sparsefill run --q F:q --k F:k --v F:v
// --rope-layout interleaved` and the GPU kernels.
#include <fmt/core.h>

#include <fstream>
#include <set>
#include <sstream>

#include "commands.hpp"
#include "output_paths.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"
#include "sparsefill/llama_model.hpp"
#include "sparsefill/tokenizer.hpp"

namespace sparsefill::cli {
namespace {

struct CaptureFlags {
  std::string model = ".deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  std::string text_file, prompt;
  std::vector<std::int64_t> layers = {0, 15, 29};
  std::int64_t max_tokens = 2048;
  std::string out_dir = "out/capture", dtype = "bf16";
};

int run(const CaptureFlags& f) {
  std::string text = f.prompt;
  if (!f.text_file.empty()) {
    std::ifstream in(f.text_file, std::ios::binary);
    require(static_cast<bool>(in), f.text_file, "cannot open the text file");
    std::ostringstream all;
    all << in.rdbuf();
    text = all.str();
  }
  require(!text.empty(), "--prompt", "give --prompt TEXT or --text FILE");
  const GgufFile file = GgufFile::read(f.model);
  const BpeTokenizer tokenizer = BpeTokenizer::from_gguf(file);
  const LlamaModel model = LlamaModel::load(file);
  std::vector<std::int32_t> tokens = tokenizer.encode(text);
  if (static_cast<std::int64_t>(tokens.size()) > f.max_tokens) tokens.resize(static_cast<std::size_t>(f.max_tokens));
  const std::set<std::int64_t> wanted(f.layers.begin(), f.layers.end());
  for (std::int64_t l : wanted) require(l >= 0 && l < model.config().layers, "--layers", "layer " + std::to_string(l) + " out of range");
  const DType dtype = parse_dtype(f.dtype, "--dtype");
  require(dtype == DType::kBF16 || dtype == DType::kFP16 || dtype == DType::kFP32, "--dtype", "must be bf16, fp16 or fp32");
  LlamaModel::ForwardOptions options;
  options.logits_from = static_cast<std::int64_t>(tokens.size()) - 1;  // the logits are not used
  options.capture = [&](const LayerQkv& qkv) {
    if (!wanted.count(qkv.layer)) return;
    const HostTensor q = qkv.q.converted(dtype), k = qkv.k.converted(dtype), v = qkv.v.converted(dtype);
    const std::string path = f.out_dir + "/layer_" + std::to_string(qkv.layer) + ".safetensors";
    write_safetensors(path, {{"q", q.view()}, {"k", k.view()}, {"v", v.view()}},
                      {{"layer", std::to_string(qkv.layer)}, {"rope_layout", "interleaved"},
                       {"rope_theta", fmt::format("{:g}", model.config().rope_theta)}, {"tokens", std::to_string(tokens.size())}});
    fmt::print("wrote {} ({} tokens, {}/{} heads, head_dim {}, {})\n", path, tokens.size(), model.config().heads_q,
               model.config().heads_kv, model.config().head_dim, f.dtype);
  };
  model.forward(tokens, options);
  return 0;
}

}  // namespace

std::function<int()> add_capture_command(CLI::App& app) {
  auto flags = std::make_shared<CaptureFlags>();
  CaptureFlags& f = *flags;
  CLI::App* cmd = app.add_subcommand("capture", "Run text through the real model and save post-RoPE q/k/v of chosen layers");
  cmd->add_option("--model", f.model, "GGUF model file (scripts/fetch_model.sh fetches SmolLM2-135M)")->capture_default_str();
  auto* text = cmd->add_option("--text", f.text_file, "Text file to run");
  cmd->add_option("--prompt", f.prompt, "Text to run")->excludes(text);
  cmd->add_option("--layers", f.layers, "Layers to save")->delimiter(',')->capture_default_str();
  cmd->add_option("--max-tokens", f.max_tokens, "Truncate the text to this many tokens")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--out", f.out_dir, "Output folder (must exist)")
      ->capture_default_str()
      ->check(output_folder());
  cmd->add_option("--dtype", f.dtype, "Saved dtype")->capture_default_str()->check(CLI::IsMember({"bf16", "fp16", "fp32"}));
  return [flags] { return run(*flags); };
}

}  // namespace sparsefill::cli
