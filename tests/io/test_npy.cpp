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

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(Npy, RoundTripsEveryDtype) {
  std::mt19937_64 rng(testing::fresh_seed());
  for (DType dtype : {DType::kBF16, DType::kFP16, DType::kFP32, DType::kFP64}) {
    const HostTensor t = testing::random_tensor(dtype, {2, 3, 5}, rng);
    const std::string path = testing::temp_path(".npy");
    write_npy(path, t.view());
    const HostTensor back = read_npy(path);
    EXPECT_EQ(back.dtype(), dtype);
    EXPECT_EQ(back.shape(), t.shape());
    EXPECT_EQ(back.to_doubles(), t.to_doubles());
    std::remove(path.c_str());
  }
  HostTensor ints(DType::kInt32, {4});
  for (int i = 0; i < 4; ++i) ints.ptr<std::int32_t>()[i] = i * 1000 - 7;
  const std::string path = testing::temp_path(".npy");
  write_npy(path, ints.view());
  EXPECT_EQ(read_npy(path).to_doubles(), ints.to_doubles());
  std::remove(path.c_str());
}

TEST(Npy, WritesStridedViewsInLogicalOrder) {
  HostTensor t(DType::kFP32, {3, 4});
  for (int i = 0; i < 12; ++i) t.ptr<float>()[i] = static_cast<float>(i);
  TensorView transposed = t.view();
  std::swap(transposed.shape[0], transposed.shape[1]);
  std::swap(transposed.stride[0], transposed.stride[1]);
  const std::string path = testing::temp_path(".npy");
  write_npy(path, transposed);
  const HostTensor back = read_npy(path);
  EXPECT_EQ(back.shape(), (std::vector<std::int64_t>{4, 3}));
  EXPECT_EQ(back.ptr<float>()[1], 4.0f);  // element (0, 1) of the transpose
  std::remove(path.c_str());
}

TEST(Npy, RejectsCorruptedFiles) {
  std::mt19937_64 rng(testing::fresh_seed());
  const HostTensor t = testing::random_tensor(DType::kFP32, {8, 8}, rng);
  const std::string good = testing::temp_path(".npy");
  write_npy(good, t.view());
  const std::vector<char> bytes = file_bytes(good);
  const std::string bad = testing::temp_path("_bad.npy");
  auto rejects = [&](std::vector<char> b) {
    write_bytes(bad, b);
    EXPECT_THROW(read_npy(bad), Error);
  };
  for (std::size_t cut :
       {std::size_t{0}, std::size_t{5}, std::size_t{9}, std::size_t{40}, bytes.size() - 1}) {
    rejects(std::vector<char>(bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(cut)));
  }
  std::vector<char> b = bytes;
  b[0] = 'X';
  rejects(b);
  b = bytes;
  b.push_back(0);  // trailing garbage
  rejects(b);
  b = bytes;
  b[8] = static_cast<char>(0xFF);  // header length past the end
  b[9] = static_cast<char>(0xFF);
  rejects(b);
  std::string text(bytes.begin(), bytes.end());
  text.replace(text.find("<f4"), 3, "<c8");
  rejects(std::vector<char>(text.begin(), text.end()));
  text = std::string(bytes.begin(), bytes.end());
  text.replace(text.find("False"), 5, "True ");
  rejects(std::vector<char>(text.begin(), text.end()));
  EXPECT_THROW(read_npy(testing::temp_path("_missing.npy")), Error);
  std::remove(good.c_str());
  std::remove(bad.c_str());
}

}  // namespace
}  // namespace sparsefill
