#include "text/unicode.h"

#include <utf8proc.h>

#include <cstdlib>

#include "huginn/common.h"

namespace huginn::text {
namespace {

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
  switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      break;
  }
  // Join_Control and the Other_Alphabetic symbols (circled/squared letters).
  return c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
         (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
}

bool is_numeric(uint32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category((utf8proc_int32_t)c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool is_punctuation(uint32_t c) {
  if (c < 0x80)
    return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
           (c >= 0x7B && c <= 0x7E);
  switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

std::string to_lower(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const uint32_t c = next_cp(s, i);
    if (c < 0x80) {
      out.push_back((c >= 'A' && c <= 'Z') ? (char)(c + 32) : (char)c);
    } else if (c == 0x130) {  // the one unconditional multi-char lowercase mapping
      out.append("i\xCC\x87");
    } else {
      append_utf8(out, (uint32_t)utf8proc_tolower((utf8proc_int32_t)c));
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
  if (form != NormForm::NFC) return utf8proc_normalize(s, opts);
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
    out += utf8proc_normalize(s.substr(start, k - start), opts);
    i = k;
  }
  return out;
}

}  // namespace huginn::text
