// GGUF files: the header (magic, version, counts, every metadata type,
// arrays, strings, tensor infos, alignment, offsets, type ids) through
// gguf::File, dequantization of small tensors, then the file as a complete
// model (config from metadata, tensor names and shapes, embedded tokenizer).
#include <sys/mman.h>
#include <unistd.h>

#include <string>

#include "fuzz_common.h"
#include "huginn/gguf.h"
#include "huginn/loaded_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An in-memory file (memfd), opened by path as the loader does: no disk I/O.
  static const int fd = ::memfd_create("fuzz.gguf", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (fd < 0 || ::ftruncate(fd, 0) != 0 || ::pwrite(fd, data, size, 0) != (ssize_t)size) return 0;
  HUGINN_FUZZ_EXPECTED({
    huginn::gguf::File f(path);
    for (const auto& t : f.tensors()) {
      int64_t n = 1;
      for (int64_t d : t.ne) n *= d;
      if (n <= 4096) {
        HUGINN_FUZZ_EXPECTED(f.to_f32(t));
      }
    }
    huginn::LoadedModel m = huginn::load_model(path);
  });
  return 0;
}
