#include "text/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "huginn/common.h"

namespace huginn::text {
namespace {

// ---- Hugging Face tokenizers' own Unicode tables ---------------------------
// Each part of the reference has its own Unicode version (the unicode-
// categories crate behind Punctuation is old, Rust's char methods behind
// Digits and Lowercase are new, the normalization crate is in between), so
// the predicates below use tables generated from the reference itself
// (scripts/gen_unicode_classes.js), not utf8proc's current Unicode.
struct CpRange {
  uint32_t first, last;
};
#define HUGINN_UNICODE_CLASS(name, ...) const CpRange k##name[] = {__VA_ARGS__};
#define HUGINN_UNICODE_LOWER(cp, ...)
#include "text/unicode_tables.inc"
#undef HUGINN_UNICODE_CLASS
#undef HUGINN_UNICODE_LOWER

struct LowerEntry {
  uint32_t cp;
  uint32_t out[2];  // the second is 0 unless the mapping is two code points (U+0130 only)
};
const LowerEntry kLower[] = {
#define HUGINN_UNICODE_CLASS(name, ...)
#define HUGINN_UNICODE_LOWER(cp, ...) {cp, __VA_ARGS__},
#include "text/unicode_tables.inc"
#undef HUGINN_UNICODE_CLASS
#undef HUGINN_UNICODE_LOWER
};

template <size_t N>
bool in_table(const CpRange (&r)[N], uint32_t c) {
  const CpRange* it = std::upper_bound(r, r + N, c, [](uint32_t v, const CpRange& x) { return v < x.first; });
  return it != r && c <= (it - 1)->last;
}

// Length of the valid prefix of a UTF-8 sequence at s[i] (0 if the lead byte
// itself is invalid) and the full length it announces.
void utf8_prefix(std::string_view s, size_t i, int& valid, int& need) {
  const unsigned char c = (unsigned char)s[i];
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    need = 1;
    valid = 0;
    return;
  }
  valid = 1;
  for (int k = 1; k < need; ++k) {
    if (i + k >= s.size()) return;
    const unsigned char b = (unsigned char)s[i + k];
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return;
    valid = k + 1;
  }
}

}  // namespace

size_t find_invalid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if ((unsigned char)s[i] < 0x80) {
      ++i;
      continue;
    }
    int valid, need;
    utf8_prefix(s, i, valid, need);
    if (valid != need) return i;
    i += need;
  }
  return std::string_view::npos;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    if ((unsigned char)s[i] < 0x80) {
      out.push_back(s[i++]);
      continue;
    }
    int valid, need;
    utf8_prefix(s, i, valid, need);
    if (valid == need) {
      out.append(s.substr(i, need));
      i += need;
    } else {
      out.append("\xEF\xBF\xBD");
      i += valid > 0 ? valid : 1;
    }
  }
  return out;
}

bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_word_char(uint32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return in_table(kWord, c);
}

bool is_single_word_char(uint32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  return in_table(kSingleWord, c);
}

bool is_numeric(uint32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  return in_table(kNumeric, c);
}

bool is_punctuation(uint32_t c) { return in_table(kPunct, c); }

std::string to_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const uint32_t c = next_cp(s, i);
    if (c < 0x80) {
      out.push_back((c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c);
    } else {
      const LowerEntry* e = std::lower_bound(std::begin(kLower), std::end(kLower), c,
                                             [](const LowerEntry& x, uint32_t v) { return x.cp < v; });
      if (e == std::end(kLower) || e->cp != c) {
        append_utf8(out, c);
      } else {
        append_utf8(out, e->out[0]);
        if (e->out[1]) append_utf8(out, e->out[1]);
      }
    }
  }
  return out;
}

