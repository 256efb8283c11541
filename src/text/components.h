// The pieces of a tokenizer.json pipeline (internal to src/text):
// normalizers, pre-tokenizers, the BPE model, post-processors and decoders.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace huginn::text {

using json = nlohmann::json;

struct SvHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StrMap = std::unordered_map<std::string, V, SvHash, std::equal_to<>>;

// A part of the input being pre-tokenized. at_start: it begins at offset 0 of
// the original text (Metaspace's prepend_scheme "first" needs this).
struct Piece {
  std::string s;
  bool at_start = false;
};

struct Normalizer {
  virtual ~Normalizer() = default;
  virtual void run(std::string& s) const = 0;
};
struct PreTokenizer {
  virtual ~PreTokenizer() = default;
  // Replaces `pieces` by their splits; empty pieces are dropped.
  virtual void run(std::vector<Piece>& pieces) const = 0;
};
struct PostProcessor {
  virtual ~PostProcessor() = default;
  virtual void run(std::vector<int>& ids, bool add_special) const = 0;
};
struct Decoder {
  virtual ~Decoder() = default;
  virtual void run(std::vector<std::string>& tokens) const = 0;
};

// `where` names the component's place in the file for error messages.
std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where);
std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& where);
std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& where);

// Open-addressing map (left id, right id) -> (rank, merged id), one 16-byte
// slot per entry so that a lookup touches one cache line.
class MergeMap {
 public:
  void reserve(size_t n);
  void put(int a, int b, int rank, int id);
  // Returns false if the pair has no merge.
  bool get(int a, int b, int& rank, int& id) const {
    if (slots_.empty()) return false;
    const uint64_t k = key(a, b);
    size_t i = hash(k) & mask_;
    while (true) {
      const Slot& s = slots_[i];
      if (s.key == k) {
        rank = s.rank;
        id = s.id;
        return true;
      }
      if (s.key == kEmpty) return false;
      i = (i + 1) & mask_;
    }
  }

 private:
  struct Slot {
    uint64_t key;
    int32_t rank, id;
  };
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t key(int a, int b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }
  static size_t hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
};

// Token ids are exact JSON integers in [0, 2^31) (no fractions, no floats,
// nothing truncated); throws naming `where`.
int token_id(const nlohmann::json& v, const std::string& where);
// Tables are sized by the largest id, so the id space must stay proportional
// to the tokens actually listed: max_id + 1 <= 4 * n_tokens + 65536.
void check_id_space(int64_t max_id, size_t n_tokens, const std::string& where);
// Bounds on a tokenizer's component trees (Sequence of Sequence ...): chained
// ByteLevel or Replace steps grow the text at every step.
constexpr int kMaxComponentDepth = 4;
constexpr int kMaxComponents = 32;
// Counts the components of one section (normalizer, pre_tokenizer,
// post_processor, decoder) and throws when beyond the bounds above.
void check_component_tree(const nlohmann::json& section, const std::string& where);

class BPE {
 public:
  BPE(const json& model, const std::string& where);
  // Appends the ids of one pre-tokenized word.
  void encode_word(std::string_view w, std::vector<int>& out) const;
  int token_to_id(std::string_view t) const {
    auto it = vocab_.find(t);
    return it == vocab_.end() ? -1 : it->second;
  }
  const std::string* id_to_token(int id) const {
    return id >= 0 && id < (int)vocab_r_.size() && has_id_[id] ? &vocab_r_[id] : nullptr;
  }
  int max_id() const { return (int)vocab_r_.size() - 1; }
  size_t size() const { return vocab_.size(); }

 private:
  void merge_word(std::string_view w, std::vector<int>& out) const;
  StrMap<int> vocab_;
  std::vector<std::string> vocab_r_;
  std::vector<char> has_id_;
  MergeMap merges_;
  bool has_unk_ = false, fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  std::string unk_;
  bool has_prefix_ = false, has_suffix_ = false;
  std::string prefix_, suffix_;
  std::vector<int32_t> char_ids_;  // single-code-point token ids for cp < 0x10000 (-1 none)
  int byte_ids_[256];              // "<0xAB>" token ids (-1 none)
  bool byte_ids_complete_ = false;

  // Word cache (words up to kCacheWordMax bytes).
  static constexpr size_t kCacheWordMax = 128, kCacheMax = 1 << 18;
  mutable std::mutex cache_mu_;
  mutable StrMap<std::vector<int>> cache_;
};

// The GPT-2 byte <-> printable character table of ByteLevel components.
const std::string& byte_to_char(unsigned char b);
int char_to_byte(uint32_t cp);  // -1 if cp is not in the table

}  // namespace huginn::text
