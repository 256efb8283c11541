// huginn::Tokenizer: loads tokenizer.json and runs the pipeline of Hugging Face
// tokenizers: added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor.
#include "huginn/tokenizer.h"

#include "huginn/json.h"
#include "huginn/gguf.h"
#include "model/gguf_model.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "huginn/common.h"
#include "text/components.h"
#include "text/unicode.h"

namespace huginn {
using namespace text;

namespace {

struct AddedToken {
  int id;
  std::string content;
  bool single_word, lstrip, rstrip, normalized, special;
};

// Leftmost-longest, non-overlapping matching of a set of strings (what the
// aho-corasick crate does with MatchKind::LeftmostLongest).
class Trie {
 public:
  void add(std::string_view s, int value) {
    int node = 0;
    for (unsigned char c : s) {
      int child = find_child(node, c);
      if (child < 0) {
        child = (int)nodes_.size();
        nodes_.emplace_back();
        nodes_[node].kids.emplace_back(c, child);
      }
      node = child;
    }
    if (nodes_[node].value < 0) nodes_[node].value = value;  // first pattern wins ties
    first_[(unsigned char)s[0]] = true;
    empty_ = false;
  }
  bool empty() const { return empty_; }
  // Next match at or after pos: (start, end, value), or start = npos.
  void next(std::string_view s, size_t pos, size_t& start, size_t& end, int& value) const {
    for (size_t i = pos; i < s.size(); ++i) {
      if (!first_[(unsigned char)s[i]]) continue;
      int node = 0, best = -1;
      size_t best_end = 0;
      for (size_t k = i; k < s.size(); ++k) {
        node = find_child(node, (unsigned char)s[k]);
        if (node < 0) break;
        if (nodes_[node].value >= 0) {
          best = nodes_[node].value;
          best_end = k + 1;
        }
      }
      if (best >= 0) {
        start = i;
        end = best_end;
        value = best;
        return;
      }
    }
    start = std::string_view::npos;
  }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int>> kids;
    int value = -1;
  };
  int find_child(int node, unsigned char c) const {
    for (auto& [k, v] : nodes_[node].kids)
      if (k == c) return v;
    return -1;
  }
  std::vector<Node> nodes_ = std::vector<Node>(1);
  bool first_[256] = {};
  bool empty_ = true;
};

struct Segment {
  size_t b, e;
  int added;  // index into added tokens, or -1 for text
};

size_t cp_bytes(uint32_t c) { return c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4; }

}  // namespace

struct Tokenizer::Impl {
  std::string origin;
  std::unique_ptr<Normalizer> normalizer;
  std::unique_ptr<PreTokenizer> pre_tokenizer;
  std::unique_ptr<BPE> model;
  std::unique_ptr<PostProcessor> post_processor;
  std::unique_ptr<Decoder> decoder;
  std::vector<AddedToken> added;
  StrMap<int> added_by_content;            // content -> index
  std::unordered_map<int, int> added_by_id;  // id -> index
  Trie raw_trie, norm_trie;                // normalized == false / true
  int vocab_size = 0;

  // HF's AddedVocabulary::find_matches, with single_word / lstrip / rstrip.
  std::vector<Segment> find_added(std::string_view s, const Trie& trie) const {
    std::vector<Segment> out;
    if (trie.empty()) {
      out.push_back({0, s.size(), -1});
      return out;
    }
    size_t start_offset = 0, pos = 0;
    while (true) {
      size_t mb, me;
      int idx;
      trie.next(s, pos, mb, me, idx);
      if (mb == std::string_view::npos) break;
      pos = me;
      const AddedToken& t = added[idx];
      size_t start = mb, stop = me;
      if (t.single_word) {
        const bool start_space = start == 0 || !is_single_word_char(prev_cp(s, start));
        size_t k = stop;
        const bool stop_space = stop == s.size() || !is_single_word_char(next_cp(s, k));
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip) {
        size_t ns = start;
        while (ns > 0) {
          const uint32_t c = prev_cp(s, ns);
          if (!is_white_space(c)) break;
          ns -= cp_bytes(c);
        }
        start = std::max(ns, start_offset);
      }
      if (t.rstrip) {
        while (stop < s.size()) {
          size_t k = stop;
          if (!is_white_space(next_cp(s, k))) break;
          stop = k;
        }
      }
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, idx});
      start_offset = stop;
    }
    if (start_offset != s.size()) out.push_back({start_offset, s.size(), -1});
    return out;
  }

  void encode_text(std::string_view norm, bool at_start, std::vector<int>& ids) const {
    thread_local std::vector<Piece> pieces;
    pieces.clear();
    pieces.push_back({std::string(norm), at_start});
    if (pre_tokenizer) pre_tokenizer->run(pieces);
    for (auto& p : pieces) model->encode_word(p.s, ids);
  }
};

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    fail("'", path, "' is a directory, not a tokenizer.json (for a model directory use -m / load_model_tokenizer)");
  return from_json(read_regular_file(path, uint64_t(1) << 30), path);
}

