#include "text/regex.h"

#include <oniguruma.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>
#include <vector>

#include "huginn/common.h"
#include "text/unicode.h"

namespace huginn::text {
namespace {
void init_onig() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encs[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encs, 1);
  });
}

// ---- Unicode general categories as Hugging Face tokenizers sees them ----------
struct CpRange {
  uint32_t first, last;
};
#define HUGINN_UNICODE_CLASS(name, ...) const CpRange k##name[] = {__VA_ARGS__};
#include "text/unicode_classes.inc"
#undef HUGINN_UNICODE_CLASS

struct Category {
  const CpRange* r;
  size_t n;
};
#define CAT(name) Category{k##name, sizeof(k##name) / sizeof(CpRange)}

// Class name (lowercase, without ' ', '_' and '-', as Oniguruma compares
// them) -> the categories it unites.
const std::map<std::string, std::vector<Category>>& class_table() {
  static const std::map<std::string, std::vector<Category>> t = [] {
    std::map<std::string, std::vector<Category>> m;
    auto add = [&](std::vector<std::string> names, std::vector<Category> cats) {
      for (auto& n : names) m[n] = cats;
    };
    add({"lu", "uppercaseletter"}, {CAT(Lu)});
    add({"ll", "lowercaseletter"}, {CAT(Ll)});
    add({"lt", "titlecaseletter"}, {CAT(Lt)});
    add({"lm", "modifierletter"}, {CAT(Lm)});
    add({"lo", "otherletter"}, {CAT(Lo)});
    add({"lc", "l&", "casedletter"}, {CAT(Lu), CAT(Ll), CAT(Lt)});
    add({"l", "letter"}, {CAT(Lu), CAT(Ll), CAT(Lt), CAT(Lm), CAT(Lo)});
    add({"mn", "nonspacingmark"}, {CAT(Mn)});
    add({"mc", "spacingmark"}, {CAT(Mc)});
    add({"me", "enclosingmark"}, {CAT(Me)});
    add({"m", "mark", "combiningmark"}, {CAT(Mn), CAT(Mc), CAT(Me)});
    add({"nd", "decimalnumber", "digit"}, {CAT(Nd)});
    add({"nl", "letternumber"}, {CAT(Nl)});
    add({"no", "othernumber"}, {CAT(No)});
    add({"n", "number"}, {CAT(Nd), CAT(Nl), CAT(No)});
    add({"pc", "connectorpunctuation"}, {CAT(Pc)});
    add({"pd", "dashpunctuation"}, {CAT(Pd)});
    add({"ps", "openpunctuation"}, {CAT(Ps)});
    add({"pe", "closepunctuation"}, {CAT(Pe)});
    add({"pi", "initialpunctuation"}, {CAT(Pi)});
    add({"pf", "finalpunctuation"}, {CAT(Pf)});
    add({"po", "otherpunctuation"}, {CAT(Po)});
    add({"p", "punctuation", "punct"}, {CAT(Pc), CAT(Pd), CAT(Ps), CAT(Pe), CAT(Pi), CAT(Pf), CAT(Po)});
    add({"sm", "mathsymbol"}, {CAT(Sm)});
    add({"sc", "currencysymbol"}, {CAT(Sc)});
    add({"sk", "modifiersymbol"}, {CAT(Sk)});
    add({"so", "othersymbol"}, {CAT(So)});
    add({"s", "symbol"}, {CAT(Sm), CAT(Sc), CAT(Sk), CAT(So)});
    add({"zs", "spaceseparator"}, {CAT(Zs)});
    add({"zl", "lineseparator"}, {CAT(Zl)});
    add({"zp", "paragraphseparator"}, {CAT(Zp)});
    add({"z", "separator"}, {CAT(Zs), CAT(Zl), CAT(Zp)});
    add({"cc", "control", "cntrl"}, {CAT(Cc)});
    add({"cf", "format"}, {CAT(Cf)});
    add({"co", "privateuse"}, {CAT(Co)});
    return m;
  }();
  return t;
}
#undef CAT

// "\x{41}-\x{5A}\x{61}..." for the categories (sorted, merged).
const std::string& ranges_text(const std::string& key) {
  static std::mutex mu;
  static std::map<std::string, std::string> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  std::vector<CpRange> all;
  for (const Category& c : class_table().at(key)) all.insert(all.end(), c.r, c.r + c.n);
  std::sort(all.begin(), all.end(), [](const CpRange& a, const CpRange& b) { return a.first < b.first; });
  std::vector<CpRange> merged;
  for (const CpRange& r : all) {
    if (!merged.empty() && r.first <= merged.back().last + 1) merged.back().last = std::max(merged.back().last, r.last);
    else merged.push_back(r);
  }
  std::string out;
  char buf[48];
  for (const CpRange& r : merged) {
    if (r.first == r.last) std::snprintf(buf, sizeof buf, "\\x{%X}", r.first);
    else std::snprintf(buf, sizeof buf, "\\x{%X}-\\x{%X}", r.first, r.last);
    out += buf;
  }
  return cache.emplace(key, std::move(out)).first->second;
}

