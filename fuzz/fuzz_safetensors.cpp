// safetensors files: the header (JSON, offsets, shapes, dtypes, overlaps) and
// the data (conversion to float32, NaN/Inf scan).
#include <unistd.h>

#include <cstdio>
#include <string>

#include "fuzz_common.h"
#include "huginn/safetensors.h"
#include "model/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/huginn_fuzz_safetensors." + std::to_string(::getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) return 0;
  std::fwrite(data, 1, size, f);
  std::fclose(f);
  HUGINN_FUZZ_EXPECTED({
    huginn::TensorStore s = huginn::TensorStore::open_file(path);
    for (const auto& [name, t] : s.tensors()) {
      huginn::scan_non_finite(t);
      if (t.numel() <= 4096) {
        HUGINN_FUZZ_EXPECTED(t.to_f32());
      }
    }
    huginn::check_small_tensors_finite(s);
  });
  return 0;
}
