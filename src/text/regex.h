// Oniguruma regexes with the options and match iteration of Hugging Face
// tokenizers (Ruby/Oniguruma default syntax, UTF-8, the onig crate's find_iter).
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct re_pattern_buffer;

namespace huginn::text {

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