std::string class_key(std::string_view name) {
  std::string k;
  for (char c : name)
    if (c != ' ' && c != '_' && c != '-') k += (char)std::tolower((unsigned char)c);
  return k;
}

struct Region {
  OnigRegion* r = onig_region_new();
  ~Region() { onig_region_free(r, 1); }
};
}  // namespace

std::string with_unicode_classes(const std::string& pat) {
  std::string out;
  out.reserve(pat.size());
  int depth = 0;           // nesting of character classes [...]
  bool class_start = false;  // just after '[' or '[^': a ']' here is a literal
  for (size_t i = 0; i < pat.size(); ++i) {
    const char c = pat[i];
    if (c == '\\' && i + 1 < pat.size()) {
      const char e = pat[i + 1];
      class_start = false;
      std::string key;
      bool negate = false;
      size_t next = i + 2;
      if (e == 'p' || e == 'P') {
        negate = e == 'P';
        if (i + 2 < pat.size() && pat[i + 2] == '{') {
          const size_t close = pat.find('}', i + 3);
          if (close != std::string::npos) {
            std::string_view name(pat.data() + i + 3, close - i - 3);
            if (!name.empty() && name[0] == '^') negate = !negate, name.remove_prefix(1);
            key = class_key(name);
            next = close + 1;
          }
        } else if (i + 2 < pat.size()) {
          key = class_key(std::string_view(pat.data() + i + 2, 1));
          next = i + 3;
        }
      } else if (e == 'd' || e == 'D') {
        key = "nd";
        negate = e == 'D';
      }
      if (!key.empty() && class_table().count(key)) {
        const std::string& r = ranges_text(key);
        if (depth > 0 && !negate) out += r;  // inside [...]: the ranges join the class
        else out += (negate ? "[^" : "[") + r + "]";  // a class of its own (nested when inside one)
        i = next - 1;
        continue;
      }
      out += c;
      out += e;
      ++i;
      continue;
    }
    if (c == '[') {
      if (depth > 0 && i + 1 < pat.size() && pat[i + 1] == ':') {  // POSIX bracket [:alpha:]
        const size_t close = pat.find(":]", i + 2);
        if (close != std::string::npos) {
          out.append(pat, i, close + 2 - i);
          i = close + 1;
          class_start = false;
          continue;
        }
      }
      ++depth;
      out += c;
      class_start = true;
      if (i + 1 < pat.size() && pat[i + 1] == '^') out += '^', ++i;
      continue;
    }
    if (c == ']' && depth > 0 && !class_start) --depth;
    class_start = false;
    out += c;
  }
  return out;
}

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  init_onig();
  OnigErrorInfo einfo;
  const std::string expanded = with_unicode_classes(pattern);
  const auto* p = (const OnigUChar*)expanded.data();
  const int rc = onig_new(&re_, p, p + expanded.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
                          ONIG_SYNTAX_DEFAULT, &einfo);
  if (rc != ONIG_NORMAL) {
    OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, rc, &einfo);
    re_ = nullptr;
    fail("invalid regex '", pattern, "': ", (const char*)msg);
  }
}

Regex::~Regex() {
  if (re_) onig_free(re_);
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view s) const {
  std::vector<std::pair<size_t, size_t>> out;
  Region region;
  const auto* str = (const OnigUChar*)s.data();
  const auto* end = str + s.size();
  size_t last_end = 0;
  bool have_last = false;
  size_t last_match_end = 0;
  while (last_end <= s.size()) {
    onig_region_clear(region.r);
    const int r = onig_search(re_, str, end, str + last_end, end, region.r, ONIG_OPTION_NONE);
    if (r == ONIG_MISMATCH) break;
    if (r < 0) {
      OnigUChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
      onig_error_code_to_str(msg, r);
      fail("regex search failed for '", pattern_, "': ", (const char*)msg);
    }
    const size_t b = (size_t)region.r->beg[0], e = (size_t)region.r->end[0];
    if (b == e && have_last && last_match_end == e) {
      // Never accept an empty match right where the previous match ended.
      last_end += last_end < s.size() ? (size_t)utf8_len((unsigned char)s[last_end]) : 1;
      continue;
    }
    last_end = e;
    last_match_end = e;
    have_last = true;
    out.emplace_back(b, e);
  }
  return out;
}

}  // namespace huginn::text
