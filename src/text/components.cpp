// Normalizers, pre-tokenizers, post-processors and decoders of tokenizer.json,
// each with the semantics of Hugging Face tokenizers.
#include "text/components.h"

#include <algorithm>

#include "huginn/common.h"
#include "huginn/json.h"
#include "text/regex.h"
#include "text/unicode.h"

namespace huginn::text {
namespace {

// ---- helpers for reading components ---------------------------------------

std::string type_of(const json& j, const std::string& where) {
  if (!j.is_object()) fail(where, ": expected an object");
  auto it = j.find("type");
  if (it == j.end() || !it->is_string()) fail(where, ": missing \"type\"");
  return it->get<std::string>();
}

bool opt_bool(const json& j, const char* key, bool def) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  return it->get<bool>();
}

std::string req_string(const json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) fail(where, ": missing string field \"", key, "\"");
  return it->get<std::string>();
}

uint32_t single_char(const std::string& s, const std::string& where) {
  size_t i = 0;
  if (s.empty()) fail(where, ": expected a single character, got an empty string");
  const uint32_t c = next_cp(s, i);
  if (i != s.size()) fail(where, ": expected a single character, got '", s, "'");
  return c;
}

[[noreturn]] void unsupported(const std::string& kind, const std::string& type, const std::string& where,
                              const char* supported) {
  fail(where, ": unsupported ", kind, " type '", type, "' (supported: ", supported, ")");
}

// A pattern: a literal string or an Oniguruma regex; either yields match spans.
struct Pattern {
  std::string literal;
  std::unique_ptr<Regex> re;

  static Pattern from_json(const json& j, const std::string& where) {
    Pattern p;
    if (j.is_object() && j.contains("Regex")) {
      p.re = std::make_unique<Regex>(j.at("Regex").get<std::string>());
    } else if (j.is_object() && j.contains("String")) {
      p.literal = j.at("String").get<std::string>();
      if (p.literal.empty()) p.re = std::make_unique<Regex>("");
    } else {
      fail(where, ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
    }
    return p;
  }

  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const {
    if (re) return re->find_all(s);
    std::vector<std::pair<size_t, size_t>> out;
    size_t pos = 0;
    while ((pos = s.find(literal, pos)) != std::string_view::npos) {
      out.emplace_back(pos, pos + literal.size());
      pos += literal.size();
    }
    return out;
  }

  std::string replace_all(std::string_view s, const std::string& content) const {
    std::string out;
    out.reserve(s.size());
    size_t last = 0;
    for (auto [b, e] : find_all(s)) {
      out.append(s.substr(last, b - last));
      out.append(content);
      last = e;
    }
    out.append(s.substr(last));
    return out;
  }
};

// ---- splitting -------------------------------------------------------------

enum class Behavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

Behavior parse_behavior(const std::string& s, const std::string& where) {
  if (s == "Removed") return Behavior::Removed;
  if (s == "Isolated") return Behavior::Isolated;
  if (s == "MergedWithPrevious") return Behavior::MergedWithPrevious;
  if (s == "MergedWithNext") return Behavior::MergedWithNext;
  if (s == "Contiguous") return Behavior::Contiguous;
  fail(where, ": unknown split behavior '", s, "'");
}

struct Span {
  size_t b, e;
  bool match;
};

std::vector<Span> spans_from_matches(std::string_view s, const std::vector<std::pair<size_t, size_t>>& m) {
  if (s.empty()) return {{0, 0, false}};
  std::vector<Span> out;
  out.reserve(m.size() * 2 + 1);
  size_t prev = 0;
  for (auto [b, e] : m) {
    if (prev != b) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev != s.size()) out.push_back({prev, s.size(), false});
  return out;
}

// Every code point for which pred holds is a match of its own.
template <class F>
std::vector<Span> spans_from_pred(std::string_view s, F&& pred) {
  if (s.empty()) return {{0, 0, false}};
  std::vector<Span> out;
  size_t last = 0, i = 0;
  while (i < s.size()) {
    const size_t b = i;
    const uint32_t c = next_cp(s, i);
    if (pred(c)) {
      if (last < b) out.push_back({last, b, false});
      out.push_back({b, i, true});
      last = i;
    }
  }
  if (s.size() > last) out.push_back({last, s.size(), false});
  return out;
}

void split_piece(const Piece& p, std::vector<Span> spans, bool invert, Behavior beh, std::vector<Piece>& out) {
  if (invert)
    for (auto& sp : spans) sp.match = !sp.match;
  std::vector<Span> acc;  // match now means "remove"
  acc.reserve(spans.size());
  bool prev = false;
  switch (beh) {
    case Behavior::Isolated:
      for (auto& sp : spans) acc.push_back({sp.b, sp.e, false});
      break;
    case Behavior::Removed:
      acc = spans;
      break;
    case Behavior::Contiguous:
      for (auto& sp : spans) {
        if (sp.match == prev && !acc.empty()) acc.back().e = sp.e;
        else acc.push_back({sp.b, sp.e, false});
        prev = sp.match;
      }
      break;
    case Behavior::MergedWithPrevious:
      for (auto& sp : spans) {
        if (sp.match && !prev && !acc.empty()) acc.back().e = sp.e;
        else acc.push_back({sp.b, sp.e, false});
        prev = sp.match;
      }
      break;
    case Behavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !prev && !acc.empty()) acc.back().b = it->b;
        else acc.push_back({it->b, it->e, false});
        prev = it->match;
      }
      std::reverse(acc.begin(), acc.end());
      break;
  }
  for (auto& sp : acc) {
    if (sp.match || sp.e <= sp.b) continue;
    out.push_back({p.s.substr(sp.b, sp.e - sp.b), p.at_start && sp.b == 0});
  }
}

