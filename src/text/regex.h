// Oniguruma regexes with the options and match iteration of Hugging Face
// tokenizers (Ruby/Oniguruma default syntax, UTF-8, the onig crate's find_iter).
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct re_pattern_buffer;

namespace huginn::text {

// The pattern with Unicode general categories (\p{L}, \p{Nd}, \P{S},
// \p{^N}, \pL, long names such as \p{Letter}) and \d / \D spelled out as
// code point ranges from src/text/unicode_classes.inc, the tables of Hugging
// Face tokenizers' regex engine (generated from the npm peer by
// scripts/gen_unicode_classes.js), instead of the possibly older Unicode
// tables of the system's Oniguruma. Anything else is left as written.
std::string with_unicode_classes(const std::string& pattern);

class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // All matches, left to right, as [start, end) byte offsets. Empty matches are
  // reported, except one directly at the end of the previous match.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view s) const;
  const std::string& pattern() const { return pattern_; }

 private:
  re_pattern_buffer* re_ = nullptr;
  std::string pattern_;
};

}  // namespace huginn::text
