#include "huginn/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "huginn/atomic_file.h"
#include "huginn/common.h"
#include "huginn/json.h"
#include "huginn/stream_write.h"

namespace huginn {
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
struct DTypeInfo {
  DType t;
  const char* name;
  size_t size;
};
const DTypeInfo kDTypes[] = {{DType::F64, "F64", 8},      {DType::F32, "F32", 4},
                             {DType::F16, "F16", 2},      {DType::BF16, "BF16", 2},
                             {DType::I64, "I64", 8},      {DType::I32, "I32", 4},
                             {DType::I16, "I16", 2},      {DType::I8, "I8", 1},
                             {DType::U8, "U8", 1},        {DType::BOOL, "BOOL", 1},
                             {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1}};
constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit is 100 MB
}  // namespace

const char* dtype_name(DType t) {
  for (auto& d : kDTypes)
    if (d.t == t) return d.name;
  return "?";
}
size_t dtype_size(DType t) {
  for (auto& d : kDTypes)
    if (d.t == t) return d.size;
  return 0;
}
bool parse_dtype(const std::string& s, DType* out) {
  for (auto& d : kDTypes)
    if (s == d.name) {
      *out = d.t;
      return true;
    }
  return false;
}

float bf16_to_f32(uint16_t x) {
  uint32_t u = (uint32_t)x << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
// Integer operations only: exact, and independent of the FPU mode (FTZ/DAZ).
float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        man <<= 1;
        ++e;
      } while (!(man & 0x400));
      u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (man << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
  uint32_t man = u & 0x7fffff;
  if (((u >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
  if (exp >= 31) return (uint16_t)(sign | 0x7c00);
  if (exp <= 0) {
    if (exp < -10) return (uint16_t)sign;
    man |= 0x800000;
    uint32_t shift = (uint32_t)(14 - exp);
    uint32_t half = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return (uint16_t)(sign | half);
  }
  uint32_t half = sign | ((uint32_t)exp << 10) | (man >> 13), rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) ++half;
  return (uint16_t)half;
}

MappedFile::MappedFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below).
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) fail(path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, ": not a regular file");
  }
  size_ = (size_t)st.st_size;
  if (size_ > 0) {
    void* p = mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail(path, ": mmap failed: ", std::strerror(errno));
    }
    data_ = (const uint8_t*)p;
  }
  ::close(fd);
}
MappedFile::~MappedFile() {
  if (data_) munmap((void*)data_, size_);
}

void release_mapped_pages(const void* p, size_t n) {
  const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t a = ((uintptr_t)p + page - 1) / page * page, b = ((uintptr_t)p + n) / page * page;
  if (b > a) madvise((void*)a, b - a, MADV_DONTNEED);  // file-backed, private, read-only: reloaded if touched
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}
std::string TensorView::shape_str() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}
void TensorView::to_f32(float* out) const {
  int64_t n = numel();
  if (n == 0) return;  // an empty tensor: out may be null (memcpy(nullptr, ..., 0) is undefined)
  switch (dtype) {
    case DType::F32:
      std::memcpy(out, data, (size_t)n * 4);
      break;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, data + 8 * i, 8);
        out[i] = (float)v;
      }
      break;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        out[i] = bf16_to_f32(v);
      }
      break;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t v;
        std::memcpy(&v, data + 2 * i, 2);
        out[i] = f16_to_f32(v);
      }
      break;
    default:
      fail(file, ": tensor '", name, "' has dtype ", dtype_name(dtype), ", which cannot be used as float weights");
  }
}
std::vector<float> TensorView::to_f32() const {
  std::vector<float> v((size_t)numel());
  to_f32(v.data());
  return v;
}