template <class F>
void split_all(std::vector<Piece>& pieces, F&& fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (auto& p : pieces) fn(p, out);
  pieces.swap(out);
}

// ---- normalizers -------------------------------------------------------------

struct UnicodeNorm : Normalizer {
  NormForm f;
  explicit UnicodeNorm(NormForm f) : f(f) {}
  void run(std::string& s) const override { s = normalize(s, f); }
};
struct LowercaseNorm : Normalizer {
  void run(std::string& s) const override { s = to_lower(s); }
};
struct StripNorm : Normalizer {
  bool left, right;
  StripNorm(bool l, bool r) : left(l), right(r) {}
  void run(std::string& s) const override {
    size_t b = 0, e = s.size();
    if (left) {
      while (b < e) {
        size_t i = b;
        if (!is_white_space(next_cp(s, i))) break;
        b = i;
      }
    }
    if (right) {
      while (e > b) {
        const uint32_t c = prev_cp(s, e);
        if (!is_white_space(c)) break;
        e -= c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
      }
    }
    s = s.substr(b, e - b);
  }
};
struct ReplaceNorm : Normalizer {
  Pattern pat;
  std::string content;
  void run(std::string& s) const override { s = pat.replace_all(s, content); }
};
struct PrependNorm : Normalizer {
  std::string prepend;
  void run(std::string& s) const override {
    if (!s.empty()) s.insert(0, prepend);
  }
};
struct AppendNorm : Normalizer {
  std::string append;
  void run(std::string& s) const override {
    if (!s.empty()) s.append(append);
  }
};
struct ByteLevelNorm : Normalizer {
  void run(std::string& s) const override {
    std::string out;
    out.reserve(s.size() * 2);
    for (unsigned char b : s) out += byte_to_char(b);
    s.swap(out);
  }
};
// Chained steps can grow the text at every step (ByteLevel doubles non-ASCII
// bytes, Replace may lengthen): a sequence may make it at most this many times
// longer (plus a constant), whatever the file says.
constexpr size_t kMaxGrowth = 16, kMaxGrowthSlack = 4096;
struct SequenceNorm : Normalizer {
  std::vector<std::unique_ptr<Normalizer>> items;
  void run(std::string& s) const override {
    const size_t limit = s.size() * kMaxGrowth + kMaxGrowthSlack;
    for (auto& n : items) {
      n->run(s);
      if (s.size() > limit) fail("tokenizer: the normalizer sequence makes the text more than ", kMaxGrowth, "x longer");
    }
  }
};

// ---- pre-tokenizers -----------------------------------------------------------

struct SplitPre : PreTokenizer {
  Pattern pat;
  Behavior beh;
  bool invert;
  void run(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      split_piece(p, spans_from_matches(p.s, pat.find_all(p.s)), invert, beh, out);
    });
  }
};

const Regex& gpt2_regex() {
  static const Regex re("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+");
  return re;
}

