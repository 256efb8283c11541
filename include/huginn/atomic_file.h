// Files that appear whole or not at all: written to a temporary file beside
// the destination, flushed to disk, then renamed over it. A crash or an error
// part-way leaves the old file (or none) and no temporary behind.
#pragma once
#include <cstddef>
#include <string>

namespace huginn {

// An open temporary file `<dest>.tmp.<pid>`, renamed over its destination on
// commit() and removed if the writer is destroyed before that. A symbolic link
// at the destination is followed, so the file it names is replaced and the
// link stays; a directory, device, FIFO or socket there is an error, since the
// rename would replace it. Errors name the file and throw huginn::Error.
class AtomicWriter {
 public:
  explicit AtomicWriter(const std::string& path);
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;
  void write(const void* p, size_t n);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool done_ = false;
};

// Writes a text file atomically.
void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace huginn