namespace {
std::atomic<uint64_t> g_parses{0};
}
uint64_t tokenizer_parse_count() { return g_parses.load(); }

Tokenizer Tokenizer::from_json(std::string_view text, const std::string& origin) {
  g_parses.fetch_add(1);
  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  const json j = parse_json(text, origin);
  try {
    if (!j.is_object()) fail(origin, ": expected a JSON object at the top level");
    if (!j.contains("model")) fail(origin, ": no \"model\" section (is this a tokenizer.json?)");
    const json& m = j.at("model");
    std::string mtype = m.is_object() && m.contains("type") ? m.at("type").get<std::string>()
                        : (m.is_object() && m.contains("merges")) ? "BPE"
                                                                    : "";
    if (mtype != "BPE")
      fail(origin, ": unsupported model type '", mtype, "' (supported: BPE)");
    impl->model = std::make_unique<BPE>(m, origin + ": model");
    auto section = [&](const char* key) -> const json* {
      auto it = j.find(key);
      return it == j.end() || it->is_null() ? nullptr : &*it;
    };
    for (const char* key : {"normalizer", "pre_tokenizer", "post_processor", "decoder"})
      if (auto* s = section(key)) check_component_tree(*s, str(origin, ": ", key));
    if (auto* n = section("normalizer")) impl->normalizer = make_normalizer(*n, origin + ": normalizer");
    if (auto* p = section("pre_tokenizer")) impl->pre_tokenizer = make_pre_tokenizer(*p, origin + ": pre_tokenizer");
    if (auto* p = section("post_processor"))
      impl->post_processor = make_post_processor(*p, origin + ": post_processor");
    if (auto* d = section("decoder")) impl->decoder = make_decoder(*d, origin + ": decoder");
    // "truncation" and "padding" are ignored: encode() returns every id, as
    // transformers' tokenizers do unless truncation or padding is asked for.
    int max_id = impl->model->max_id();
    if (auto* at = section("added_tokens")) {
      for (const json& a : *at) {
        AddedToken t{token_id(a.at("id"), origin + ": added token"), a.at("content").get<std::string>(),
                     a.value("single_word", false), a.value("lstrip", false), a.value("rstrip", false),
                     a.value("normalized", !a.value("special", false)), a.value("special", false)};
        if (t.content.empty()) continue;
        auto it = impl->added_by_content.find(t.content);
        if (it != impl->added_by_content.end()) {  // a repeated content updates the entry
          impl->added[it->second] = t;
          impl->added_by_id[t.id] = it->second;
          continue;
        }
        const int idx = (int)impl->added.size();
        impl->added.push_back(t);
        impl->added_by_content.emplace(t.content, idx);
        impl->added_by_id[t.id] = idx;
        max_id = std::max(max_id, t.id);
      }
    }
    // Matching tries: special tokens first, then the others (HF's order).
    for (int pass = 0; pass < 2; ++pass) {
      for (int i = 0; i < (int)impl->added.size(); ++i) {
        const AddedToken& t = impl->added[i];
        if (t.special != (pass == 0)) continue;
        if (!t.normalized) {
          impl->raw_trie.add(t.content, i);
        } else {
          std::string c = t.content;
          if (impl->normalizer) impl->normalizer->run(c);
          if (!c.empty()) impl->norm_trie.add(c, i);
        }
      }
    }
    check_id_space(max_id, impl->model->size() + impl->added.size(), origin);
    impl->vocab_size = max_id + 1;
  } catch (const json::exception& e) {
    fail(origin, ": malformed tokenizer.json: ", e.what());
  }
  Tokenizer t;
  t.impl_ = std::move(impl);
  return t;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& im = *impl_;
  const size_t bad = find_invalid_utf8(text);
  if (bad != std::string_view::npos) fail("input text is not valid UTF-8 (at byte ", bad, ")");
  std::vector<int> ids;
  ids.reserve(text.size() / 3 + 4);
  std::string norm;
  for (const Segment& seg : im.find_added(text, im.raw_trie)) {
    if (seg.added >= 0) {
      ids.push_back(im.added[seg.added].id);
      continue;
    }
    if (seg.e <= seg.b) continue;
    norm.assign(text.substr(seg.b, seg.e - seg.b));
    if (im.normalizer) im.normalizer->run(norm);
    for (const Segment& sub : im.find_added(norm, im.norm_trie)) {
      if (sub.added >= 0) ids.push_back(im.added[sub.added].id);
      else if (sub.e > sub.b)
        im.encode_text(std::string_view(norm).substr(sub.b, sub.e - sub.b), seg.b == 0 && sub.b == 0, ids);
    }
  }
  if (im.post_processor) im.post_processor->run(ids, add_special);
  return ids;
}