struct ByteLevelPre : PreTokenizer {
  bool add_prefix_space, use_regex;
  void run(std::vector<Piece>& pieces) const override {
    std::vector<Piece> out;
    out.reserve(pieces.size());
    for (auto& p : pieces) {
      Piece q = std::move(p);
      if (add_prefix_space && (q.s.empty() || q.s[0] != ' ')) q.s.insert(q.s.begin(), ' ');
      if (use_regex) {
        split_piece(q, spans_from_matches(q.s, gpt2_regex().find_all(q.s)), false, Behavior::Isolated, out);
      } else if (!q.s.empty()) {
        out.push_back(std::move(q));
      }
    }
    for (auto& p : out) {
      std::string m;
      m.reserve(p.s.size() * 2);
      for (unsigned char b : p.s) m += byte_to_char(b);
      p.s.swap(m);
    }
    pieces.swap(out);
  }
};

enum class Prepend { Always, First, Never };

Prepend parse_prepend(const json& j, const std::string& where) {
  auto it = j.find("prepend_scheme");
  if (it != j.end() && !it->is_null()) {
    const std::string s = it->get<std::string>();
    if (s == "always") return Prepend::Always;
    if (s == "first") return Prepend::First;
    if (s == "never") return Prepend::Never;
    fail(where, ": unknown prepend_scheme '", s, "'");
  }
  return opt_bool(j, "add_prefix_space", true) ? Prepend::Always : Prepend::Never;
}

struct MetaspacePre : PreTokenizer {
  std::string rep;
  uint32_t rep_cp;
  Prepend scheme;
  bool split;
  void run(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      Piece q{std::string(), p.at_start};
      q.s.reserve(p.s.size() + 8);
      for (char ch : p.s) {
        if (ch == ' ') q.s += rep;
        else q.s.push_back(ch);
      }
      const bool starts = q.s.compare(0, rep.size(), rep) == 0;
      if (!starts && (scheme == Prepend::Always || (scheme == Prepend::First && q.at_start))) q.s.insert(0, rep);
      if (split) {
        split_piece(q, spans_from_pred(q.s, [&](uint32_t c) { return c == rep_cp; }), false,
                    Behavior::MergedWithNext, out);
      } else if (!q.s.empty()) {
        out.push_back(std::move(q));
      }
    });
  }
};

struct PredPre : PreTokenizer {
  enum Kind { Digits, Punct, WhitespaceSplit, CharDelim } kind;
  Behavior beh;
  uint32_t delim = 0;
  void run(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      switch (kind) {
        case Digits: split_piece(p, spans_from_pred(p.s, is_numeric), false, beh, out); break;
        case Punct: split_piece(p, spans_from_pred(p.s, is_punctuation), false, beh, out); break;
        case WhitespaceSplit: split_piece(p, spans_from_pred(p.s, is_white_space), false, beh, out); break;
        case CharDelim:
          split_piece(p, spans_from_pred(p.s, [&](uint32_t c) { return c == delim; }), false, beh, out);
          break;
      }
    });
  }
};

// Whitespace: keeps the runs of `\w+|[^\w\s]+`, drops the rest.
struct WhitespacePre : PreTokenizer {
  void run(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      const std::string& s = p.s;
      size_t i = 0;
      while (i < s.size()) {
        const size_t b = i;
        size_t j = i;
        const uint32_t c = next_cp(s, j);
        if (is_word_char(c)) {
          i = j;
          while (i < s.size()) {
            size_t k = i;
            if (!is_word_char(next_cp(s, k))) break;
            i = k;
          }
        } else if (!is_white_space(c)) {
          i = j;
          while (i < s.size()) {
            size_t k = i;
            const uint32_t d = next_cp(s, k);
            if (is_word_char(d) || is_white_space(d)) break;
            i = k;
          }
        } else {
          i = j;
          continue;
        }
        out.push_back({s.substr(b, i - b), p.at_start && b == 0});
      }
    });
  }
};

struct BertPre : PreTokenizer {
  void run(std::vector<Piece>& pieces) const override {
    split_all(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      split_piece(p, spans_from_pred(p.s, is_white_space), false, Behavior::Removed, out);
    });
    split_all(pieces, [&](const Piece& p, std::vector<Piece>& out) {
      split_piece(p, spans_from_pred(p.s, is_punctuation), false, Behavior::Isolated, out);
    });
  }
};

