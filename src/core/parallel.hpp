// A parallel loop over independent work items on every core (SPARSEFILL_THREADS, read at the first loop,
// overrides the count), served by one pool of threads. Loops nest: a loop inside an item shares the pool's
// idle threads, so a few heads whose rows are loops themselves still fill every core. Items must not depend
// on their order; each runs once. The first exception thrown by an item is rethrown on the calling thread
// once every item has finished (those not yet started are skipped).
#pragma once
#include <cstdint>
#include <functional>

namespace sparsefill {

int worker_count();  // the pool's threads, the caller's included: read once, at the first call
void parallel_for(std::int64_t count, const std::function<void(std::int64_t)>& body);

}  // namespace sparsefill
