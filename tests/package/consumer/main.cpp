// A separate project using the installed library: dense attention on a tiny scene must keep every block.
#include <cstdio>

#include "sparsefill/sparsefill.hpp"

int main() {
  sparsefill::SceneConfig config;
  config.seqlen = 200;
  config.heads_q = 4;
  config.heads_kv = 2;
  const sparsefill::Scene scene = sparsefill::generate_scene(config);
  auto selector = sparsefill::make_selector("dense");
  const sparsefill::DenseReference dense =
      sparsefill::compute_dense_reference(scene.q.view(), scene.k.view(), scene.v.view(), {});
  const sparsefill::Evaluation e =
      sparsefill::evaluate_selector(*selector, scene.q.view(), scene.k.view(), scene.v.view(), dense, {});
  std::printf("consumer: density %.3f, output error %.2e\n", e.density.overall, e.error.overall);
  return e.density.overall == 1.0 && e.error.overall == 0.0 ? 0 : 1;
}