struct SequencePre : PreTokenizer {
  std::vector<std::unique_ptr<PreTokenizer>> items;
  static size_t bytes(const std::vector<Piece>& pieces) {
    size_t n = 0;
    for (auto& p : pieces) n += p.s.size();
    return n;
  }
  void run(std::vector<Piece>& pieces) const override {
    const size_t limit = bytes(pieces) * kMaxGrowth + kMaxGrowthSlack;
    for (auto& p : items) {
      p->run(pieces);
      if (bytes(pieces) > limit)
        fail("tokenizer: the pre-tokenizer sequence makes the text more than ", kMaxGrowth, "x longer");
    }
  }
};

// ---- post-processors ------------------------------------------------------------

struct TemplatePost : PostProcessor {
  // Each item: the ids of a special token, or empty with is_seq for $A.
  struct Item {
    bool is_seq;
    std::vector<int> ids;
  };
  std::vector<Item> single;
  void run(std::vector<int>& ids, bool add_special) const override {
    std::vector<int> out;
    out.reserve(ids.size() + 4);
    for (auto& it : single) {
      if (it.is_seq) out.insert(out.end(), ids.begin(), ids.end());
      else if (add_special) out.insert(out.end(), it.ids.begin(), it.ids.end());
    }
    ids.swap(out);
  }
};
struct WrapPost : PostProcessor {  // BertProcessing / RobertaProcessing: CLS $A SEP
  int cls, sep;
  void run(std::vector<int>& ids, bool add_special) const override {
    if (!add_special) return;
    ids.insert(ids.begin(), cls);
    ids.push_back(sep);
  }
};
struct NoopPost : PostProcessor {
  void run(std::vector<int>&, bool) const override {}
};
struct SequencePost : PostProcessor {
  std::vector<std::unique_ptr<PostProcessor>> items;
  void run(std::vector<int>& ids, bool add_special) const override {
    for (auto& p : items) p->run(ids, add_special);
  }
};

// ---- decoders -------------------------------------------------------------------

struct ByteLevelDec : Decoder {
  void run(std::vector<std::string>& toks) const override {
    std::string bytes;
    for (auto& t : toks) {
      const size_t mark = bytes.size();
      size_t i = 0;
      bool ok = true;
      while (i < t.size()) {
        const int b = char_to_byte(next_cp(t, i));
        if (b < 0) {
          ok = false;
          break;
        }
        bytes.push_back((char)b);
      }
      if (!ok) {
        bytes.resize(mark);
        bytes += t;
      }
    }
    toks.assign(1, utf8_lossy(bytes));
  }
};
struct MetaspaceDec : Decoder {
  uint32_t rep_cp;
  Prepend scheme;
  void run(std::vector<std::string>& toks) const override {
    for (size_t k = 0; k < toks.size(); ++k) {
      std::string out;
      const std::string& t = toks[k];
      size_t i = 0;
      while (i < t.size()) {
        const size_t b = i;
        const uint32_t c = next_cp(t, i);
        if (c == rep_cp) {
          if (!(k == 0 && scheme != Prepend::Never)) out.push_back(' ');
        } else {
          out.append(t, b, i - b);
        }
      }
      toks[k].swap(out);
    }
  }
};
struct ReplaceDec : Decoder {
  Pattern pat;
  std::string content;
  void run(std::vector<std::string>& toks) const override {
    for (auto& t : toks) t = pat.replace_all(t, content);
  }
};
struct ByteFallbackDec : Decoder {
  static int parse(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    auto hex = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    };
    const int h = hex(t[3]), l = hex(t[4]);
    return h < 0 || l < 0 ? -1 : h * 16 + l;
  }
  void run(std::vector<std::string>& toks) const override {
    std::vector<std::string> out;
    out.reserve(toks.size());
    std::string pending;
    auto flush = [&] {
      if (pending.empty()) return;
      if (find_invalid_utf8(pending) == std::string::npos) out.push_back(pending);
      else
        for (size_t k = 0; k < pending.size(); ++k) out.push_back("\xEF\xBF\xBD");
      pending.clear();
    };
    for (auto& t : toks) {
      const int b = parse(t);
      if (b >= 0) {
        pending.push_back((char)b);
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    toks.swap(out);
  }
};
struct FuseDec : Decoder {
  void run(std::vector<std::string>& toks) const override {
    std::string all;
    for (auto& t : toks) all += t;
    toks.assign(1, std::move(all));
  }
};
struct StripDec : Decoder {
  uint32_t content;
  size_t start, stop;
  void run(std::vector<std::string>& toks) const override {
    for (auto& t : toks) {
      std::vector<uint32_t> cps;
      std::vector<size_t> offs;
      size_t i = 0;
      while (i < t.size()) {
        offs.push_back(i);
        cps.push_back(next_cp(t, i));
      }
      offs.push_back(t.size());
      size_t start_cut = 0;
      for (size_t k = 0; k < std::min(start, cps.size()); ++k) {
        if (cps[k] == content) start_cut = k + 1;
        else break;
      }
      size_t stop_cut = cps.size();
      for (size_t k = 0; k < std::min(stop, cps.size() - start_cut); ++k) {
        const size_t idx = cps.size() - k - 1;
        if (cps[idx] == content) stop_cut = idx;
        else break;
      }
      t = t.substr(offs[start_cut], offs[stop_cut] - offs[start_cut]);
    }
  }
};
struct BPEDec : Decoder {
  std::string suffix;
  void run(std::vector<std::string>& toks) const override {
    for (size_t k = 0; k < toks.size(); ++k) {
      std::string out;
      const std::string& t = toks[k];
      const std::string rep = k + 1 == toks.size() ? "" : " ";
      size_t last = 0, pos;
      while (!suffix.empty() && (pos = t.find(suffix, last)) != std::string::npos) {
        out.append(t, last, pos - last);
        out += rep;
        last = pos + suffix.size();
      }
      out.append(t, last, std::string::npos);
      toks[k].swap(out);
    }
  }
};
struct SequenceDec : Decoder {
  std::vector<std::unique_ptr<Decoder>> items;
  void run(std::vector<std::string>& toks) const override {
    for (auto& d : items) d->run(toks);
  }
};

}  // namespace

