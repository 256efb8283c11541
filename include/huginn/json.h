// One way to read untrusted JSON: bounded nesting, bounded size, regular
// files only, and error messages that never serialise the input (nlohmann's
// dump() recurses and crashes on deeply nested values).
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace huginn {

// Deepest nesting of arrays/objects accepted in any JSON input. Published
// configs and tokenizers nest a handful of levels.
constexpr int kJsonMaxDepth = 64;

// Parses text as one JSON value. Throws huginn::Error "WHAT: invalid JSON: ..."
// for bad syntax, a key repeated within one object, or nesting deeper than
// max_depth (checked before anything is built). The message quotes at most a
// few bytes of the input.
nlohmann::json parse_json(std::string_view text, const std::string& what, int max_depth = kJsonMaxDepth);

// Reads a whole regular file (a FIFO, device or directory is refused, so a
// named pipe cannot hang the reader) of at most max_bytes. Throws huginn::Error
// naming the path.
std::string read_regular_file(const std::string& path, uint64_t max_bytes = uint64_t(1) << 31);
// Throws huginn::Error unless path names a regular file (after symlinks).
void require_regular_file(const std::string& path);

// parse_json(read_regular_file(path), path).
nlohmann::json parse_json_file(const std::string& path, int max_depth = kJsonMaxDepth,
                               uint64_t max_bytes = uint64_t(1) << 31);

// A short description of a JSON value for error messages, without
// serialising containers: "an object", "an array", "a string \"ab…\"",
// "the number 1.5", "true", "null".
std::string json_brief(const nlohmann::json& v);

// A JSON number that is an integer in [lo, hi] (an integral float such as 512.0
// too), into *out; false for anything else. Checked before any conversion:
// converting an out-of-range float to an integer is undefined behaviour.
bool json_int(const nlohmann::json& v, int64_t lo, int64_t hi, int64_t* out);

// obj[key] as a count: an integer in [0, 2^31) (through json_int). Throws
// huginn::Error "WHERE: field "KEY" must be an integer in [0, 2^31), got ..."
// when it is missing or anything else.
int json_count(const nlohmann::json& obj, const char* key, const std::string& where);

}  // namespace huginn
