#include "huginn/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "huginn/common.h"

namespace huginn {

namespace {
// Where the rename lands: the file a symbolic link names (the link stays);
// a directory, device, FIFO or socket is refused.
std::string atomic_write_path(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p = path;
  for (int links = 0;; ++links) {
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(p, ec);
    if (ec || !fs::exists(st)) return p.string();  // a new file (or open() reports why not)
    if (fs::is_symlink(st)) {
      if (links == 40) fail(path, ": too many levels of symbolic links");
      const fs::path to = fs::read_symlink(p, ec);
      if (ec) fail(path, ": cannot read the symbolic link: ", ec.message());
      p = to.is_absolute() ? to : p.parent_path() / to;
      continue;
    }
    if (!fs::is_regular_file(st))
      fail(path,
           fs::is_directory(st) ? ": is a directory" : ": exists and is not a regular file (a device, FIFO or socket)",
           "; not replacing it");
    return p.string();
  }
}
}  // namespace

AtomicWriter::AtomicWriter(const std::string& path)
    : path_(atomic_write_path(path)), tmp_(path_ + ".tmp." + std::to_string(getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(tmp_, ": cannot create: ", std::strerror(errno));
}

AtomicWriter::~AtomicWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!done_) ::unlink(tmp_.c_str());
}

void AtomicWriter::write(const void* p, size_t n) {
  if (fd_ < 0) fail(tmp_, ": write after commit");
  const char* c = (const char*)p;
  while (n) {
    const ssize_t w = ::write(fd_, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail(tmp_, ": write failed: ", std::strerror(errno));
    c += w, n -= (size_t)w;
  }
}

void AtomicWriter::commit() {
  const bool ok = ::fsync(fd_) == 0;
  const bool closed = ::close(fd_) == 0;
  fd_ = -1;
  if (!ok || !closed) fail(tmp_, ": cannot flush to disk");
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) fail(path_, ": rename failed: ", std::strerror(errno));
  done_ = true;
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  AtomicWriter w(path);
  w.write(contents.data(), contents.size());
  w.commit();
}

}  // namespace huginn
