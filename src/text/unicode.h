// UTF-8 and Unicode helpers for the tokenizer, with the semantics of the Rust
// standard library that Hugging Face tokenizers is written against (char
// classes, lowercase, from_utf8_lossy).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace huginn::text {

// Length of the UTF-8 sequence that starts with this (valid) lead byte.
inline int utf8_len(unsigned char lead) {
  return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

// Decodes the code point at s[i] of valid UTF-8 and advances i past it.
inline uint32_t next_cp(std::string_view s, size_t& i) {
  const unsigned char c = (unsigned char)s[i];
  if (c < 0x80) {
    i += 1;
    return c;
  }
  if (c < 0xE0) {
    uint32_t cp = ((c & 0x1Fu) << 6) | ((unsigned char)s[i + 1] & 0x3Fu);
    i += 2;
    return cp;
  }
  if (c < 0xF0) {
    uint32_t cp = ((c & 0x0Fu) << 12) | (((unsigned char)s[i + 1] & 0x3Fu) << 6) | ((unsigned char)s[i + 2] & 0x3Fu);
    i += 3;
    return cp;
  }
  uint32_t cp = ((c & 0x07u) << 18) | (((unsigned char)s[i + 1] & 0x3Fu) << 12) |
                (((unsigned char)s[i + 2] & 0x3Fu) << 6) | ((unsigned char)s[i + 3] & 0x3Fu);
  i += 4;
  return cp;
}

// The code point that ends just before byte offset `end` (end > 0, valid UTF-8).
inline uint32_t prev_cp(std::string_view s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80) --b;
  return next_cp(s, b);
}

inline void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back((char)cp);
  } else if (cp < 0x800) {
    out.push_back((char)(0xC0 | (cp >> 6)));
    out.push_back((char)(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back((char)(0xE0 | (cp >> 12)));
    out.push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back((char)(0x80 | (cp & 0x3F)));
  } else {
    out.push_back((char)(0xF0 | (cp >> 18)));
    out.push_back((char)(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back((char)(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back((char)(0x80 | (cp & 0x3F)));
  }
}

// Byte offset of the first invalid UTF-8 sequence in s, or npos if s is valid
// (strict: no overlongs, surrogates or code points above U+10FFFF).
size_t find_invalid_utf8(std::string_view s);

// Rust's String::from_utf8_lossy: each maximal invalid subpart becomes U+FFFD.
std::string utf8_lossy(std::string_view bytes);

// Character classes, as the reference's parts see them (each with its own
// Unicode version; tables generated from the reference, unicode_tables.inc).
bool is_white_space(uint32_t cp);     // char::is_whitespace, regex \s (White_Space)
bool is_word_char(uint32_t cp);       // the regex \w (Whitespace pre-tokenizer)
bool is_single_word_char(uint32_t cp);  // what a single_word added token may not touch
bool is_numeric(uint32_t cp);         // the Digits pre-tokenizer (char::is_numeric)
bool is_punctuation(uint32_t cp);     // the Punctuation and Bert pre-tokenizers

// The Lowercase normalizer (str::to_lowercase char by char: full mappings, no
// context rules).
std::string to_lower(std::string_view s);

enum class NormForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view s, NormForm form);

}  // namespace huginn::text
