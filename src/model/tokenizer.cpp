// BPE tokenizer (design note): encode = split on special tokens -> pre-tokenise each stretch (code points) ->
// map each piece's bytes to GPT-2 symbols -> merge the lowest-ranked adjacent pair (all its occurrences, left
// to right) until none applies -> look the symbols up. decode reverses the symbol mapping.
#include "sparsefill/tokenizer.hpp"

#include <algorithm>
#include <limits>

#include "sparsefill/error.hpp"

namespace sparsefill {
namespace {

std::string utf8(std::uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Code points of a UTF-8 string with the byte range of each (invalid bytes become single-byte "code points").
struct CodePoint {
  std::uint32_t cp;
  std::size_t begin, end;
};

std::vector<CodePoint> decode_utf8(const std::string& s) {
  std::vector<CodePoint> out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    if (i + n > s.size()) n = 1;
    std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    bool valid = true;
    for (std::size_t k = 1; k < n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      valid = valid && (cc >> 6) == 2;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!valid) n = 1, cp = c;
    out.push_back({cp, i, i + n});
    i += n;
  }
  return out;
}

bool is_space(std::uint32_t c) {
  return c == ' ' || (c >= '\t' && c <= '\r') || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}
bool is_digit(std::uint32_t c) {
  return c >= '0' && c <= '9';
}
bool is_letter(std::uint32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return !is_space(c) && !(c >= 0x2010 && c <= 0x2027) && !(c >= 0x3001 && c <= 0x303F) &&
         !(c >= 0xA1 && c <= 0xBF);
}
bool is_other(std::uint32_t c) {
  return !is_space(c) && !is_letter(c) && !is_digit(c);
}

// The `smollm` pre-tokenizer on one stretch of text without special tokens.
std::vector<std::string> pre_tokenize(const std::string& text) {
  const std::vector<CodePoint> cps = decode_utf8(text);
  std::vector<std::string> pieces;
  // First rule: every digit is its own segment; the GPT-2 pattern runs inside each segment.
  std::size_t seg_begin = 0;
  auto run_pattern = [&](std::size_t a, std::size_t b) {  // code point range [a, b)
    std::size_t pending = a;                              // start of text no alternative matched
    auto emit = [&](std::size_t from, std::size_t to) {
      if (pending < from)
        pieces.push_back(text.substr(cps[pending].begin, cps[from - 1].end - cps[pending].begin));
      pieces.push_back(text.substr(cps[from].begin, cps[to - 1].end - cps[from].begin));
      pending = to;
    };
    std::size_t i = a;
    while (i < b) {
      const std::uint32_t c = cps[i].cp;
      auto at = [&](std::size_t k) { return k < b ? cps[k].cp : 0u; };
      std::size_t j = i;
      if (c == '\'') {  // 's 't 're 've 'm 'll 'd
        const std::uint32_t n1 = at(i + 1), n2 = at(i + 2);
        if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')
          j = i + 2;
        else if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l'))
          j = i + 3;
      }
      for (auto cls : {is_letter, is_digit, is_other}) {
        if (j != i) break;
        std::size_t k = i;
        if (cps[k].cp == ' ' && k + 1 < b && cls(cps[k + 1].cp)) ++k;
        if (k < b && cls(cps[k].cp)) {
          while (k < b && cls(cps[k].cp)) ++k;
          j = k;
        }
      }
      if (j == i && is_space(c)) {  // \s+(?!\S)
        std::size_t k = i;
        while (k < b && is_space(cps[k].cp)) ++k;
        if (k == b)
          j = k;
        else if (k - i > 1)
          j = k - 1;
      }
      if (j == i) {
        ++i;  // unmatched: stays pending and becomes its own piece
        continue;
      }
      emit(i, j);
      i = j;
    }
    if (pending < b) pieces.push_back(text.substr(cps[pending].begin, cps[b - 1].end - cps[pending].begin));
  };
  for (std::size_t i = 0; i < cps.size(); ++i) {
    if (is_digit(cps[i].cp)) {
      if (seg_begin < i) run_pattern(seg_begin, i);
      pieces.push_back(text.substr(cps[i].begin, cps[i].end - cps[i].begin));
      seg_begin = i + 1;
    }
  }
  if (seg_begin < cps.size()) run_pattern(seg_begin, cps.size());
  return pieces;
}

}  // namespace

BpeTokenizer BpeTokenizer::from_gguf(const GgufFile& file) {
  BpeTokenizer t;
  const std::string model = file.get_string("tokenizer.ggml.model");
  require(model == "gpt2", "tokenizer.ggml.model",
          "'" + model + "' is not a byte-level BPE (gpt2) tokenizer");
  t.tokens_ = file.get_strings("tokenizer.ggml.tokens");
  require(!t.tokens_.empty() && t.tokens_.size() < (1u << 31), "tokenizer.ggml.tokens", "empty or too large");
  for (std::size_t i = 0; i < t.tokens_.size(); ++i)
    t.ids_.emplace(t.tokens_[i], static_cast<std::int32_t>(i));
  const std::vector<std::string> merges = file.get_strings("tokenizer.ggml.merges");
  for (std::size_t r = 0; r < merges.size(); ++r) {
    require(merges[r].find(' ') != std::string::npos, "tokenizer.ggml.merges",
            "entry " + std::to_string(r) + " has no space");
    t.merge_ranks_.emplace(merges[r], static_cast<std::int32_t>(r));
  }
  if (file.has("tokenizer.ggml.token_type")) {
    const std::vector<std::int64_t> types = file.get_ints("tokenizer.ggml.token_type");
    require(types.size() == t.tokens_.size(), "tokenizer.ggml.token_type",
            "length differs from the token list");
    for (std::size_t i = 0; i < types.size(); ++i) {
      if (types[i] == 3 || types[i] == 4) t.specials_.push_back(t.tokens_[i]);  // control, user-defined
    }
    std::sort(t.specials_.begin(), t.specials_.end(),
              [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  }
  auto id_or = [&](const char* key) {
    if (!file.has(key)) return -1;
    const std::uint64_t id = file.get_uint(key);
    require(id < t.tokens_.size(), key, "token id out of range");
    return static_cast<std::int32_t>(id);
  };
  t.bos_ = id_or("tokenizer.ggml.bos_token_id");
  t.eos_ = id_or("tokenizer.ggml.eos_token_id");
  // GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to 256, 257, ... in byte order.
  t.byte_to_symbol_.resize(256);
  std::uint32_t next = 256;
  for (std::uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    t.byte_to_symbol_[b] = utf8(printable ? b : next++);
    t.symbol_to_byte_[t.byte_to_symbol_[b]] = static_cast<unsigned char>(b);
  }
  t.unknown_ = id_or("tokenizer.ggml.unknown_token_id");
  return t;
}

void BpeTokenizer::encode_piece(const std::string& piece, std::vector<std::int32_t>& out) const {
  std::vector<std::string> symbols;
  for (unsigned char byte : piece) symbols.push_back(byte_to_symbol_[byte]);
  while (symbols.size() > 1) {
    std::int32_t best = std::numeric_limits<std::int32_t>::max();
    std::size_t best_at = 0;
    for (std::size_t i = 0; i + 1 < symbols.size(); ++i) {
      auto it = merge_ranks_.find(symbols[i] + " " + symbols[i + 1]);
      if (it != merge_ranks_.end() && it->second < best) best = it->second, best_at = i;
    }
    if (best == std::numeric_limits<std::int32_t>::max()) break;
    const std::string left = symbols[best_at], right = symbols[best_at + 1];
    std::vector<std::string> merged;
    for (std::size_t i = 0; i < symbols.size(); ++i) {
      if (i + 1 < symbols.size() && symbols[i] == left && symbols[i + 1] == right) {
        merged.push_back(left + right);
        ++i;
      } else {
        merged.push_back(symbols[i]);
      }
    }
    symbols.swap(merged);
  }
  for (const std::string& s : symbols) {
    auto it = ids_.find(s);
    if (it != ids_.end()) {
      out.push_back(it->second);
      continue;
    }
    // A merge result missing from the vocabulary falls back to its byte symbols; a byte symbol the vocabulary
    // lacks (SmolLM2 has no symbols for some control bytes) becomes the unknown token.
    for (const CodePoint& cp : decode_utf8(s)) {
      auto byte = ids_.find(s.substr(cp.begin, cp.end - cp.begin));
      require(byte != ids_.end() || unknown_ >= 0, "text",
              "holds a byte the vocabulary cannot encode and there is no unknown token");
      out.push_back(byte != ids_.end() ? byte->second : unknown_);
    }
  }
}

std::vector<std::int32_t> BpeTokenizer::encode(const std::string& text) const {
  std::vector<std::int32_t> out;
  std::size_t start = 0, i = 0;
  auto flush = [&](std::size_t end) {
    if (start < end) {
      for (const std::string& piece : pre_tokenize(text.substr(start, end - start))) encode_piece(piece, out);
    }
  };
  while (i < text.size()) {
    const std::string* special = nullptr;
    for (const std::string& s : specials_) {
      if (!s.empty() && text.compare(i, s.size(), s) == 0) {
        special = &s;
        break;
      }
    }
    if (!special) {
      ++i;
      continue;
    }
    flush(i);
    out.push_back(ids_.at(*special));
    i += special->size();
    start = i;
  }
  flush(text.size());
  return out;
}

std::string BpeTokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::string out;
  for (std::int32_t id : ids) {
    const std::string& t = token(id);
    if (std::find(specials_.begin(), specials_.end(), t) != specials_.end()) {
      out += t;
      continue;
    }
    for (const CodePoint& cp : decode_utf8(t)) {
      auto it = symbol_to_byte_.find(t.substr(cp.begin, cp.end - cp.begin));
      require(it != symbol_to_byte_.end(), "ids",
              "token " + std::to_string(id) + " holds a non byte-level symbol");
      out += static_cast<char>(it->second);
    }
  }
  return out;
}

std::int32_t BpeTokenizer::token_id(const std::string& token) const {
  auto it = ids_.find(token);
  return it == ids_.end() ? -1 : it->second;
}

const std::string& BpeTokenizer::token(std::int32_t id) const {
  require(id >= 0 && static_cast<std::size_t>(id) < tokens_.size(), "ids",
          "token id " + std::to_string(id) + " out of range");
  return tokens_[static_cast<std::size_t>(id)];
}

}  // namespace sparsefill