void TensorStore::add_file(const std::string& path) {
  auto mf = std::make_shared<MappedFile>(path);
  const size_t size = mf->size();
  if (size < 8) fail(path, ": truncated safetensors file (", size, " bytes, need at least 8)");
  uint64_t n;
  std::memcpy(&n, mf->data(), 8);
  if (n > kMaxHeader) fail(path, ": safetensors header length ", n, " is beyond the 100 MB limit");
  if (n > size - 8) fail(path, ": safetensors header length ", n, " is beyond the end of the file (", size, " bytes)");
  const json h = parse_json(std::string_view((const char*)mf->data() + 8, n), path + ": safetensors header");
  if (!h.is_object()) fail(path, ": safetensors header is not a JSON object");
  const uint8_t* base = mf->data() + 8 + n;
  const size_t data_size = size - 8 - n;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) fail(path, ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) metadata_[m.key()] = m->get<std::string>();
      continue;
    }
    const json& e = *it;
    if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
      fail(path, ": tensor '", name, "' needs dtype, shape and data_offsets");
    TensorView t;
    t.name = name;
    t.file = path;
    if (!e["dtype"].is_string() || !parse_dtype(e["dtype"].get<std::string>(), &t.dtype))
      fail(path, ": tensor '", name, "' has unknown dtype ", json_brief(e["dtype"]));
    if (!e["shape"].is_array()) fail(path, ": tensor '", name, "' shape is not an array");
    unsigned __int128 numel = 1;
    for (auto& s : e["shape"]) {
      if (!s.is_number_unsigned() || s.get<uint64_t>() > ((uint64_t)1 << 62))
        fail(path, ": tensor '", name, "' has an invalid shape entry: ", json_brief(s));
      t.shape.push_back(s.get<int64_t>());
      numel *= (uint64_t)t.shape.back();
      if (numel > ((unsigned __int128)1 << 62)) fail(path, ": tensor '", name, "' shape is too large");
    }
    const json& off = e["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      fail(path, ": tensor '", name, "' has invalid data_offsets (two unsigned integers needed)");
    uint64_t b = off[0].get<uint64_t>(), en = off[1].get<uint64_t>();
    if (b > en || en > data_size)
      fail(path, ": tensor '", name, "' data_offsets [", b, ", ", en, "] are out of range (data section is ",
           data_size, " bytes)");
    if ((unsigned __int128)(en - b) != numel * dtype_size(t.dtype))
      fail(path, ": tensor '", name, "' has ", en - b, " bytes but shape ", t.shape_str(), " of ",
           dtype_name(t.dtype), " needs ", (uint64_t)(numel * dtype_size(t.dtype)));
    t.data = base + b;
    t.nbytes = en - b;
    if (tensors_.count(name)) fail(path, ": tensor '", name, "' appears in more than one file");
    ranges.push_back({b, en});
    tensors_.emplace(name, std::move(t));
  }
  // Empty tensors overlap nothing; every other range must start at or after
  // the furthest end seen so far (not only the previous range's end: an empty
  // range between two overlapping ones must not hide the overlap).
  std::sort(ranges.begin(), ranges.end());
  uint64_t reach = 0;
  for (const auto& [b, en] : ranges) {
    if (b == en) continue;
    if (b < reach) fail(path, ": tensor data ranges overlap at byte ", b);
    reach = std::max(reach, en);
  }
  files_.push_back(std::move(mf));
}

TensorStore TensorStore::open_file(const std::string& path) {
  TensorStore s;
  s.add_file(path);
  return s;
}

TensorStore TensorStore::open_dir(const std::string& dir) {
  TensorStore s;
  fs::path d(dir);
  fs::path index = d / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const json j = parse_json_file(index.string(), kJsonMaxDepth, 1 << 26);
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      fail(index.string(), ": missing weight_map object");
    std::vector<std::string> shards;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) fail(index.string(), ": weight_map entry '", it.key(), "' is not a file name");
      std::string f = it->get<std::string>();
      if (f.find('/') != std::string::npos || f == ".." )
        fail(index.string(), ": shard name '", f, "' must be a plain file name");
      if (std::find(shards.begin(), shards.end(), f) == shards.end()) shards.push_back(f);
    }
    for (auto& f : shards) s.add_file((d / f).string());
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      const TensorView* t = s.find(it.key());
      if (!t) fail(index.string(), ": tensor '", it.key(), "' listed in weight_map is in no shard");
      if (fs::path(t->file).filename() != it->get<std::string>())
        fail(index.string(), ": tensor '", it.key(), "' is in ", t->file, ", not in ", it->get<std::string>());
    }
  } else if (fs::exists(d / "model.safetensors")) {
    s.add_file((d / "model.safetensors").string());
  } else {
    fail(dir, ": no model.safetensors or model.safetensors.index.json");
  }
  return s;
}

