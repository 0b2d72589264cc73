// End-to-end benchmark of sparse prefill on the GPU (not a test): a built-in scene (default llama31-like,
// Llama-3.1-8B shape: 32/8 heads, d 128, bf16, causal) at --len tokens; for each method, the selection time
// alone (GpuSelection::run), the whole prefill_attention (select + plan + attend) and, by difference, the
// attention; the mask's density, and recall (exp(lse - lse_dense), mean over (head, query block)) and output
// error (relative L2) against our dense path (method "dense", every visible block) on the same inputs.
// Medians of --reps timed runs after a warm-up of at least 100 ms (bench_common.hpp), CUDA events on the
// default stream; the selection is also timed as replays of a CUDA graph captured from GpuSelection::run
// ("graph ms": its device time without the host work before its first launch), its samples interleaved with
// the eager call's, and "host ms" is the host time of one eager call of GpuSelection::run until it returns
// (its launches queued). With --mask-dir, each method's mask is written as
// mask_<len>_<label>.npy so that bench/peers.py times FlexAttention on it. A method entry may set its
// selector's parameters: "rr:key-sums=rounded" (label rr.key-sums-rounded).
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_common.hpp"
#include "sparsefill/block_mask.hpp"
#include "sparsefill/cuda/gpu_selection.hpp"
#include "sparsefill/cuda/prefill_attention.hpp"
#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"
#include "sparsefill/metrics.hpp"
#include "sparsefill/scene.hpp"

