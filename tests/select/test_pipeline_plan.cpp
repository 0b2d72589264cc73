// Host tests of the pooled pipeline's work order (cuda/select/pipeline_plan.hpp) on random plans: every item
// of every stage has exactly one ticket, a stage's pooling items all come before its first row item (so a
// row item waits only on CTAs that started before it), and stage s + 1's pooling items sit among stage s's
// first `spread` row items (the row items of a stage run in index order).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "select/pipeline_plan.hpp"
#include "support/random_tensors.hpp"

namespace sparsefill::cuda::select {
namespace {

struct Tickets {
  std::vector<std::vector<int>> pool, rows;  // [stage][item]: the item's ticket, -1 if none
};

Tickets tickets_of(const PipelinePlan& p) {
  Tickets t{std::vector<std::vector<int>>(p.stages, std::vector<int>(p.pool_items, -1)),
            std::vector<std::vector<int>>(p.stages, std::vector<int>(p.row_items, -1))};
  for (int ticket = 0; ticket < pipeline_tickets(p); ++ticket) {
    const PipelineItem item = pipeline_item(p, ticket);
    EXPECT_GE(item.stage, 0);
    EXPECT_LT(item.stage, p.stages);
    int* slot = nullptr;
    if (item.work == PipelineWork::kRows) {
      EXPECT_LT(item.index, p.row_items);
      slot = &t.rows[item.stage][item.index];
    } else {
      const int j = item.work == PipelineWork::kPoolKeys ? p.query_items + item.index : item.index;
      EXPECT_LT(j, p.pool_items);
      if (item.work == PipelineWork::kPoolQueries) EXPECT_LT(item.index, p.query_items);
      slot = &t.pool[item.stage][j];
    }
    EXPECT_EQ(*slot, -1) << "ticket " << ticket << " repeats an item";
    *slot = ticket;
  }
  return t;
}

void expect_plan_order(const PipelinePlan& p) {
  SCOPED_TRACE("stages " + std::to_string(p.stages) + ", pooling " + std::to_string(p.query_items) + " + " +
               std::to_string(p.pool_items - p.query_items) + ", rows " + std::to_string(p.row_items));
  const Tickets t = tickets_of(p);
  for (int s = 0; s < p.stages; ++s) {
    int last_pool = -1, first_row = pipeline_tickets(p);
    for (const int ticket : t.pool[s]) {
      ASSERT_GE(ticket, 0) << "a pooling item of stage " << s << " has no ticket";
      last_pool = std::max(last_pool, ticket);
    }
    for (const int ticket : t.rows[s]) {
      ASSERT_GE(ticket, 0) << "a row item of stage " << s << " has no ticket";
      first_row = std::min(first_row, ticket);
    }
    EXPECT_LT(last_pool, first_row) << "stage " << s;
    if (s + 1 < p.stages)
      EXPECT_LT(t.pool[s + 1].back(), t.rows[s][p.spread - 1]) << "stage " << s + 1 << "'s pooling";
  }
}

TEST(PipelinePlan, EveryItemOnceAndEveryStagePooledBeforeItsRows) {
  expect_plan_order(pipeline_plan(8, 128, 32, 4 * 64));  // Llama-3.1-8B at 128K: 8 chunks of 4 heads
  expect_plan_order(pipeline_plan(1, 3, 1, 2));
  expect_plan_order(pipeline_plan(3, 5, 2, 1));  // fewer row items than pooling items
  const std::uint64_t seed = testing::fresh_seed();
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto draw = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  for (int trial = 0; trial < 200; ++trial)
    expect_plan_order(pipeline_plan(draw(1, 12), draw(1, 300), draw(1, 80), draw(1, 600)));
}

TEST(PipelinePlan, SpreadsPoolingOverTheFirstThirdOfTheRows) {
  EXPECT_EQ(pipeline_plan(8, 128, 32, 256).spread, 85);
  EXPECT_EQ(pipeline_plan(8, 128, 32, 1).spread, 1);
  EXPECT_EQ(pipeline_tickets(pipeline_plan(8, 128, 32, 256)), 8 * (160 + 256));
}

}  // namespace
}  // namespace sparsefill::cuda::select
