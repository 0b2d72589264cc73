// The GGUF reader on files the test writes (metadata, every dequantised type by hand, corrupted variants) and
// on the real SmolLM2 file fetched by scripts/fetch_model.sh.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <fstream>

#include "sparsefill/error.hpp"
#include "sparsefill/gguf.hpp"
#include "support/gguf_writer.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill {
namespace {

std::string write_file(const std::vector<unsigned char>& bytes) {
  const std::string path = testing::temp_path(".gguf");
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  return path;
}

std::vector<unsigned char> f32_bytes(const std::vector<float>& values) {
  std::vector<unsigned char> out(values.size() * 4);
  std::memcpy(out.data(), values.data(), out.size());
  return out;
}

// A file with every supported value and tensor kind; dequantised values are known by hand.
testing::GgufWriter sample() {
  testing::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_uint32("llama.block_count", 2);
  w.add_float32("llama.rope.freq_base", 100000.0f);
  w.add_bool("tokenizer.ggml.add_bos_token", 0);
  w.add_string_array("tokenizer.ggml.tokens", {"a", "b", "<s>"});
  w.add_int32_array("tokenizer.ggml.token_type", {1, 1, 3});
  w.add_tensor("f32", {3, 2}, 0, f32_bytes({1, 2, 3, 4, 5, 6}));
  w.add_tensor("f16", {2}, 1, {0x00, 0x3C, 0x00, 0xC0});  // 1.0, -2.0
  // Q8_0: d = 0.25 (fp16 0x3400), q_j = j - 4.
  std::vector<unsigned char> q8 = {0x00, 0x34};
  for (int j = 0; j < 32; ++j) q8.push_back(static_cast<unsigned char>(static_cast<std::int8_t>(j - 4)));
  w.add_tensor("q8", {32}, 8, q8);
  // Q4_1: d = 0.5 (0x3800), m = -1 (0xBC00), byte j = low nibble j % 16, high nibble 15 - j % 16.
  std::vector<unsigned char> q4 = {0x00, 0x38, 0x00, 0xBC};
  for (int j = 0; j < 16; ++j) q4.push_back(static_cast<unsigned char>((j % 16) | ((15 - j % 16) << 4)));
  w.add_tensor("q4", {32}, 3, q4);
  return w;
}

TEST(Gguf, ReadsMetadataAndDequantisesEveryTypeByHand) {
  const std::string path = write_file(sample().bytes());
  const GgufFile f = GgufFile::read(path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 2u);
  EXPECT_FLOAT_EQ(static_cast<float>(f.get_float("llama.rope.freq_base")), 100000.0f);
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens"), (std::vector<std::string>{"a", "b", "<s>"}));
  EXPECT_EQ(f.get_ints("tokenizer.ggml.token_type"), (std::vector<std::int64_t>{1, 1, 3}));
  EXPECT_THROW(f.get_uint("general.architecture"), Error);
  EXPECT_THROW(f.get_string("missing.key"), Error);
  const HostTensor f32 = f.dequantize("f32");
  EXPECT_EQ(f32.shape(), (std::vector<std::int64_t>{2, 3}));  // ggml dims reversed
  EXPECT_EQ(f32.to_doubles(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(f.dequantize("f16").to_doubles(), (std::vector<double>{1.0, -2.0}));
  const std::vector<double> q8 = f.dequantize("q8").to_doubles();
  for (int j = 0; j < 32; ++j) EXPECT_DOUBLE_EQ(q8[j], 0.25 * (j - 4)) << j;
  const std::vector<double> q4 = f.dequantize("q4").to_doubles();
  for (int j = 0; j < 16; ++j) {
    EXPECT_DOUBLE_EQ(q4[j], 0.5 * j - 1.0) << j;              // low nibbles: elements 0..15
    EXPECT_DOUBLE_EQ(q4[j + 16], 0.5 * (15 - j) - 1.0) << j;  // high nibbles: elements 16..31
  }
  EXPECT_THROW(f.dequantize("nope"), Error);
  std::remove(path.c_str());
}

TEST(Gguf, RejectsTruncatedAndCorruptedFiles) {
  const std::vector<unsigned char> good = sample().bytes();
  auto rejects = [](std::vector<unsigned char> bytes, const std::string& why) {
    const std::string path = write_file(bytes);
    EXPECT_THROW(GgufFile::read(path), Error) << why;
    std::remove(path.c_str());
  };
  // Every cut inside the header and tensor table, and one inside the data.
  for (std::size_t cut = 0; cut + 1 < 400 && cut < good.size(); cut += 7) {
    rejects(std::vector<unsigned char>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut)),
            "cut at " + std::to_string(cut));
  }
  rejects(std::vector<unsigned char>(good.begin(), good.end() - 3), "data cut");
  std::vector<unsigned char> b = good;
  b[0] = 'X';
  rejects(b, "magic");
  b = good;
  b[4] = 4;
  rejects(b, "version 4");
  b = good;
  b[16] = 0xFF;  // metadata count becomes huge
  rejects(b, "metadata count");
  b = good;
  b[24] = 0xFF;  // first key length byte: a string longer than the file
  b[30] = 0x7F;
  rejects(b, "key length");
  testing::GgufWriter bad_bool;
  bad_bool.add_bool("flag", 2);
  rejects(bad_bool.bytes(), "bool 2");
  testing::GgufWriter bad_rows;
  bad_rows.add_tensor("q8", {31}, 8, std::vector<unsigned char>(34, 0));
  rejects(bad_rows.bytes(), "partial block");
  testing::GgufWriter five_dims;
  five_dims.add_tensor("t", {1, 1, 1, 1, 1}, 0, f32_bytes({1}));
  rejects(five_dims.bytes(), "five dims");
  testing::GgufWriter short_data;
  short_data.add_tensor("t", {64}, 0, f32_bytes({1, 2}));  // declares 64 floats, holds 2
  rejects(short_data.bytes(), "data past the end");
  testing::GgufWriter duplicate;
  duplicate.add_uint32("k", 1);
  duplicate.add_uint32("k", 2);
  rejects(duplicate.bytes(), "duplicate key");
}

TEST(Gguf, ReadsTheRealSmolLM2File) {
  const std::string path =
      std::string(SPARSEFILL_SOURCE_DIR) + "/.deps/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::ifstream(path).good()) GTEST_SKIP() << "model not fetched (scripts/fetch_model.sh)";
  const GgufFile f = GgufFile::read(path);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_uint("llama.block_count"), 30u);
  EXPECT_EQ(f.get_uint("llama.attention.head_count"), 9u);
  EXPECT_EQ(f.get_uint("llama.attention.head_count_kv"), 3u);
  EXPECT_EQ(f.get_uint("llama.embedding_length"), 576u);
  EXPECT_EQ(f.get_uint("llama.rope.dimension_count"), 64u);
  EXPECT_DOUBLE_EQ(f.get_float("llama.rope.freq_base"), 100000.0);
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens").size(), 49152u);
  EXPECT_EQ(f.tensors().size(), 272u);
  const HostTensor q = f.dequantize("blk.0.attn_q.weight");  // Q4_1
  EXPECT_EQ(q.shape(), (std::vector<std::int64_t>{576, 576}));
  EXPECT_TRUE(all_finite(q.view()));
  const HostTensor embedding = f.dequantize("token_embd.weight");  // Q8_0
  EXPECT_EQ(embedding.shape(), (std::vector<std::int64_t>{49152, 576}));
  EXPECT_TRUE(all_finite(embedding.view()));
}

}  // namespace
}  // namespace sparsefill
