// The BPE model of tokenizer.json: merges by rank with a priority queue, a
// word cache, byte fallback and unknown-token handling as in HF tokenizers.
#include <algorithm>
#include <cstdio>

#include "huginn/common.h"
#include "huginn/json.h"
#include "text/components.h"
#include "text/unicode.h"

namespace huginn::text {

void MergeMap::reserve(size_t n) {
  size_t cap = 16;
  while (cap < n + n / 2) cap <<= 1;
  slots_.assign(cap, {kEmpty, 0, 0});
  mask_ = cap - 1;
}

void MergeMap::put(int a, int b, int rank, int id) {
  const uint64_t k = key(a, b);
  size_t i = hash(k) & mask_;
  while (slots_[i].key != kEmpty && slots_[i].key != k) i = (i + 1) & mask_;
  slots_[i] = {k, rank, id};  // a repeated pair keeps its last rank, as HF does
}

BPE::BPE(const json& m, const std::string& where) {
  auto dropout = m.find("dropout");
  if (dropout != m.end() && !dropout->is_null() && dropout->get<double>() != 0.0)
    fail(where, ": BPE dropout is not supported (encoding must be deterministic)");
  const json& vocab = m.at("vocab");
  if (!vocab.is_object()) fail(where, ": \"vocab\" must be an object of token -> id");
  vocab_.reserve(vocab.size());
  int max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int id = token_id(it.value(), str(where, ": token '", it.key().substr(0, 40), "'"));
    vocab_[it.key()] = id;
    max_id = std::max(max_id, id);
  }
  check_id_space(max_id, vocab.size(), where);
  vocab_r_.assign((size_t)max_id + 1, std::string());
  has_id_.assign((size_t)max_id + 1, 0);
  for (auto& [tok, id] : vocab_) {
    vocab_r_[id] = tok;
    has_id_[id] = 1;
  }

  auto str_opt = [&](const char* key, bool& has, std::string& val) {
    auto it = m.find(key);
    has = it != m.end() && !it->is_null();
    if (has) val = it->get<std::string>();
  };
  str_opt("unk_token", has_unk_, unk_);
  str_opt("continuing_subword_prefix", has_prefix_, prefix_);
  str_opt("end_of_word_suffix", has_suffix_, suffix_);
  if (has_prefix_ && prefix_.empty()) has_prefix_ = false;
  if (has_suffix_ && suffix_.empty()) has_suffix_ = false;
  auto b = [&](const char* key) {
    auto it = m.find(key);
    return it != m.end() && !it->is_null() && it->get<bool>();
  };
  fuse_unk_ = b("fuse_unk");
  byte_fallback_ = b("byte_fallback");
  ignore_merges_ = b("ignore_merges");

  // Merges: "a b" strings or [a, b] pairs.
  const json& merges = m.at("merges");
  if (!merges.is_array()) fail(where, ": \"merges\" must be a list");
  merges_.reserve(merges.size());
  std::string left, right, merged;
  for (size_t r = 0; r < merges.size(); ++r) {
    const json& mg = merges[r];
    if (mg.is_string()) {
      const std::string& line = mg.get_ref<const std::string&>();
      const size_t sp = line.find(' ');
      if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
        fail(where, ": merge ", r, " ('", line, "') is not two tokens separated by one space");
      left = line.substr(0, sp);
      right = line.substr(sp + 1);
    } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
      left = mg[0].get<std::string>();
      right = mg[1].get<std::string>();
    } else {
      fail(where, ": merge ", r, " must be \"a b\" or [\"a\", \"b\"]");
    }
    const int a = token_to_id(left), c = token_to_id(right);
    if (a < 0) fail(where, ": merge ", r, ": token '", left, "' is not in the vocabulary");
    if (c < 0) fail(where, ": merge ", r, ": token '", right, "' is not in the vocabulary");
    merged = left;
    merged.append(right, has_prefix_ && right.compare(0, prefix_.size(), prefix_) == 0 ? prefix_.size() : 0,
                  std::string::npos);
    const int id = token_to_id(merged);
    if (id < 0) fail(where, ": merge ", r, ": merged token '", merged, "' is not in the vocabulary");
    merges_.put(a, c, (int)r, id);
  }

  char_ids_.assign(0x10000, -1);
  for (auto& [tok, id] : vocab_) {
    size_t i = 0;
    if (tok.empty()) continue;
    const uint32_t cp = next_cp(tok, i);
    if (i == tok.size() && cp < 0x10000) char_ids_[cp] = id;
  }
  byte_ids_complete_ = true;
  for (int v = 0; v < 256; ++v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", v);
    byte_ids_[v] = token_to_id(buf);
    if (byte_ids_[v] < 0) byte_ids_complete_ = false;
  }
}

