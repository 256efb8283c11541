#include "text/regex.h"

#include <oniguruma.h>

#include <mutex>

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

struct Region {
  OnigRegion* r = onig_region_new();
  ~Region() { onig_region_free(r, 1); }
};
}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  init_onig();
  OnigErrorInfo einfo;
  const auto* p = (const OnigUChar*)pattern.data();
  const int rc = onig_new(&re_, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8,
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
