#include "huginn/json.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "huginn/common.h"

namespace huginn {

int json_nesting(std::string_view text, int max_depth) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (ch == '\\') escaped = true;
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') in_string = true;
    else if (ch == '[' || ch == '{') {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > max_depth) return max_depth + 1;
      }
    } else if ((ch == ']' || ch == '}') && depth > 0) --depth;
  }
  return deepest;
}

namespace {
// nlohmann's messages quote the last token read; keep the line short.
std::string short_message(const char* what) {
  std::string m = what;
  constexpr size_t kMax = 160;
  if (m.size() > kMax) m = m.substr(0, kMax) + "...";
  for (char& c : m)
    if ((unsigned char)c < 0x20) c = ' ';
  return m;
}
}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& what, int max_depth) {
  if (json_nesting(text, max_depth) > max_depth)
    fail(what, ": invalid JSON: nested deeper than ", max_depth, " levels");
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    fail(what, ": invalid JSON: ", short_message(e.what()));
  }
}

void require_regular_file(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) fail(path, ": cannot open: ", std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(path, ": not a regular file");
}

std::string read_regular_file(const std::string& path, uint64_t max_bytes) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat on the open
  // descriptor then refuses anything but a regular file (no race with stat).
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  if ((uint64_t)st.st_size > max_bytes) {
    ::close(fd);
    fail(path, ": too large (", (uint64_t)st.st_size, " bytes, at most ", max_bytes, ")");
  }
  std::string out((size_t)st.st_size, '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  ::close(fd);
  out.resize(got);  // a file that shrank while read
  return out;
}

nlohmann::json parse_json_file(const std::string& path, int max_depth, uint64_t max_bytes) {
  return parse_json(read_regular_file(path, max_bytes), path, max_depth);
}

bool json_int(const nlohmann::json& v, int64_t lo, int64_t hi, int64_t* out) {
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // NaN fails too; (double)INT64_MAX rounds up to 2^63, which does not convert
    if (!(d >= (double)lo && d <= (double)hi) || d != std::floor(d) || d >= 9223372036854775808.0) return false;
    *out = (int64_t)d;
    return true;
  }
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (hi < 0 || u > (uint64_t)hi || (lo > 0 && u < (uint64_t)lo)) return false;
    *out = (int64_t)u;
    return true;
  }
  if (!v.is_number_integer()) return false;
  const int64_t i = v.get<int64_t>();
  if (i < lo || i > hi) return false;
  *out = i;
  return true;
}

int json_count(const nlohmann::json& obj, const char* key, const std::string& where) {
  const auto it = obj.find(key);  // end() for a non-object too
  int64_t v = 0;
  if (it == obj.end() || !json_int(*it, 0, INT32_MAX, &v))
    fail(where, ": field \"", key, "\" must be an integer in [0, 2^31), got ",
         it == obj.end() ? std::string("nothing") : json_brief(*it));
  return (int)v;
}

std::string json_brief(const nlohmann::json& v) {
  using T = nlohmann::json::value_t;
  switch (v.type()) {
    case T::object: return "an object";
    case T::array: return "an array";
    case T::null: return "null";
    case T::boolean: return v.get<bool>() ? "true" : "false";
    case T::string: {
      const auto& s = v.get_ref<const std::string&>();
      std::string q;
      for (size_t i = 0; i < s.size() && i < 40; ++i) q += (unsigned char)s[i] < 0x20 ? '?' : s[i];
      return str("a string \"", q, s.size() > 40 ? "...\"" : "\"");
    }
    case T::number_integer:
    case T::number_unsigned:
    case T::number_float: return "the number " + v.dump();  // a scalar: dump() does not recurse
    case T::binary: return "binary data";
    case T::discarded: return "nothing";
  }
  return "a value";
}

}  // namespace huginn
