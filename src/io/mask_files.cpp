// Block masks on disk: canonical arrays in .safetensors, dense bool block maps in .npy.
#include <string>

#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"

namespace sparsefill {
namespace {

bool has_suffix(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::int64_t metadata_int(const SafetensorsContents& c, const std::string& key, const std::string& path) {
  auto it = c.metadata.find(key);
  require(it != c.metadata.end(), path, "mask metadata lacks '" + key + "'");
  try {
    return std::stoll(it->second);
  } catch (const std::exception&) {
    throw Error(path, "mask metadata '" + key + "' is not an integer");
  }
}

}  // namespace

void write_block_mask(const std::string& path, const BlockMask& mask) {
  if (has_suffix(path, ".npy")) {
    std::vector<std::uint8_t> map = block_mask_to_dense(mask);
    write_npy(path, make_view(map.data(), DType::kBool,
                              {mask.batch(), mask.heads(), mask.num_q_blocks(), mask.num_k_blocks()}));
    return;
  }
  require(has_suffix(path, ".safetensors"), path, "mask files must end in .safetensors or .npy");
  auto counts = mask.kv_num_blocks();
  auto indices = mask.kv_indices();
  write_safetensors(
      path,
      {{"kv_num_blocks",
        make_view(counts.data(), DType::kInt32, {mask.batch(), mask.heads(), mask.num_q_blocks()})},
       {"kv_indices", make_view(indices.data(), DType::kInt32,
                                {mask.batch(), mask.heads(), mask.num_q_blocks(), mask.num_k_blocks()})}},
      {{"format", "sparsefill.block_mask"},
       {"block_q", std::to_string(mask.block_q())},
       {"block_k", std::to_string(mask.block_k())}});
}

BlockMask read_block_mask(const std::string& path, std::int64_t npy_block_size) {
  if (has_suffix(path, ".npy")) {
    HostTensor map = read_npy(path);
    require(map.dtype() == DType::kBool && map.shape().size() == 4, path,
            "a .npy mask is a bool [batch, heads, nQb, nKb] array");
    const auto& s = map.shape();
    std::vector<std::uint8_t> bytes(map.ptr<std::uint8_t>(), map.ptr<std::uint8_t>() + map.numel());
    return block_mask_from_dense(bytes, s[0], s[1], s[2], s[3], npy_block_size, npy_block_size);
  }
  SafetensorsContents c = read_safetensors(path);
  auto counts = c.tensors.find("kv_num_blocks");
  auto indices = c.tensors.find("kv_indices");
  require(counts != c.tensors.end() && indices != c.tensors.end(), path,
          "mask file needs kv_num_blocks and kv_indices");
  require(counts->second.dtype() == DType::kInt32 && indices->second.dtype() == DType::kInt32, path,
          "mask arrays must be int32");
  const auto& ci = indices->second.shape();
  const auto& cc = counts->second.shape();
  require(ci.size() == 4 && cc.size() == 3 && cc[0] == ci[0] && cc[1] == ci[1] && cc[2] == ci[2], path,
          "kv_num_blocks must be [B, Hm, nQb] and kv_indices [B, Hm, nQb, nKb]");
  const std::int32_t* cp = counts->second.ptr<std::int32_t>();
  const std::int32_t* ip = indices->second.ptr<std::int32_t>();
  try {
    return BlockMask::from_arrays(ci[0], ci[1], ci[2], ci[3], metadata_int(c, "block_q", path),
                                  metadata_int(c, "block_k", path),
                                  std::vector<std::int32_t>(cp, cp + counts->second.numel()),
                                  std::vector<std::int32_t>(ip, ip + indices->second.numel()));
  } catch (const Error& e) {
    throw Error(path, e.what());
  }
}

}  // namespace sparsefill
