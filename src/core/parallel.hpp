// A minimal parallel loop over independent work items on every core (SPARSEFILL_THREADS overrides the count).
// The first exception thrown by any item is rethrown on the calling thread after all workers stop.
#pragma once
#include <cstdint>
#include <functional>

namespace sparsefill {

int worker_count();
void parallel_for(std::int64_t count, const std::function<void(std::int64_t)>& body);

}  // namespace sparsefill
