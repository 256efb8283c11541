// Shared basics: the error type every layer throws, and a tiny string builder.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

namespace huginn {

// All recoverable failures (bad files, bad options, bad input) are reported as
// huginn::Error with a one-line message naming the offending file/tensor/value.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <class... Args>
std::string str(Args&&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

template <class... Args>
[[noreturn]] void fail(Args&&... args) {
  throw Error(str(std::forward<Args>(args)...));
}

}  // namespace huginn
