#include <gtest/gtest.h>

#include <string>

#include "sparsefill/attention_problem.hpp"
#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

std::string failing_argument(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.argument();
  }
  return "<no error>";
}

struct Qkv {
  HostTensor q, k, v;
  Qkv(std::int64_t b, std::int64_t lq, std::int64_t lk, std::int64_t hq, std::int64_t hk, std::int64_t d,
      DType dt = DType::kBF16)
      : q(dt, {b, lq, hq, d}), k(dt, {b, lk, hk, d}), v(dt, {b, lk, hk, d}) {}
};

TEST(AttentionProblem, DescribesGqaShapes) {
  Qkv t(2, 100, 300, 8, 2, 64);
  const AttentionProblem p = describe_attention(t.q.view(), t.k.view(), t.v.view());
  EXPECT_EQ(p.batch, 2);
  EXPECT_EQ(p.group_size(), 4);
  EXPECT_EQ(p.kv_head_of(5), 1);
  EXPECT_EQ(p.max_seqlen_q(), 100);
  EXPECT_EQ(p.max_seqlen_k(), 300);
}

TEST(AttentionProblem, RejectsBadInputsNamingTheArgument) {
  Qkv ok(1, 16, 16, 4, 2, 64);
  EXPECT_EQ(failing_argument([&] {
              Qkv t(1, 16, 16, 6, 4, 64);
              describe_attention(t.q.view(), t.k.view(), t.v.view());
            }),
            "k");
  EXPECT_EQ(failing_argument([&] {
              Qkv t(1, 0, 16, 4, 2, 64);
              describe_attention(t.q.view(), t.k.view(), t.v.view());
            }),
            "q");
  EXPECT_EQ(failing_argument([&] {
              Qkv t(1, 16, 0, 4, 2, 64);
              describe_attention(t.q.view(), t.k.view(), t.v.view());
            }),
            "k");
  EXPECT_EQ(failing_argument([&] {
              HostTensor k(DType::kFP16, {1, 16, 2, 64});
              describe_attention(ok.q.view(), k.view(), ok.v.view());
            }),
            "k");
  EXPECT_EQ(failing_argument([&] {
              HostTensor v(DType::kBF16, {1, 16, 2, 32});
              describe_attention(ok.q.view(), ok.k.view(), v.view());
            }),
            "v");
  EXPECT_EQ(failing_argument([&] {
              HostTensor q(DType::kInt32, {1, 16, 4, 64});
              describe_attention(q.view(), ok.k.view(), ok.v.view());
            }),
            "q");
  EXPECT_EQ(failing_argument([&] {
              TensorView q = ok.q.view();
              q.stride[3] = 2;
              describe_attention(q, ok.k.view(), ok.v.view());
            }),
            "q");
  EXPECT_EQ(failing_argument([&] {
              HostTensor q(DType::kBF16, {16, 4, 64});
              describe_attention(q.view(), ok.k.view(), ok.v.view());
            }),
            "q");
  EXPECT_EQ(failing_argument([&] {
              TensorView q = ok.q.view();
              q.data = nullptr;
              describe_attention(q, ok.k.view(), ok.v.view());
            }),
            "q");
  // An empty tensor (no data at all) is named as empty, not as a null pointer.
  try {
    HostTensor k(DType::kBF16, {1, 0, 2, 64});
    describe_attention(ok.q.view(), k.view(), ok.v.view());
    ADD_FAILURE() << "an empty k was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.argument(), "k");
    EXPECT_NE(std::string(e.what()).find("is empty (shape [1, 0, 2, 64])"), std::string::npos) << e.what();
  }
}

TEST(AttentionProblem, AcceptsNonContiguousOuterStrides) {
  HostTensor big(DType::kBF16, {1, 16, 8, 64});
  TensorView q = big.view();
  q.shape[2] = 4;  // every other head slice: strides stay those of the 8-head tensor
  HostTensor k(DType::kBF16, {1, 16, 2, 64}), v(DType::kBF16, {1, 16, 2, 64});
  EXPECT_EQ(describe_attention(q, k.view(), v.view()).heads_q, 4);
}

TEST(AttentionProblem, ValidatesCuSeqlens) {
  HostTensor q(DType::kBF16, {10, 4, 64}), k(DType::kBF16, {12, 2, 64}), v(DType::kBF16, {12, 2, 64});
  std::vector<std::int32_t> cq = {0, 3, 10}, ck = {0, 5, 12};
  VarlenSequences ok{cq.data(), ck.data(), 2};
  const AttentionProblem p = describe_attention(q.view(), k.view(), v.view(), ok);
  EXPECT_TRUE(p.varlen);
  EXPECT_EQ(p.seqlen_q[1], 7);
  EXPECT_EQ(p.start_k[1], 5);
  std::vector<std::int32_t> bad_total = {0, 3, 9}, decreasing = {0, 6, 5, 12}, not_zero = {1, 3, 10};
  EXPECT_EQ(failing_argument([&] {
              describe_attention(q.view(), k.view(), v.view(), {bad_total.data(), ck.data(), 2});
            }),
            "cu_seqlens_q");
  EXPECT_EQ(failing_argument([&] {
              std::vector<std::int32_t> cq3 = {0, 3, 6, 10};
              describe_attention(q.view(), k.view(), v.view(), {cq3.data(), decreasing.data(), 3});
            }),
            "cu_seqlens_k");
  EXPECT_EQ(failing_argument([&] {
              describe_attention(q.view(), k.view(), v.view(), {not_zero.data(), ck.data(), 2});
            }),
            "cu_seqlens_q");
  EXPECT_EQ(failing_argument([&] {
              describe_attention(q.view(), k.view(), v.view(), {cq.data(), nullptr, 2});
            }),
            "cu_seqlens_k");
}

TEST(BlockVisibility, BottomRightCausal) {
  // seqlen_q 100, seqlen_k 300: query i sees keys <= i + 200.
  EXPECT_EQ(block_visibility(0, 0, 64, 64, 100, 300, true), BlockVisibility::kFull);
  EXPECT_EQ(block_visibility(0, 3, 64, 64, 100, 300, true),
            BlockVisibility::kPartial);  // keys 192..255; row 0 sees <= 200
  EXPECT_EQ(block_visibility(0, 4, 64, 64, 100, 300, true),
            BlockVisibility::kPartial);  // keys 256..299; row 63 sees <= 263
  EXPECT_EQ(block_visibility(0, 4, 64, 64, 100, 250, true),
            BlockVisibility::kNone);  // row 63 sees <= 213, no key 256
  EXPECT_EQ(visible_key_blocks(0, 64, 64, 100, 300, true), 5);
  EXPECT_EQ(visible_key_blocks(1, 64, 64, 100, 300, true), 5);
  EXPECT_EQ(visible_key_blocks(2, 64, 64, 100, 300, true), 0);  // past the end of q
  // More queries than keys: the first rows see nothing.
  EXPECT_EQ(visible_key_blocks(0, 64, 64, 300, 100, true), 0);
  EXPECT_EQ(visible_key_blocks(4, 64, 64, 300, 100, true), 2);
  EXPECT_EQ(block_visibility(1, 1, 64, 64, 200, 200, false), BlockVisibility::kFull);
}

}  // namespace
}  // namespace sparsefill