namespace {

using namespace sparsefill;
using bench::check;
using bench::median_ms;
using bench::split;

struct DeviceTensor {
  void* ptr = nullptr;
  std::size_t bytes = 0;
  explicit DeviceTensor(std::size_t n) : bytes(n) { check(cudaMalloc(&ptr, std::max<std::size_t>(n, 1)), "malloc"); }
  ~DeviceTensor() { cudaFree(ptr); }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
};

template <typename T>
std::vector<T> download(const void* device, std::size_t count) {
  std::vector<T> host(count);
  check(cudaMemcpy(host.data(), device, count * sizeof(T), cudaMemcpyDeviceToHost), "download");
  return host;
}

// One --methods entry "METHOD[:name=value]...": the method, its settings and a file-safe label.
struct MethodEntry {
  std::string method, label;
  SelectorSettings settings;
};
MethodEntry parse_entry(const std::string& entry) {
  const std::vector<std::string> items = split(entry, ':');
  MethodEntry out;
  out.method = out.label = items.front();
  for (std::size_t i = 1; i < items.size(); ++i) {
    const std::size_t eq = items[i].find('=');
    if (eq == std::string::npos) throw Error("--methods", "expected name=value in '" + entry + "'");
    const std::string name = items[i].substr(0, eq), value = items[i].substr(eq + 1);
    const std::vector<ParamSpec> specs = out.settings.params(out.method);
    const auto spec = std::find_if(specs.begin(), specs.end(), [&](const ParamSpec& s) { return s.name == name; });
    if (spec == specs.end()) throw Error("--methods", out.method + " has no parameter '" + name + "'");
    switch (spec->kind) {
      case ParamSpec::Kind::kDouble: *static_cast<double*>(spec->target) = std::stod(value); break;
      case ParamSpec::Kind::kInt: *static_cast<std::int64_t*>(spec->target) = std::stoll(value); break;
      case ParamSpec::Kind::kBool: *static_cast<bool*>(spec->target) = value == "1" || value == "true"; break;
      case ParamSpec::Kind::kChoice:
        if (std::find(spec->choices.begin(), spec->choices.end(), value) == spec->choices.end())
          throw Error("--methods", "'" + value + "' is not a choice of " + out.method + "." + name);
        *static_cast<std::string*>(spec->target) = value;
    }
    out.label += "." + name + "-" + value;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::int64_t len = 131072;
  int reps = 5;
  std::string scene_name = "llama31-like", methods = "dense,prism,meanpool", mask_dir;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--len") len = std::stoll(value);
    else if (flag == "--reps") reps = std::stoi(value);
    else if (flag == "--scene") scene_name = value;
    else if (flag == "--methods") methods = value;
    else if (flag == "--mask-dir") mask_dir = value;
    else {
      std::fprintf(stderr, "unknown flag %s (flags: --len L --reps N --scene NAME --methods dense,prism,... --mask-dir DIR)\n",
                   flag.c_str());
      return 2;
    }
  }
  if (split(methods).front() != "dense") {
    std::fprintf(stderr, "--methods must start with dense (the baseline of recall and error)\n");
    return 2;
  }
  std::vector<MethodEntry> entries;
  try {
    for (const std::string& entry : split(methods)) entries.push_back(parse_entry(entry));
  } catch (const Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  const auto generation_start = std::chrono::steady_clock::now();
  SceneConfig config;
  config.preset = scene_name;
  config.seqlen = len;
  const Scene scene = generate_scene(config);
  const double generation_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - generation_start).count();
  const TensorView hq = scene.q.view(), hk = scene.k.view(), hv = scene.v.view();
  const AttentionProblem problem = describe_attention(hq, hk, hv);
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, 0), "device");
  std::printf("device %s; scene %s, %lld tokens, %lld/%lld heads, d %lld, %s, causal, block 128 (scene %.0f s)\n",
              prop.name, scene_name.c_str(), static_cast<long long>(len), static_cast<long long>(problem.heads_q),
              static_cast<long long>(problem.heads_kv), static_cast<long long>(problem.head_dim),
              dtype_name(hq.dtype).c_str(), generation_s);

  DeviceTensor q(scene.q.size_bytes()), k(scene.k.size_bytes()), v(scene.v.size_bytes()), out(scene.q.size_bytes());
  check(cudaMemcpy(q.ptr, scene.q.data(), q.bytes, cudaMemcpyHostToDevice), "upload q");
  check(cudaMemcpy(k.ptr, scene.k.data(), k.bytes, cudaMemcpyHostToDevice), "upload k");
  check(cudaMemcpy(v.ptr, scene.v.data(), v.bytes, cudaMemcpyHostToDevice), "upload v");
  const std::size_t lse_count = static_cast<std::size_t>(problem.heads_q * len);
  DeviceTensor lse(lse_count * sizeof(float));
  cuda::PrefillAttentionArgs args;
  args.q = hq;
  args.q.data = q.ptr;
  args.k = hk;
  args.k.data = k.ptr;
  args.v = hv;
  args.v.data = v.ptr;
  args.out = hq;
  args.out.data = out.ptr;
  args.lse = static_cast<float*>(lse.ptr);

  std::vector<float> dense_lse;
  HostTensor dense_out(hq.dtype, scene.q.shape());
  std::printf("%-10s %8s %8s %10s %10s %9s %8s %12s %10s %8s\n", "method", "density", "recall", "out err",
              "select ms", "graph ms", "host ms", "attention ms", "total ms", "ws MB");
  for (const MethodEntry& parsed : entries) {
    const std::string& method = parsed.method;
    const SelectorSettings& settings = parsed.settings;
    DeviceTensor workspace(cuda::prefill_attention_workspace_size(args, method, settings));
    const double total_ms =
        median_ms(reps, [&] { cuda::prefill_attention(args, method, settings, workspace.ptr, nullptr); });
    double select_ms = 0, graph_ms = 0, host_ms = 0, selection_mb = 0;
    if (method != "dense") {
      const cuda::GpuSelection selection(method, settings);
      const cuda::DeviceBlockMask mask = cuda::mask_in_workspace(args, method, workspace.ptr);
      cuda::GpuSelectionArgs sargs{args.q, args.k, true, 128, scene.rope.layout,
                                   const_cast<std::int32_t*>(mask.kv_num_blocks),
                                   const_cast<std::int32_t*>(mask.kv_indices)};
      DeviceTensor key_order(method == "pbs" ? static_cast<std::size_t>(problem.heads_q) * len * 4 : 0);
      if (method == "pbs") sargs.key_order = static_cast<std::int32_t*>(key_order.ptr);
      DeviceTensor selection_ws(selection.workspace_size(sargs));
      selection_mb = selection_ws.bytes / 1e6;
      // The eager call (default stream) and the graph replay interleaved, so that both see the same state of
      // the GPU (the end-to-end reps just before leave it at its power limit).
      bench::EventTimer timer;
      const bench::CapturedGraph graph([&](cudaStream_t s) { selection.run(sargs, selection_ws.ptr, s); });
      const std::array<double, 2> medians = bench::interleaved_medians<2>(
          reps, {[&] {
                   return timer.time(nullptr,
                                     [&](cudaStream_t) { selection.run(sargs, selection_ws.ptr, nullptr); });
                 },
                 [&] { return timer.time(graph.stream(), [&](cudaStream_t) { graph.launch(); }); }});
      select_ms = medians[0];
      graph_ms = medians[1];
      host_ms = bench::median_host_ms(reps, [&] { selection.run(sargs, selection_ws.ptr, nullptr); });
      cuda::prefill_attention(args, method, settings, workspace.ptr, nullptr);  // the outputs of this method
    }
    check(cudaDeviceSynchronize(), "run");
    const cuda::DeviceBlockMask dm = cuda::mask_in_workspace(args, method, workspace.ptr);
    const BlockMask mask = BlockMask::from_arrays(
        1, dm.heads, dm.num_q_blocks, dm.num_k_blocks, 128, 128,
        download<std::int32_t>(dm.kv_num_blocks, static_cast<std::size_t>(dm.heads * dm.num_q_blocks)),
        download<std::int32_t>(dm.kv_indices, static_cast<std::size_t>(dm.heads * dm.num_q_blocks * dm.num_k_blocks)));
    if (!mask_dir.empty() && method != "dense" && method != "pbs")  // PBS masks index permuted keys
      write_block_mask(mask_dir + "/mask_" + std::to_string(len) + "_" + parsed.label + ".npy", mask);
    const std::vector<float> method_lse = download<float>(lse.ptr, lse_count);
    HostTensor method_out(hq.dtype, scene.q.shape());
    check(cudaMemcpy(method_out.data(), out.ptr, out.bytes, cudaMemcpyDeviceToHost), "download out");
    if (method == "dense") {
      dense_lse = method_lse;
      check(cudaMemcpy(dense_out.data(), out.ptr, out.bytes, cudaMemcpyDeviceToHost), "download out");
    }
    double recall = 1.0, error = 0.0;
    if (!dense_lse.empty()) {
      const RecallReport r = recall_from_lse(make_view(const_cast<float*>(method_lse.data()), DType::kFP32,
                                                       {1, problem.heads_q, len}),
                                             make_view(dense_lse.data(), DType::kFP32, {1, problem.heads_q, len}),
                                             problem, 128);
      recall = summarize(r.head_mean).mean;
      error = output_error(method_out.view(), dense_out.view(), problem).overall;
    }
    std::printf("%-10s %8.4f %8.4f %10.3e %10.3f %9.3f %8.3f %12.3f %10.3f %8.1f\n", parsed.label.c_str(),
                mask_density(mask, problem, true).overall, recall, error, select_ms, graph_ms, host_ms,
                total_ms - select_ms, total_ms, selection_mb);
  }
  return 0;
}