const TensorView* TensorStore::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}
const TensorView& TensorStore::get(const std::string& name) const {
  auto* t = find(name);
  if (!t) fail("missing tensor '", name, "' (files: ", files().empty() ? std::string("none") : files()[0], ")");
  return *t;
}
std::vector<std::string> TensorStore::files() const {
  std::vector<std::string> v;
  for (auto& f : files_) v.push_back(f->path());
  return v;
}

namespace {
// The writer behind both entry points: tensor i's floats come from get(i, scratch).
void write_safetensors_impl(const std::string& path, const std::vector<StreamedTensor>& tensors,
                            const std::map<std::string, std::string>& metadata,
                            const std::function<const float*(size_t, std::vector<float>&)>& get) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t off = 0;
  for (auto& t : tensors) {
    if (t.dtype != DType::F32 && t.dtype != DType::BF16 && t.dtype != DType::F16)
      fail(path, ": cannot write dtype ", dtype_name(t.dtype));
    int64_t n = 1;
    for (auto s : t.shape) n *= s;
    uint64_t bytes = (uint64_t)n * dtype_size(t.dtype);
    h[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  // Padded (with spaces, as the format allows) so that the data starts on a
  // 64-byte line: tensors whose sizes are whole lines then start on one too, and
  // the GEMV's 64-byte loads of their rows, read in place from the memory map,
  // never straddle two lines.
  std::string hs = h.dump();
  while ((8 + hs.size()) % 64) hs.push_back(' ');
  AtomicWriter out(path);
  uint64_t n = hs.size();
  out.write(&n, 8);
  out.write(hs.data(), hs.size());
  std::vector<float> scratch;
  std::vector<uint16_t> half;
  constexpr int64_t kChunk = 1 << 20;  // elements converted per write
  for (size_t k = 0; k < tensors.size(); ++k) {
    const StreamedTensor& t = tensors[k];
    int64_t cnt = 1;
    for (auto s : t.shape) cnt *= s;
    const float* data = get(k, scratch);
    if (t.dtype == DType::F32) {
      out.write(data, (size_t)cnt * 4);
      continue;
    }
    for (int64_t i0 = 0; i0 < cnt; i0 += kChunk) {
      const int64_t m = std::min(kChunk, cnt - i0);
      half.resize((size_t)m);
      for (int64_t i = 0; i < m; ++i)
        half[(size_t)i] = t.dtype == DType::BF16 ? f32_to_bf16(data[i0 + i]) : f32_to_f16(data[i0 + i]);
      out.write(half.data(), (size_t)m * 2);
    }
  }
  out.commit();
}
}  // namespace

void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<StreamedTensor> st;
  for (auto& t : tensors) st.push_back({t.name, t.shape, t.dtype, {}});
  write_safetensors_impl(path, st, metadata, [&](size_t i, std::vector<float>&) { return tensors[i].data; });
}

void write_safetensors_streamed(const std::string& path, const std::vector<StreamedTensor>& tensors,
                                const std::map<std::string, std::string>& metadata) {
  write_safetensors_impl(path, tensors, metadata, [&](size_t i, std::vector<float>& scratch) {
    int64_t cnt = 1;
    for (auto s : tensors[i].shape) cnt *= s;
    scratch.assign((size_t)cnt, 0.0f);
    tensors[i].produce(scratch.data());
    return (const float*)scratch.data();
  });
}

}  // namespace huginn