// ---- byte table ---------------------------------------------------------------

namespace {
struct ByteTable {
  std::string to_char[256];
  int from_cp[512];
  ByteTable() {
    std::fill(std::begin(from_cp), std::end(from_cp), -1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
      const uint32_t cp = keep ? (uint32_t)b : (uint32_t)(256 + n++);
      append_utf8(to_char[b], cp);
      from_cp[cp] = b;
    }
  }
};
const ByteTable& table() {
  static const ByteTable t;
  return t;
}
}  // namespace

const std::string& byte_to_char(unsigned char b) { return table().to_char[b]; }
int char_to_byte(uint32_t cp) { return cp < 512 ? table().from_cp[cp] : -1; }

// ---- factories ------------------------------------------------------------------

std::unique_ptr<Normalizer> make_normalizer(const json& j, const std::string& where) {
  const std::string t = type_of(j, where);
  const std::string w = where + " (" + t + ")";
  if (t == "NFC") return std::make_unique<UnicodeNorm>(NormForm::NFC);
  if (t == "NFD") return std::make_unique<UnicodeNorm>(NormForm::NFD);
  if (t == "NFKC") return std::make_unique<UnicodeNorm>(NormForm::NFKC);
  if (t == "NFKD") return std::make_unique<UnicodeNorm>(NormForm::NFKD);
  if (t == "Lowercase") return std::make_unique<LowercaseNorm>();
  if (t == "Strip") return std::make_unique<StripNorm>(opt_bool(j, "strip_left", true), opt_bool(j, "strip_right", true));
  if (t == "Replace") {
    auto n = std::make_unique<ReplaceNorm>();
    n->pat = Pattern::from_json(j.at("pattern"), w);
    n->content = req_string(j, "content", w);
    return n;
  }
  if (t == "Prepend") {
    auto n = std::make_unique<PrependNorm>();
    n->prepend = req_string(j, "prepend", w);
    return n;
  }
  if (t == "Append") {
    auto n = std::make_unique<AppendNorm>();
    n->append = req_string(j, "append", w);
    return n;
  }
  if (t == "ByteLevel") return std::make_unique<ByteLevelNorm>();
  if (t == "Sequence") {
    auto n = std::make_unique<SequenceNorm>();
    const json& items = j.at("normalizers");
    for (size_t i = 0; i < items.size(); ++i)
      n->items.push_back(make_normalizer(items[i], str(where, ".normalizers[", i, "]")));
    return n;
  }
  unsupported("normalizer", t, where, "NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, Append, ByteLevel, Sequence");
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j, const std::string& where) {
  const std::string t = type_of(j, where);
  const std::string w = where + " (" + t + ")";
  if (t == "Split") {
    auto p = std::make_unique<SplitPre>();
    p->pat = Pattern::from_json(j.at("pattern"), w);
    p->beh = parse_behavior(req_string(j, "behavior", w), w);
    p->invert = opt_bool(j, "invert", false);
    return p;
  }
  if (t == "ByteLevel") {
    auto p = std::make_unique<ByteLevelPre>();
    p->add_prefix_space = opt_bool(j, "add_prefix_space", true);
    p->use_regex = opt_bool(j, "use_regex", true);
    return p;
  }
  if (t == "Metaspace") {
    auto p = std::make_unique<MetaspacePre>();
    p->rep = j.contains("replacement") ? j.at("replacement").get<std::string>() : "\xE2\x96\x81";
    p->rep_cp = single_char(p->rep, w + ".replacement");
    p->scheme = parse_prepend(j, w);
    p->split = opt_bool(j, "split", true);
    return p;
  }
  if (t == "Digits") {
    auto p = std::make_unique<PredPre>();
    p->kind = PredPre::Digits;
    p->beh = opt_bool(j, "individual_digits", false) ? Behavior::Isolated : Behavior::Contiguous;
    return p;
  }
  if (t == "Punctuation") {
    auto p = std::make_unique<PredPre>();
    p->kind = PredPre::Punct;
    auto it = j.find("behavior");
    p->beh = it == j.end() || it->is_null() ? Behavior::Isolated : parse_behavior(it->get<std::string>(), w);
    return p;
  }
  if (t == "WhitespaceSplit") {
    auto p = std::make_unique<PredPre>();
    p->kind = PredPre::WhitespaceSplit;
    p->beh = Behavior::Removed;
    return p;
  }
  if (t == "CharDelimiterSplit") {
    auto p = std::make_unique<PredPre>();
    p->kind = PredPre::CharDelim;
    p->beh = Behavior::Removed;
    p->delim = single_char(req_string(j, "delimiter", w), w + ".delimiter");
    return p;
  }
  if (t == "Whitespace") return std::make_unique<WhitespacePre>();
  if (t == "BertPreTokenizer") return std::make_unique<BertPre>();
  if (t == "Sequence") {
    auto p = std::make_unique<SequencePre>();
    const json& items = j.at("pretokenizers");
    for (size_t i = 0; i < items.size(); ++i)
      p->items.push_back(make_pre_tokenizer(items[i], str(where, ".pretokenizers[", i, "]")));
    return p;
  }
  unsupported("pre_tokenizer", t, where,
              "Split, ByteLevel, Metaspace, Digits, Punctuation, Whitespace, WhitespaceSplit, CharDelimiterSplit, "
              "BertPreTokenizer, Sequence");
}