namespace {
struct Sym {
  int id, prev, next, len;
};
// A candidate merge of the symbol at `pos` with its right neighbour, as the
// pair (left, right) was when it was queued.
struct Cand {
  int rank, pos, id, left, right;
};
// Heap order: the lowest rank first, then the leftmost position.
struct CandAfter {
  bool operator()(const Cand& a, const Cand& b) const { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; }
};
}  // namespace

void BPE::merge_word(std::string_view w, std::vector<int>& out) const {
  thread_local std::vector<Sym> syms;
  syms.clear();
  auto add = [&](int id, int len) {
    const int n = (int)syms.size();
    syms.push_back({id, n - 1, n + 1, len});
  };
  bool unk_pending = false;
  int unk_id = -1, unk_len = 0;
  const bool plain = !has_prefix_ && !has_suffix_;
  std::string s;
  size_t i = 0;
  while (i < w.size()) {
    const size_t b = i;
    const uint32_t cp = next_cp(w, i);
    const int byte_len = (int)(i - b);
    int id = -1;
    if (plain) {
      id = cp < 0x10000 ? char_ids_[cp] : token_to_id(w.substr(b, i - b));
    } else {
      s.clear();
      if (b != 0 && has_prefix_) s += prefix_;
      s.append(w.substr(b, i - b));
      if (i == w.size() && has_suffix_) s += suffix_;
      id = token_to_id(s);
    }
    if (id >= 0) {
      if (unk_pending) {
        add(unk_id, unk_len);
        unk_pending = false;
      }
      add(id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      std::string_view piece = plain ? w.substr(b, i - b) : std::string_view(s);
      bool all = true;
      for (unsigned char ch : piece)
        if (byte_ids_[ch] < 0) all = false;
      if (all) {
        for (unsigned char ch : piece) add(byte_ids_[ch], 1);
        continue;
      }
    }
    if (has_unk_) {
      if (unk_pending && fuse_unk_) {
        unk_len += byte_len;
      } else {
        if (unk_pending) add(unk_id, unk_len);
        unk_id = token_to_id(unk_);
        if (unk_id < 0) fail("BPE unk_token '", unk_, "' is not in the vocabulary");
        unk_len = byte_len;
        unk_pending = true;
      }
    }
  }
  if (unk_pending) add(unk_id, unk_len);
  if (syms.empty()) return;
  syms.back().next = -1;

  thread_local std::vector<Cand> heap;
  heap.clear();
  int rank, nid;
  for (int k = 0; k + 1 < (int)syms.size(); ++k)
    if (merges_.get(syms[k].id, syms[k + 1].id, rank, nid)) heap.push_back({rank, k, nid, syms[k].id, syms[k + 1].id});
  std::make_heap(heap.begin(), heap.end(), CandAfter());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), CandAfter());
    const Cand top = heap.back();
    heap.pop_back();
    Sym& cur = syms[top.pos];
    if (cur.len == 0 || cur.next == -1) continue;
    const int next_pos = cur.next;
    const Sym right = syms[next_pos];
    // A stale entry: the pair changed since it was queued. HF's exact test is
    // "the current pair merges into the same id"; an unchanged pair passes it.
    if ((cur.id != top.left || right.id != top.right) && (!merges_.get(cur.id, right.id, rank, nid) || nid != top.id))
      continue;
    cur.id = top.id;
    cur.len += right.len;
    cur.next = right.next;
    syms[next_pos].len = 0;
    if (right.next > -1 && right.next < (int)syms.size()) syms[right.next].prev = top.pos;
    if (cur.prev >= 0 && merges_.get(syms[cur.prev].id, cur.id, rank, nid)) {
      heap.push_back({rank, cur.prev, nid, syms[cur.prev].id, cur.id});
      std::push_heap(heap.begin(), heap.end(), CandAfter());
    }
    if (cur.next >= 0 && cur.next < (int)syms.size() && merges_.get(cur.id, syms[cur.next].id, rank, nid)) {
      heap.push_back({rank, top.pos, nid, cur.id, syms[cur.next].id});
      std::push_heap(heap.begin(), heap.end(), CandAfter());
    }
  }
  for (auto& sy : syms)
    if (sy.len != 0) out.push_back(sy.id);
}

void BPE::encode_word(std::string_view w, std::vector<int>& out) const {
  if (w.empty()) return;
  if (ignore_merges_) {
    const int id = token_to_id(w);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const bool cacheable = w.size() <= kCacheWordMax;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(w);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t mark = out.size();
  merge_word(w, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kCacheMax) cache_.clear();
    cache_.emplace(std::string(w), std::vector<int>(out.begin() + (long)mark, out.end()));
  }
}

}  // namespace huginn::text
