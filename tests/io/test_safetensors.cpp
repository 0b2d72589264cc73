#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "sparsefill/error.hpp"
#include "sparsefill/io.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

TEST(Safetensors, RoundTripsSeveralTensorsAndMetadata) {
  std::mt19937_64 rng(testing::fresh_seed());
  const HostTensor q = testing::random_tensor(DType::kBF16, {1, 7, 4, 16}, rng);
  const HostTensor k = testing::random_tensor(DType::kFP16, {1, 7, 2, 16}, rng);
  const HostTensor f = testing::random_tensor(DType::kFP32, {3}, rng);
  HostTensor flags(DType::kBool, {5});
  flags.ptr<std::uint8_t>()[2] = 1;
  const std::string path = testing::temp_path(".safetensors");
  write_safetensors(path, {{"q", q.view()}, {"k", k.view()}, {"f", f.view()}, {"flags", flags.view()}},
                    {{"layer", "3"}});
  const SafetensorsContents c = read_safetensors(path);
  EXPECT_EQ(c.metadata.at("layer"), "3");
  EXPECT_EQ(c.tensors.at("q").to_doubles(), q.to_doubles());
  EXPECT_EQ(c.tensors.at("k").dtype(), DType::kFP16);
  EXPECT_EQ(c.tensors.at("k").to_doubles(), k.to_doubles());
  EXPECT_EQ(c.tensors.at("flags").to_doubles(), flags.to_doubles());
  EXPECT_EQ(read_tensor(path + ":f").to_doubles(), f.to_doubles());
  EXPECT_THROW(read_tensor(path), Error);  // four tensors: a name is needed
  EXPECT_THROW(read_tensor(path + ":nope"), Error);
  std::remove(path.c_str());
}

TEST(Safetensors, RejectsCorruptedFiles) {
  std::mt19937_64 rng(testing::fresh_seed());
  const HostTensor t = testing::random_tensor(DType::kFP32, {4, 4}, rng);
  const std::string good = testing::temp_path(".safetensors");
  write_safetensors(good, {{"t", t.view()}});
  std::ifstream in(good, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  const std::string bad = testing::temp_path("_bad.safetensors");
  auto rejects = [&](const std::string& b, const char* why) {
    std::ofstream(bad, std::ios::binary) << b;
    EXPECT_THROW(read_safetensors(bad), Error) << why;
  };
  rejects(bytes.substr(0, 4), "no header length");
  rejects(bytes.substr(0, 20), "header cut");
  rejects(bytes.substr(0, bytes.size() - 1), "data cut");
  std::string b = bytes;
  b[7] = 0x7F;
  rejects(b, "header length huge");
  b = bytes;
  b.replace(b.find("\"F32\""), 5, "\"C64\"");
  rejects(b, "dtype");
  b = bytes;
  b.replace(b.find("[4,4]"), 5, "[4,8]");
  rejects(b, "shape does not match offsets");
  b = bytes;
  b[9] = '[';
  rejects(b, "not an object");
  b = bytes;
  b.replace(b.find("\"data_offsets\""), 14, "\"data_offzets\"");
  rejects(b, "missing offsets");
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

TEST(Safetensors, FailedWriteLeavesNothing) {
  HostTensor t(DType::kFP32, {2});
  const std::string dir = testing::temp_path("_no_such_dir");
  EXPECT_THROW(write_safetensors(dir + "/x.safetensors", {{"t", t.view()}}), Error);
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_THROW(write_safetensors(testing::temp_path(".safetensors"), {{"__metadata__", t.view()}}), Error);
}

}  // namespace
}  // namespace sparsefill
