// `sparsefill run`: one method on a scene or on captured q/k/v files, compared with dense attention.
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>

#include "commands.hpp"
#include "output_paths.hpp"
#include "progress.hpp"
#include "run_report.hpp"
#include "selector_flags.hpp"
#include "sparsefill/device.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/evaluate.hpp"
#include "sparsefill/gpu_attention.hpp"
#include "sparsefill/io.hpp"
#include "sparsefill/picture.hpp"
#include "sparsefill/scene.hpp"

namespace sparsefill::cli {
namespace {

struct RunFlags {
  std::string scene = "llama31-like";
  std::int64_t len = 4096, batch = 1, heads_q = 0, heads_kv = 0, head_dim = 0;
  std::uint64_t seed = 0;
  double rope_theta = 0;
  std::string dtype = "bf16", rope_layout = "rotate-half";
  std::string q_file, k_file, v_file;
  std::string method = "dense", accumulation = "fp32", device = "auto";
  std::int64_t block_size = 128;
  bool non_causal = false, per_head = false;
  std::string json_out, mask_out, png_out;
  SelectorSettings settings;
};

constexpr std::int64_t kPngMassLimit = 1024;  // true-mass panels only while nQb*nKb per head is small

int run(const RunFlags& f, const CLI::App& cmd) {
  const bool from_files = cmd.count("--q") > 0;
  const std::map<std::string, RopeLayout> layouts = {{"rotate-half", RopeLayout::kRotateHalf},
                                                     {"interleaved", RopeLayout::kInterleaved}};
  RunDescription run;
  run.method = f.method;
  run.causal = !f.non_causal;
  run.block_size = f.block_size;
  require_selector_flags_of(cmd, {f.method});
  auto selector = make_selector(f.method, f.settings);

  Scene scene;
  HostTensor q, k, v;
  const auto start = std::chrono::steady_clock::now();
  if (from_files) {
    q = read_tensor(f.q_file);
    k = read_tensor(f.k_file);
    v = read_tensor(f.v_file);
    run.input = fmt::format("q {} k {} v {}", f.q_file, f.k_file, f.v_file);
  } else {
    SceneConfig config;
    config.preset = f.scene;
    config.seqlen = f.len;
    config.batch = f.batch;
    config.heads_q = f.heads_q;
    config.heads_kv = f.heads_kv;
    config.head_dim = f.head_dim;
    config.rope_theta = f.rope_theta;
    config.rope_layout = layouts.at(f.rope_layout);
    config.seed = f.seed;
    config.dtype = parse_dtype(f.dtype, "--dtype");
    scene = generate_scene(config);
    run.input =
        fmt::format("scene {} (seed {}, theta {:g}, {})", f.scene, f.seed, scene.rope.theta, f.rope_layout);
    run.heads = &scene.heads;
  }
  const TensorView qv = from_files ? q.view() : scene.q.view();
  const TensorView kv = from_files ? k.view() : scene.k.view();
  const TensorView vv = from_files ? v.view() : scene.v.view();
  run.setup_times.push_back(
      {from_files ? "load q/k/v" : "scene generation",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  run.dtype = dtype_name(qv.dtype);

  // auto: the GPU kernel when a device is present and supports the input and method; otherwise the CPU
  // reference.
  const bool gpu_fits = cuda_device_count() > 0 &&
                        (qv.dtype == DType::kBF16 || qv.dtype == DType::kFP16) &&
                        (qv.shape[3] == 64 || qv.shape[3] == 128);
  const bool use_gpu = f.device == "cuda" || (f.device == "auto" && gpu_fits);
  run.device = use_gpu ? fmt::format("cuda ({}; dense reference on the CPU)", cuda_device_description())
                       : fmt::format("cpu (CUDA device: {})", cuda_device_description());
  EvaluationOptions options;
  options.device = use_gpu ? EvaluationOptions::Device::kCuda : EvaluationOptions::Device::kCpu;
  options.causal = run.causal;
  options.block_size = f.block_size;
  options.rope_layout = layouts.at(f.rope_layout);
  options.accumulation = f.accumulation == "fp64" ? Accumulation::kFP64 : Accumulation::kFP32;
  ProgressLine progress;
  options.progress = [&](const std::string& stage, double fraction) { progress.update(stage, fraction); };
  // On the GPU, selection runs there too when the method has a GPU form (the mask equals the CPU's).
  const std::vector<std::string> gpu_methods = gpu_selector_methods();
  if (use_gpu && std::find(gpu_methods.begin(), gpu_methods.end(), f.method) != gpu_methods.end())
    selector = make_gpu_selector(f.method, f.settings);
  const DenseReference dense = compute_dense_reference(qv, kv, vv, options);
  const Evaluation e = evaluate_selector(*selector, qv, kv, vv, dense, options);
  progress.finish();

  print_run_report(run, dense, e, f.per_head);
  if (!f.json_out.empty()) write_run_json(f.json_out, run, dense, e);
  if (!f.mask_out.empty()) write_block_mask(f.mask_out, e.selection.mask);
  if (!f.png_out.empty()) {
    // The true-mass panel is in original key order, so it is left out for permuted (PBS) masks.
    const bool with_mass =
        e.selection.key_order.empty() &&
        e.selection.mask.num_q_blocks() * e.selection.mask.num_k_blocks() <= kPngMassLimit * kPngMassLimit;
    const TensorView mass = dense.block_mass.view();
    write_mask_png(f.png_out, e.selection.mask, dense.problem, run.causal, with_mass ? &mass : nullptr);
  }
  for (const auto* written : {&f.json_out, &f.mask_out, &f.png_out}) {
    if (!written->empty()) fmt::print("wrote {}\n", *written);
  }
  return 0;
}

}  // namespace

std::function<int()> add_run_command(CLI::App& app) {
  auto flags = std::make_shared<RunFlags>();
  RunFlags& f = *flags;
  CLI::App* cmd = app.add_subcommand(
      "run", "Run one selection method plus block-sparse attention and compare with dense");
  auto* scene = cmd->add_option("--scene", f.scene, "Built-in scene preset (see `sparsefill scenes`)")
                    ->capture_default_str();
  cmd->add_option("--len", f.len, "Scene sequence length in tokens")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 22));
  cmd->add_option("--batch", f.batch, "Scene batch size")->capture_default_str()->check(CLI::Range(1, 64));
  cmd->add_option("--heads-q", f.heads_q, "Scene query heads (0: the preset's)")->check(CLI::Range(0, 1024));
  cmd->add_option("--heads-kv", f.heads_kv, "Scene KV heads (0: the preset's)")->check(CLI::Range(0, 1024));
  cmd->add_option("--head-dim", f.head_dim, "Scene head dimension (0: the preset's)")
      ->check(CLI::Range(0, 256));
  cmd->add_option("--seed", f.seed, "Scene seed")->capture_default_str();
  cmd->add_option("--rope-theta", f.rope_theta, "Scene RoPE theta (0: the preset's)");
  cmd->add_option("--dtype", f.dtype, "Scene dtype")
      ->capture_default_str()
      ->check(CLI::IsMember({"bf16", "fp16", "fp32"}));
  cmd->add_option("--rope-layout", f.rope_layout, "RoPE dimension pairing of q/k")
      ->capture_default_str()
      ->check(CLI::IsMember({"rotate-half", "interleaved"}));
  auto* qf = cmd->add_option(
                    "--q", f.q_file,
                    "Query tensor [batch, seqlen_q, heads_q, head_dim]: FILE.npy or FILE.safetensors[:NAME]")
                 ->excludes(scene);
  auto* kf = cmd->add_option("--k", f.k_file, "Key tensor [batch, seqlen_k, heads_kv, head_dim] (same forms)")
                 ->excludes(scene);
  auto* vf =
      cmd->add_option("--v", f.v_file, "Value tensor [batch, seqlen_k, heads_kv, head_dim] (same forms)")
          ->excludes(scene);
  qf->needs(kf)->needs(vf);
  kf->needs(qf);
  vf->needs(qf);
  cmd->add_option("--method", f.method, "Selection method")
      ->capture_default_str()
      ->check(CLI::IsMember(selector_names()));
  cmd->add_option("--block-size", f.block_size, "Block size of the mask")
      ->capture_default_str()
      ->check(CLI::IsMember({64, 128}));
  cmd->add_flag("--non-causal", f.non_causal, "Non-causal attention (default: causal, bottom-right aligned)");
  cmd->add_option("--accumulation", f.accumulation, "CPU reference accumulation")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "fp64"}));
  cmd->add_option("--device", f.device,
                  "Where the sparse attention runs: auto (the GPU when present and supported), cpu, cuda")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  cmd->add_flag("--per-head", f.per_head, "Also print a per-head table (kind, density, recall, error)");
  cmd->add_option("--json", f.json_out, "Write the full result as JSON to FILE")->check(output_file());
  cmd->add_option("--mask-out", f.mask_out,
                  "Write the selected block mask to FILE (.safetensors canonical, .npy bool map)")
      ->check(output_file());
  cmd->add_option(
         "--png", f.png_out,
         "Draw the block mask per head (and the true block attention mass for small inputs) to FILE.png")
      ->check(output_file());
  add_selector_flags(cmd, f.settings);
  return [flags, cmd] { return run(*flags, *cmd); };
}

}  // namespace sparsefill::cli