namespace {
std::string utf8proc_normalize(std::string_view s, int opts) {
  utf8proc_uint8_t* dst = nullptr;
  const auto n = utf8proc_map((const utf8proc_uint8_t*)s.data(), (utf8proc_ssize_t)s.size(), &dst,
                              (utf8proc_option_t)opts);
  if (n < 0) fail("unicode normalization failed: ", utf8proc_errmsg(n));
  std::string out((const char*)dst, (size_t)n);
  std::free(dst);
  return out;
}

// The starters of the canonical composites utf8proc knows and the reference
// does not (e.g. U+11935 of U+11938): utf8proc would compose them, the
// reference cannot. Sorted; built once from utf8proc's properties.
const std::vector<uint32_t>& unknown_composite_starters() {
  static const std::vector<uint32_t> v = [] {
    std::vector<uint32_t> out;
    for (uint32_t c = 0x300; c < 0x110000; ++c) {
      const utf8proc_property_t* p = utf8proc_get_property((utf8proc_int32_t)c);
      if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0 || in_table(kNfdChanged, c)) continue;
      utf8proc_int32_t buf[8];
      int boundclass = 0;
      const auto n = utf8proc_decompose_char((utf8proc_int32_t)c, buf, 8, UTF8PROC_DECOMPOSE, &boundclass);
      if (n > 1) out.push_back((uint32_t)buf[0]);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }();
  return v;
}

// A code point on which utf8proc's (newer) Unicode and the reference's
// normalization tables disagree: one the reference does not decompose, a
// mark it does not know (a starter to it: nothing reorders across it), the
// starter of a composite it does not know. It passes through unchanged and
// the text on either side is normalized separately.
bool kept_by_reference(uint32_t c, int opts) {
  if (c < 0x300) return false;
  const utf8proc_property_t* p = utf8proc_get_property((utf8proc_int32_t)c);
  if (p->combining_class != 0 && !in_table(kCombining, c)) return true;
  if ((opts & UTF8PROC_COMPOSE) && std::binary_search(unknown_composite_starters().begin(),
                                                      unknown_composite_starters().end(), c))
    return true;
  if (p->decomp_seqindex == UINT16_MAX) return false;
  if ((opts & UTF8PROC_COMPAT) ? in_table(kNfkdChanged, c) : in_table(kNfdChanged, c)) return false;
  utf8proc_int32_t buf[32];
  int boundclass = 0;
  const auto n = utf8proc_decompose_char((utf8proc_int32_t)c, buf, 32,
                                         (utf8proc_option_t)(UTF8PROC_DECOMPOSE | (opts & UTF8PROC_COMPAT)), &boundclass);
  return !(n == 1 && (uint32_t)buf[0] == c);
}

// utf8proc with the reference's tables: the text is normalized between the
// code points the reference keeps, which are copied as they are.
std::string normalize_as_reference(std::string_view s, int opts) {
  std::string out;
  size_t i = 0, start = 0;
  while (i < s.size()) {
    const size_t at = i;
    const uint32_t c = next_cp(s, i);
    if (!kept_by_reference(c, opts)) continue;
    if (at > start) out += utf8proc_normalize(s.substr(start, at - start), opts);
    out.append(s.substr(at, i - at));
    start = i;
  }
  if (start == 0) return utf8proc_normalize(s, opts);
  if (start < s.size()) out += utf8proc_normalize(s.substr(start), opts);
  return out;
}
}  // namespace

std::string normalize(std::string_view s, NormForm form) {
  int opts = UTF8PROC_STABLE;
  switch (form) {
    case NormForm::NFC: opts |= UTF8PROC_COMPOSE; break;
    case NormForm::NFD: opts |= UTF8PROC_DECOMPOSE; break;
    case NormForm::NFKC: opts |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    case NormForm::NFKD: opts |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
  }
  // Fast paths: ASCII is invariant under every normalization form, and text
  // below U+0300 (no combining marks, no jamo) is already in NFC.
  bool ascii = true, below_300 = true;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char ch = (unsigned char)s[i];
    if (ch < 0x80) continue;
    ascii = false;
    if (ch >= 0xCC) {  // lead bytes of U+0300 and above
      below_300 = false;
      break;
    }
  }
  if (ascii || (form == NormForm::NFC && below_300)) return std::string(s);
  if (form != NormForm::NFC) return normalize_as_reference(s, opts);
  // NFC piecewise: a code point below U+0300 never decomposes under NFC and
  // never composes with what precedes it, so only the runs of code points at
  // or above U+0300, together with the one character before each run (the
  // starter they may compose with), need normalizing.
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i, prev = i;
    while (j < s.size() && (unsigned char)s[j] < 0xCC) {
      prev = j;
      j += utf8_len((unsigned char)s[j]);
    }
    if (j >= s.size()) {
      out.append(s.substr(i));
      break;
    }
    const size_t start = j > i ? prev : j;  // include the starter before the run
    out.append(s.substr(i, start - i));
    size_t k = j;
    while (k < s.size() && (unsigned char)s[k] >= 0xCC) k += utf8_len((unsigned char)s[k]);
    out += normalize_as_reference(s.substr(start, k - start), opts);
    i = k;
  }
  return out;
}

}  // namespace huginn::text
