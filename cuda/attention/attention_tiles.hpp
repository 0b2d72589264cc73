// Tile sizes of the block-sparse attention kernel.
#pragma once

namespace sparsefill::cuda {

inline constexpr int kTileRows = 64;      // query rows per CTA (divides every supported mask block: 64, 128)
inline constexpr int kThreadsPerRow = 2;  // each row's head_dim is split between two threads
inline constexpr int kThreads = kTileRows * kThreadsPerRow;
inline constexpr int kKeyTile = 64;  // keys staged in shared memory per step (divides the 64 and 128 blocks)

}  // namespace sparsefill::cuda
