// Whole-string number parsing for option values (one implementation for
// every command and spec parser).
#include <cerrno>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "huginn/common.h"

namespace huginn {

bool parse_int(const std::string& s, long long& out) {
  if (s.empty() || std::isspace((unsigned char)s[0])) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE || end != s.c_str() + s.size()) return false;
  out = v;
  return true;
}

bool parse_uint(const std::string& s, unsigned long long& out) {
  if (s.empty() || !std::isdigit((unsigned char)s[0])) return false;  // strtoull would accept "-1"
  errno = 0;
  char* end = nullptr;
  const unsigned long long v = std::strtoull(s.c_str(), &end, 10);
  if (errno == ERANGE || end != s.c_str() + s.size()) return false;
  out = v;
  return true;
}

bool parse_double(const std::string& s, double& out) {
  if (s.empty() || std::isspace((unsigned char)s[0])) return false;
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (errno == ERANGE || end != s.c_str() + s.size() || !std::isfinite(v)) return false;
  out = v;
  return true;
}

std::vector<long long> parse_int_list(const std::string& s, const std::string& what) {
  std::vector<long long> out;
  std::string cur;
  bool after_comma = true;  // no number since the last comma (or the start)
  auto flush = [&] {
    if (cur.empty()) return;
    long long v = 0;
    if (!parse_int(cur, v)) fail("invalid ", what, " '", printable(cur, 40), "'");
    out.push_back(v);
    cur.clear();
    after_comma = false;
  };
  // "1,,2" or ",1" is a number left out, not a shorter list (a trailing comma,
  // as a loop that prints "1," writes, is harmless).
  auto missing = [&] { fail("a ", what, " is missing between commas in '", printable(s, 60), "'"); };
  for (char ch : s) {
    if (ch == ',') {
      flush();
      if (after_comma) missing();
      after_comma = true;
    } else if (ch == ' ' || ch == '[' || ch == ']' || ch == '\n' || ch == '\t' || ch == '\r') {
      flush();
    } else {
      cur.push_back(ch);
    }
  }
  flush();
  return out;
}

std::string printable(const std::string& s, size_t max) {
  std::string r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (r.size() >= max) return r + "...";
    const unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c < 0x7f) {
      r += (char)c;
    } else {
      static const char* hex = "0123456789abcdef";
      r += "\\x";
      r += hex[c >> 4];
      r += hex[c & 15];
    }
  }
  return r;
}

}  // namespace huginn
