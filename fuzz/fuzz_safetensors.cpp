// safetensors files: the header (JSON, offsets, shapes, dtypes, overlaps) and
// the data (conversion to float32, NaN/Inf scan).
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "fuzz_common.h"
#include "huginn/safetensors.h"
#include "huginn/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An in-memory file (memfd), opened by path as the loader does: no disk I/O.
  static const int fd = ::memfd_create("fuzz.safetensors", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
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
