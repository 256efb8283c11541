#include "huginn/json.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "huginn/common.h"

namespace huginn {

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

// One pass over a JSON text, outside strings: the nesting depth of arrays and
// objects (counting stops past max_depth) and the number of ':', which in
// valid JSON is one per object member.
struct JsonShape {
  int depth = 0;
  size_t members = 0;
};
JsonShape json_shape(std::string_view text, int max_depth) {
  JsonShape r;
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char ch : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (ch == '\\') escaped = true;
      else if (ch == '"') in_string = false;
      continue;
    }
    if (ch == '"') in_string = true;
    else if (ch == ':')
      ++r.members;
    else if (ch == '[' || ch == '{') {
      if (++depth > r.depth) {
        r.depth = depth;
        if (r.depth > max_depth) return r;
      }
    } else if ((ch == ']' || ch == '}') && depth > 0) --depth;
  }
  return r;
}

size_t object_members(const nlohmann::json& v) {
  size_t n = v.is_object() ? v.size() : 0;
  if (v.is_structured())
    for (const auto& e : v) n += object_members(e);
  return n;
}

// The first key that appears twice in one object, found by parsing again with
// a set of keys per open object (only when object_members came up short).
std::string first_duplicate_key(std::string_view text) {
  std::vector<std::unordered_set<std::string>> keys;
  std::string duplicate;
  struct Found {};
  const auto check = [&](int, nlohmann::json::parse_event_t ev, nlohmann::json& v) {
    using E = nlohmann::json::parse_event_t;
    if (ev == E::object_start)
      keys.emplace_back();
    else if (ev == E::object_end)
      keys.pop_back();
    else if (ev == E::key && !keys.back().insert(v.get<std::string>()).second) {
      duplicate = v.get<std::string>();
      throw Found{};
    }
    return true;
  };
  try {
    (void)nlohmann::json::parse(text.begin(), text.end(), check);
  } catch (const Found&) {
  }
  return duplicate;
}
}  // namespace

nlohmann::json parse_json(std::string_view text, const std::string& what, int max_depth) {
  const JsonShape shape = json_shape(text, max_depth);
  if (shape.depth > max_depth) fail(what, ": invalid JSON: nested deeper than ", max_depth, " levels");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    fail(what, ": invalid JSON: ", short_message(e.what()));
  }
  // RFC 8259 leaves a repeated name's meaning open and nlohmann keeps the last
  // one: a config.json edited by hand with "n_embd" twice would load whichever
  // came second. A repeated key is an error; the count costs one scan and a
  // walk, the search for the key's name is done only when it fails.
  if (object_members(j) != shape.members)
    fail(what, ": invalid JSON: the key \"", printable(first_duplicate_key(text), 60),
         "\" appears twice in one object");
  return j;
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
