// File formats: .npy and .safetensors tensors (bf16, fp16, fp32, fp64, int32, bool) and block masks.
//
// Readers validate every header field against the file size and never read past the end; a malformed file is
// an Error naming the path. Writers write to a temporary file and rename it, so a failed write leaves
// nothing. bf16 in .npy uses the descr '<V2' (as ml_dtypes/numpy write a bfloat16 array); fp16 is '<f2'.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "sparsefill/block_mask.hpp"
#include "sparsefill/tensor.hpp"

namespace sparsefill {

HostTensor read_npy(const std::string& path);
void write_npy(const std::string& path, const TensorView& tensor);

struct SafetensorsContents {
  std::map<std::string, HostTensor> tensors;
  std::map<std::string, std::string> metadata;
};
SafetensorsContents read_safetensors(const std::string& path);
void write_safetensors(const std::string& path,
                       const std::vector<std::pair<std::string, TensorView>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Reads one tensor: "file.npy", "file.safetensors" (must hold exactly one tensor) or "file.safetensors:name".
HostTensor read_tensor(const std::string& spec);

// Writes a text file atomically (JSON reports, tables).
void write_text_file(const std::string& path, const std::string& text);

// Masks: ".safetensors" stores kv_num_blocks [B,Hm,nQb] and kv_indices [B,Hm,nQb,nKb] (int32) with the block
// sizes in the metadata; ".npy" stores the dense bool block map [B,Hm,nQb,nKb] (block size given on reading).
void write_block_mask(const std::string& path, const BlockMask& mask);
BlockMask read_block_mask(const std::string& path, std::int64_t npy_block_size = kDefaultBlockSize);

}  // namespace sparsefill
