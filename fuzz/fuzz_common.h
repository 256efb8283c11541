// Shared by the libFuzzer harnesses: every input must end in a value or a
// huginn::Error (a one-line error), never a crash, a hang or another exception.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "huginn/common.h"

#define HUGINN_FUZZ_EXPECTED(body) \
  try {                            \
    body;                          \
  } catch (const huginn::Error&) { \
  }

inline std::string_view fuzz_text(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}