std::unique_ptr<PostProcessor> make_post_processor(const json& j, const std::string& where) {
  const std::string t = type_of(j, where);
  const std::string w = where + " (" + t + ")";
  if (t == "ByteLevel") return std::make_unique<NoopPost>();
  if (t == "TemplateProcessing") {
    auto p = std::make_unique<TemplatePost>();
    const json& single = j.at("single");
    if (!single.is_array()) fail(w, ": \"single\" must be a list of pieces");
    const json& specials = j.contains("special_tokens") ? j.at("special_tokens") : json::object();
    for (const json& piece : single) {
      if (piece.contains("Sequence")) {
        const std::string id = piece.at("Sequence").at("id").get<std::string>();
        if (id != "A") fail(w, ": the single template may only use sequence $A, not $", id);
        p->single.push_back({true, {}});
      } else if (piece.contains("SpecialToken")) {
        const std::string id = piece.at("SpecialToken").at("id").get<std::string>();
        if (!specials.contains(id)) fail(w, ": special token '", id, "' is missing from special_tokens");
        {
          const json& ids = specials.at(id).at("ids");
          if (!ids.is_array()) fail(w, ": special token '", id, "' ids must be a list");
          std::vector<int> v;
          for (size_t k = 0; k < ids.size(); ++k) v.push_back(token_id(ids[k], str(w, ": special token '", id, "' id")));
          p->single.push_back({false, std::move(v)});
        }
      } else {
        fail(w, ": unknown template piece (", json_brief(piece), ")");
      }
    }
    return p;
  }
  if (t == "BertProcessing" || t == "RobertaProcessing") {
    auto p = std::make_unique<WrapPost>();
    p->cls = token_id(j.at("cls").at(1), w + ".cls");
    p->sep = token_id(j.at("sep").at(1), w + ".sep");
    return p;
  }
  if (t == "Sequence") {
    auto p = std::make_unique<SequencePost>();
    const json& items = j.at("processors");
    for (size_t i = 0; i < items.size(); ++i)
      p->items.push_back(make_post_processor(items[i], str(where, ".processors[", i, "]")));
    return p;
  }
  unsupported("post_processor", t, where, "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, Sequence");
}

