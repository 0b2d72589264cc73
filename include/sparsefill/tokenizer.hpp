// Byte-level BPE tokenizer built from a GGUF file's metadata (tokenizer.ggml.*), as SmolLM2 and other
// GPT-2-style models use: special tokens are matched first, the rest is pre-tokenised by the `smollm` rules
// (every digit alone, then GPT-2's contractions / letters / digits / punctuation / whitespace pattern), bytes
// are mapped to GPT-2's printable characters, and ranked merges are applied. Bytes whose symbol the
// vocabulary lacks become the unknown token. Non-ASCII letters and digits are classified approximately (every
// non-ASCII code point that is not a known space or general punctuation counts as a letter): exact for ASCII
// text.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "sparsefill/gguf.hpp"

namespace sparsefill {

class BpeTokenizer {
 public:
  // Error(path) when the file lacks the tokenizer metadata or uses another tokenizer model than "gpt2".
  static BpeTokenizer from_gguf(const GgufFile& file);

  std::vector<std::int32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<std::int32_t>& ids) const;
  std::int32_t token_id(const std::string& token) const;  // -1 when absent
  const std::string& token(std::int32_t id) const;
  std::int32_t bos_id() const { return bos_; }
  std::int32_t eos_id() const { return eos_; }
  std::size_t vocab_size() const { return tokens_.size(); }

 private:
  void encode_piece(const std::string& piece, std::vector<std::int32_t>& out) const;
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, std::int32_t> ids_;
  std::unordered_map<std::string, std::int32_t> merge_ranks_;  // "left right" -> rank
  std::vector<std::string> specials_;                          // control / user tokens, longest first
  std::vector<std::string> byte_to_symbol_;                    // 256 entries
  std::unordered_map<std::string, unsigned char> symbol_to_byte_;
  std::int32_t bos_ = -1, eos_ = -1, unknown_ = -1;
};

}  // namespace sparsefill
