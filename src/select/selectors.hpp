// Factories of the individual selectors (one file each), collected by the registry.
#pragma once
#include <memory>

#include "sparsefill/selector.hpp"

namespace sparsefill {

std::unique_ptr<Selector> make_dense_selector();
std::unique_ptr<Selector> make_prism_selector(const PrismConfig& config);
std::unique_ptr<Selector> make_rr_selector(const RRConfig& config);
std::unique_ptr<Selector> make_pbs_selector(const PBSConfig& config);
std::unique_ptr<Selector> make_meanpool_selector(const MeanPoolConfig& config);
std::unique_ptr<Selector> make_xattention_selector(const XAttentionConfig& config);
std::unique_ptr<Selector> make_flexprefill_selector(const FlexPrefillConfig& config);
std::unique_ptr<Selector> make_minference_selector(const MInferenceConfig& config);
std::unique_ptr<Selector> make_oracle_selector(const OracleConfig& config);

}  // namespace sparsefill