std::string Tokenizer::decode(const std::vector<int>& ids, bool skip_special, bool skip_unknown) const {
  const Impl& im = *impl_;
  std::vector<std::string> toks;
  toks.reserve(ids.size());
  for (int id : ids) {
    auto it = im.added_by_id.find(id);
    if (it != im.added_by_id.end()) {
      const AddedToken& t = im.added[it->second];
      if (!(skip_special && t.special)) toks.push_back(t.content);
      continue;
    }
    const std::string* tok = im.model->id_to_token(id);
    if (!tok && skip_unknown) continue;
    if (!tok) fail("token id ", id, " is not in the vocabulary (ids 0..", im.vocab_size - 1, ")");
    if (skip_special) {
      auto s = im.added_by_content.find(*tok);
      if (s != im.added_by_content.end() && im.added[s->second].special) continue;
    }
    toks.push_back(*tok);
  }
  if (!im.decoder) {
    std::string out;
    for (size_t i = 0; i < toks.size(); ++i) {
      if (i) out.push_back(' ');
      out += toks[i];
    }
    return out;
  }
  im.decoder->run(toks);
  std::string out;
  for (auto& t : toks) out += t;
  return out;
}

int Tokenizer::token_to_id(std::string_view token) const {
  auto it = impl_->added_by_content.find(token);
  if (it != impl_->added_by_content.end()) return impl_->added[it->second].id;
  return impl_->model->token_to_id(token);
}

std::string Tokenizer::id_to_token(int id) const {
  auto it = impl_->added_by_id.find(id);
  if (it != impl_->added_by_id.end()) return impl_->added[it->second].content;
  const std::string* t = impl_->model->id_to_token(id);
  return t ? *t : std::string();
}

bool Tokenizer::is_special(int id) const {
  auto it = impl_->added_by_id.find(id);
  return it != impl_->added_by_id.end() && impl_->added[it->second].special;
}

int Tokenizer::vocab_size() const { return impl_->vocab_size; }

Tokenizer load_model_tokenizer(const std::string& model_dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (gguf_model::is_gguf_path(model_dir)) {  // a GGUF model: its embedded tokenizer
    const gguf::File f(model_dir);
    const auto j = gguf_model::tokenizer_json(f);
    if (!j) fail(model_dir, ": the GGUF file has no tokenizer (tokenizer.ggml.*); token ids still work");
    return Tokenizer::from_json(*j, model_dir + ": tokenizer");
  }
  if (fs::is_regular_file(model_dir, ec)) return Tokenizer::from_file(model_dir);
  if (!fs::is_directory(model_dir, ec)) fail("model directory '", model_dir, "' does not exist");
  const fs::path p = fs::path(model_dir) / "tokenizer.json";
  if (!fs::exists(p, ec))
    fail("model directory '", model_dir,
         "' has no tokenizer.json (text input needs the model's Hugging Face tokenizer.json; token ids still work)");
  return Tokenizer::from_file(p.string());
}

// ---- streaming ---------------------------------------------------------------

std::string TextStream::push(int id) {
  window_.push_back(id);
  const std::string text = tok_.decode(window_, skip_, true);
  // Hold back a trailing replacement character: it may be a partial UTF-8
  // sequence that the next token completes.
  if (text.size() <= prefix_.size() || text.compare(0, prefix_.size(), prefix_) != 0) return {};
  std::string out = text.substr(prefix_.size());
  if (out.size() >= 3 && out.compare(out.size() - 3, 3, "\xEF\xBF\xBD") == 0) return {};
  // The ids just emitted become the context of the next step.
  window_.erase(window_.begin(), window_.begin() + (long)context_);
  context_ = window_.size();
  prefix_ = tok_.decode(window_, skip_, true);
  return out;
}

std::string TextStream::flush() {
  const std::string text = tok_.decode(window_, skip_, true);
  std::string out;
  if (text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0) out = text.substr(prefix_.size());
  window_.clear();
  context_ = 0;
  prefix_.clear();
  return out;
}

}  // namespace huginn