std::unique_ptr<Decoder> make_decoder(const json& j, const std::string& where) {
  const std::string t = type_of(j, where);
  const std::string w = where + " (" + t + ")";
  if (t == "ByteLevel") return std::make_unique<ByteLevelDec>();
  if (t == "Metaspace") {
    auto d = std::make_unique<MetaspaceDec>();
    const std::string rep = j.contains("replacement") ? j.at("replacement").get<std::string>() : "\xE2\x96\x81";
    d->rep_cp = single_char(rep, w + ".replacement");
    d->scheme = parse_prepend(j, w);
    return d;
  }
  if (t == "Replace") {
    auto d = std::make_unique<ReplaceDec>();
    d->pat = Pattern::from_json(j.at("pattern"), w);
    d->content = req_string(j, "content", w);
    return d;
  }
  if (t == "ByteFallback") return std::make_unique<ByteFallbackDec>();
  if (t == "Fuse") return std::make_unique<FuseDec>();
  if (t == "Strip") {
    auto d = std::make_unique<StripDec>();
    d->content = single_char(req_string(j, "content", w), w + ".content");
    d->start = json_count(j, "start", w);
    d->stop = json_count(j, "stop", w);
    return d;
  }
  if (t == "BPEDecoder") {
    auto d = std::make_unique<BPEDec>();
    d->suffix = j.contains("suffix") ? j.at("suffix").get<std::string>() : "</w>";
    return d;
  }
  if (t == "Sequence") {
    auto d = std::make_unique<SequenceDec>();
    const json& items = j.at("decoders");
    for (size_t i = 0; i < items.size(); ++i)
      d->items.push_back(make_decoder(items[i], str(where, ".decoders[", i, "]")));
    return d;
  }
  unsupported("decoder", t, where, "ByteLevel, Metaspace, Replace, ByteFallback, Fuse, Strip, BPEDecoder, Sequence");
}

int token_id(const json& v, const std::string& where) {
  if (v.is_number_unsigned() && v.get<uint64_t>() < (uint64_t(1) << 31)) return (int)v.get<uint64_t>();
  if (v.is_number_integer() && !v.is_number_unsigned() && v.get<int64_t>() >= 0 &&
      v.get<int64_t>() < (int64_t(1) << 31))
    return (int)v.get<int64_t>();
  fail(where, ": a token id must be an integer in [0, 2^31), got ", json_brief(v));
}

void check_id_space(int64_t max_id, size_t n_tokens, const std::string& where) {
  if (max_id + 1 > (int64_t)(4 * n_tokens + 65536))
    fail(where, ": largest id ", max_id, " for only ", n_tokens,
         " tokens (ids must be nearly contiguous: at most 4 x tokens + 65536)");
}

namespace {
int count_components(const json& j, const std::string& where, int depth) {
  if (depth > kMaxComponentDepth) fail(where, ": Sequence nested deeper than ", kMaxComponentDepth, " levels");
  int n = 1;
  if (j.is_object() && j.contains("type") && j["type"] == "Sequence")
    for (const char* key : {"normalizers", "pretokenizers", "processors", "decoders"})
      if (auto it = j.find(key); it != j.end() && it->is_array())
        for (const json& item : *it) {
          n += count_components(item, where, depth + 1);
          if (n > kMaxComponents) fail(where, ": more than ", kMaxComponents, " components");
        }
  return n;
}
}  // namespace

void check_component_tree(const json& section, const std::string& where) { count_components(section, where, 0); }

}  // namespace huginn::text
