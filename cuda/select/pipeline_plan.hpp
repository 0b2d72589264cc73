// The order of the pooled-selection pipeline's work (pooled_pipeline.cuh): host and device code, no CUDA
// types (tests/select/test_pipeline_plan.cpp).
//
// Prism and mean pooling score a head's mask rows only once its queries and keys are pooled (Prism's band
// temperatures need every pooled block of the head). The pipeline runs in one launch whose CTAs take tickets
// in start order; the work is split into stages (a sequence's chunk of query heads with their KV heads, as
// score_rows_grid chunks them), each with pooling items (blocks of the stage's queries, then of its keys)
// and row items (one score_rows tile each). Tickets run through segments: segment 0 pools stage 0; segment
// s >= 1 scores stage s - 1's rows with stage s's pooling items spread among the first third of them, so
// that a few SMs at a time pool (memory-bound work) while the others score (latency-bound work), and
// stage s is pooled before its rows' tickets come. A row item waits for its stage's pooling; every item it
// waits on holds an earlier ticket, so it is running or done and the wait ends.
#pragma once

#include "common/host_device.hpp"

namespace sparsefill::cuda::select {

struct PipelinePlan {
  int stages = 0;       // batch x head chunks, sequence-major
  int query_items = 0;  // a stage's pooling items of its queries; its key items follow them
  int pool_items = 0;   // a stage's pooling items, queries and keys
  int row_items = 0;    // a stage's row tiles (heads of the chunk x row tiles a head)
  int spread = 0;       // a segment's pooling items sit before row items 0 .. spread - 1
};

// A segment's pooling items go among the first third of its row items (at least the first): as a stage's
// rows run longest first, that third holds about half their work, and the stage after it is pooled well
// before its rows come. Measured at 128K on an H200 (Prism's selection, ms): among the first three quarters
// of the row items 1.17 (the next stage's rows waited on its pooling), evenly over 70% of the row work 1.02
// (more SMs pooling at once), the first third 0.99.
inline PipelinePlan pipeline_plan(int stages, int query_items, int key_items, int row_items) {
  return {stages, query_items, query_items + key_items, row_items, row_items / 3 > 0 ? row_items / 3 : 1};
}

inline int pipeline_tickets(const PipelinePlan& p) {
  return p.stages * (p.pool_items + p.row_items);
}

enum class PipelineWork : int { kPoolQueries, kPoolKeys, kRows };

struct PipelineItem {
  PipelineWork work;
  int stage;
  int index;  // the query or key item of the stage's pooling, or its row item
};

// The position in its segment of pooling item j: before row item j * spread / pool_items.
SPARSEFILL_HOST_DEVICE inline int pipeline_pool_slot(const PipelinePlan& p, int j) {
  return static_cast<int>(static_cast<long long>(j) * p.spread / p.pool_items) + j;
}

SPARSEFILL_HOST_DEVICE inline PipelineItem pipeline_pool_item(const PipelinePlan& p, int stage, int j) {
  return j < p.query_items ? PipelineItem{PipelineWork::kPoolQueries, stage, j}
                           : PipelineItem{PipelineWork::kPoolKeys, stage, j - p.query_items};
}

// The work of ticket t (0 <= t < pipeline_tickets(p)).
SPARSEFILL_HOST_DEVICE inline PipelineItem pipeline_item(const PipelinePlan& p, int t) {
  if (t < p.pool_items) return pipeline_pool_item(p, 0, t);
  t -= p.pool_items;
  const int width = p.pool_items + p.row_items;
  int segment = t / width;        // segment s + 1: stage s's rows, stage s + 1's pooling
  if (segment >= p.stages - 1) {  // the last segment: rows only
    segment = p.stages - 1;
    return {PipelineWork::kRows, segment, t - segment * width};
  }
  t -= segment * width;
  int lo = 0, hi = p.pool_items - 1;  // the last pooling item at or before t (item 0 sits at slot 0)
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (pipeline_pool_slot(p, mid) <= t) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  if (pipeline_pool_slot(p, lo) == t) return pipeline_pool_item(p, segment + 1, lo);
  return {PipelineWork::kRows, segment, t - lo - 1};
}

}  // namespace sparsefill::cuda::select
