// GGUF reader (memory-mapped, every field checked against the file size before
// it is used, so a small file can never make us allocate much or read outside
// the map) and streaming writer. Format: gguf.h.
#include "huginn/gguf.h"

#include <algorithm>
#include <cstring>
#include <limits>

#include "huginn/atomic_file.h"
#include "huginn/common.h"
#include "huginn/safetensors.h"

namespace huginn::gguf {
namespace {

constexpr int kMaxDims = 4;        // GGML_MAX_DIMS
constexpr int kMaxNesting = 8;     // arrays of arrays: deep enough for any real file
constexpr uint64_t kMaxName = 1 << 16;

// Fixed size of a scalar value type, 0 for STRING/ARRAY, -1 for unknown ids.
int scalar_size(uint32_t t) {
  switch ((ValueType)t) {
    case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
    case ValueType::U16: case ValueType::I16: return 2;
    case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
    case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
    case ValueType::STRING: case ValueType::ARRAY: return 0;
  }
  return -1;
}
// The fewest bytes one element of type t can take: bounds array counts.
uint64_t min_size(ValueType t) {
  return t == ValueType::STRING ? 8 : t == ValueType::ARRAY ? 12 : (uint64_t)scalar_size((uint32_t)t);
}
bool is_unsigned(ValueType t) {
  return t == ValueType::U8 || t == ValueType::U16 || t == ValueType::U32 || t == ValueType::U64 || t == ValueType::BOOL;
}
bool is_signed(ValueType t) { return t == ValueType::I8 || t == ValueType::I16 || t == ValueType::I32 || t == ValueType::I64; }

struct Cursor {
  const uint8_t* p;
  size_t size, pos = 0;
  const std::string& file;
  template <class... A>
  [[noreturn]] void bad(A&&... a) const {
    fail(file, ": invalid GGUF at byte ", pos, ": ", std::forward<A>(a)...);
  }
  void need(uint64_t n, const char* what) const {
    if (n > size - pos) bad("truncated (", what, " needs ", n, " bytes, ", size - pos, " left)");
  }
  template <class T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint64_t n = get<uint64_t>(what);
    need(n, what);
    std::string s((const char*)p + pos, n);
    pos += n;
    return s;
  }
  Value value(uint32_t type, int depth) {
    Value v;
    if (scalar_size(type) < 0) bad("unknown metadata value type ", type);
    v.type = (ValueType)type;
    switch (v.type) {
      case ValueType::U8: v.u = get<uint8_t>("value"); break;
      case ValueType::I8: v.i = get<int8_t>("value"); break;
      case ValueType::U16: v.u = get<uint16_t>("value"); break;
      case ValueType::I16: v.i = get<int16_t>("value"); break;
      case ValueType::U32: v.u = get<uint32_t>("value"); break;
      case ValueType::I32: v.i = get<int32_t>("value"); break;
      case ValueType::U64: v.u = get<uint64_t>("value"); break;
      case ValueType::I64: v.i = get<int64_t>("value"); break;
      case ValueType::F32: v.f = get<float>("value"); break;
      case ValueType::F64: v.f = get<double>("value"); break;
      case ValueType::BOOL:
        v.u = get<uint8_t>("value");
        if (v.u > 1) bad("bool value ", v.u);
        break;
      case ValueType::STRING: v.s = str("string"); break;
      case ValueType::ARRAY: {
        if (depth >= kMaxNesting) bad("arrays nested deeper than ", kMaxNesting);
        const uint32_t et = get<uint32_t>("array type");
        if (scalar_size(et) < 0) bad("unknown array element type ", et);
        v.elem = (ValueType)et;
        const uint64_t n = get<uint64_t>("array length");
        // every element takes at least min_size bytes: a count the rest of the
        // file cannot hold is rejected before anything is allocated
        if (n > (size - pos) / min_size(v.elem)) bad("array of ", n, " elements does not fit in the file");
        if (scalar_size(et) > 0) {  // numbers: left in the map, each checked as at() will read it
          v.raw = p + pos, v.raw_count = n;
          need(n * (uint64_t)scalar_size(et), "array");
          if (v.elem == ValueType::BOOL)
            for (uint64_t k = 0; k < n; ++k)
              if (p[pos + k] > 1) bad("bool array element ", k, " is ", (int)p[pos + k]);
          pos += n * (uint64_t)scalar_size(et);
          break;
        }
        v.items.reserve(n);
        for (uint64_t k = 0; k < n; ++k) v.items.push_back(value(et, depth + 1));
        break;
      }
    }
    return v;
  }
};

}  // namespace

const char* type_name(ValueType t) {
  static const char* names[] = {"UINT8", "INT8",   "UINT16", "INT16", "UINT32", "INT32",  "FLOAT32",
                                "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64", "FLOAT64"};
  return (uint32_t)t < 13 ? names[(uint32_t)t] : "?";
}

Value Value::uint(ValueType t, uint64_t v) {
  Value r;
  r.type = t, r.u = v;
  return r;
}
Value Value::sint(ValueType t, int64_t v) {
  Value r;
  r.type = t, r.i = v;
  return r;
}
Value Value::real(ValueType t, double v) {
  Value r;
  r.type = t, r.f = t == ValueType::F32 ? (double)(float)v : v;
  return r;
}
Value Value::boolean(bool v) { return uint(ValueType::BOOL, v); }
Value Value::string(std::string v) {
  Value r;
  r.type = ValueType::STRING, r.s = std::move(v);
  return r;
}
Value Value::array(ValueType elem, std::vector<Value> items) {
  Value r;
  r.type = ValueType::ARRAY, r.elem = elem, r.items = std::move(items);
  for (const Value& x : r.items)
    if (x.type != elem) fail("gguf: array of ", type_name(elem), " holds a ", x.type_str());
  return r;
}
Value Value::at(size_t k) const {
  if (k >= size()) fail("gguf: array index ", k, " past its ", size(), " elements");
  if (!raw) return items[k];
  const int sz = scalar_size((uint32_t)elem);
  const uint8_t* q = raw + k * (size_t)sz;
  uint64_t bits = 0;
  std::memcpy(&bits, q, (size_t)sz);  // little-endian host: the low bytes
  switch (elem) {
    case ValueType::I8: return sint(elem, (int8_t)bits);
    case ValueType::I16: return sint(elem, (int16_t)bits);
    case ValueType::I32: return sint(elem, (int32_t)bits);
    case ValueType::I64: return sint(elem, (int64_t)bits);
    case ValueType::F32: {
      float f;
      std::memcpy(&f, q, 4);
      return real(elem, f);
    }
    case ValueType::F64: {
      double f;
      std::memcpy(&f, q, 8);
      return real(elem, f);
    }
    default: return uint(elem, bits);  // U8..U64, BOOL
  }
}
std::string Value::type_str() const {
  return type == ValueType::ARRAY ? str("ARRAY[", type_name(elem), "]") : type_name(type);
}
uint64_t Value::as_uint() const {
  if (is_unsigned(type)) return u;
  if (is_signed(type) && i >= 0) return (uint64_t)i;
  fail("gguf: expected an unsigned integer, found ", type_str());
}
int64_t Value::as_int() const {
  if (is_signed(type)) return i;
  if (is_unsigned(type) && u <= (uint64_t)std::numeric_limits<int64_t>::max()) return (int64_t)u;
  fail("gguf: expected an integer, found ", type_str());
}
double Value::as_real() const {
  if (type == ValueType::F32 || type == ValueType::F64) return f;
  if (is_signed(type)) return (double)i;
  if (is_unsigned(type)) return (double)u;
  fail("gguf: expected a number, found ", type_str());
}
const std::string& Value::as_string() const {
  if (type != ValueType::STRING) fail("gguf: expected a string, found ", type_str());
  return s;
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t x : ne) n *= x;
  return n;
}
int64_t Tensor::rows() const { return row_len() ? numel() / row_len() : 0; }
std::vector<int64_t> Tensor::shape() const { return std::vector<int64_t>(ne.rbegin(), ne.rend()); }

File::File(const std::string& path) : map_(std::make_shared<MappedFile>(path)) {
  Cursor c{map_->data(), map_->size(), 0, path};
  c.need(4, "magic");
  if (std::memcmp(c.p, "GGUF", 4) != 0) c.bad("not a GGUF file (magic is not \"GGUF\")");
  c.pos = 4;
  version_ = c.get<uint32_t>("version");
  // v1 used 32-bit counts; v2 and v3 share this layout (v3 only added big-endian files,
  // which announce themselves with a byte-swapped version)
  if (version_ == 0x02000000 || version_ == 0x03000000) c.bad("a big-endian GGUF file; only little-endian files are read");
  if (version_ != 2 && version_ != 3) c.bad("unsupported GGUF version ", version_, " (2 and 3 are read)");
  const uint64_t n_tensors = c.get<uint64_t>("tensor count"), n_kv = c.get<uint64_t>("metadata count");
  // a key takes >= 12 bytes (length, type), a tensor info >= 24 (name length, n_dims, type, offset)
  if (n_kv > (c.size - c.pos) / 12) c.bad(n_kv, " metadata entries cannot fit in the file");
  if (n_tensors > (c.size - c.pos) / 24) c.bad(n_tensors, " tensors cannot fit in the file");
  kv_.reserve(n_kv);
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.str("key");
    if (key.empty()) c.bad("empty metadata key");
    if (find(key)) c.bad("duplicate metadata key '", key, "'");
    const uint32_t t = c.get<uint32_t>("value type");
    kv_.emplace_back(std::move(key), c.value(t, 0));
  }
  if (const Value* a = find("general.alignment")) {
    if (a->type != ValueType::U32) c.bad("general.alignment is ", a->type_str(), ", not UINT32");
    if (a->u == 0 || (a->u & (a->u - 1))) c.bad("general.alignment ", a->u, " is not a power of two");
    alignment_ = (uint32_t)a->u;
  }
  tensors_.reserve(n_tensors);
  for (uint64_t k = 0; k < n_tensors; ++k) {
    Tensor t;
    t.name = c.str("tensor name");
    if (t.name.size() > kMaxName) c.bad("tensor name of ", t.name.size(), " bytes");
    if (find_tensor(t.name)) c.bad("duplicate tensor '", t.name, "'");
    const uint32_t nd = c.get<uint32_t>("n_dims");
    if (nd > kMaxDims) c.bad("tensor '", t.name, "' has ", nd, " dimensions (at most ", kMaxDims, ")");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t n = c.get<uint64_t>("dimension");
      if (n > (uint64_t)std::numeric_limits<int64_t>::max() || (n && numel > (uint64_t)std::numeric_limits<int64_t>::max() / n))
        c.bad("tensor '", t.name, "' has an impossible element count");
      numel *= n;
      t.ne.push_back((int64_t)n);
    }
    const uint32_t ty = c.get<uint32_t>("tensor type");
    const quant::TypeInfo* ti = quant::find_type(ty);
    if (!ti) c.bad("tensor '", t.name, "' has unknown or unsupported ggml type ", ty);
    t.type = ti->type;
    if (t.row_len() % ti->block_elems)
      c.bad("tensor '", t.name, "': row length ", t.row_len(), " is not a multiple of ", ti->name, "'s block of ", ti->block_elems);
    t.offset = c.get<uint64_t>("tensor offset");
    if (t.offset % alignment_) c.bad("tensor '", t.name, "' offset ", t.offset, " is not a multiple of the alignment ", alignment_);
    // size in blocks, checked against overflow (blocks <= numel, block_bytes <= 256)
    const uint64_t blocks = numel / (uint64_t)ti->block_elems;
    if (blocks > std::numeric_limits<uint64_t>::max() / 256) c.bad("tensor '", t.name, "' is impossibly large");
    t.nbytes = (size_t)(blocks * (uint64_t)ti->block_bytes);
    tensors_.push_back(std::move(t));
  }
  const uint64_t start = (c.pos + alignment_ - 1) / alignment_ * alignment_;
  if (start > c.size && n_tensors) c.bad("data section starts at ", start, ", past the end of the file (", c.size, " bytes)");
  data_offset_ = (size_t)std::min<uint64_t>(start, c.size);
  const uint64_t data_size = c.size - data_offset_;
  // every tensor inside the data section, none overlapping another
  std::vector<const Tensor*> order;
  for (Tensor& t : tensors_) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      fail(path, ": invalid GGUF: tensor '", t.name, "' (", t.nbytes, " bytes at data offset ", t.offset,
           ") runs past the end of the file (data section holds ", data_size, " bytes)");
    t.data = c.p + data_offset_ + t.offset;
    order.push_back(&t);
  }
  std::sort(order.begin(), order.end(), [](const Tensor* a, const Tensor* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k)
    if (order[k]->offset < order[k - 1]->offset + order[k - 1]->nbytes)
      fail(path, ": invalid GGUF: tensors '", order[k - 1]->name, "' and '", order[k]->name, "' overlap");
}

const Value* File::find(const std::string& key) const {
  for (const auto& [k, v] : kv_)
    if (k == key) return &v;
  return nullptr;
}
const Value& File::get(const std::string& key) const {
  const Value* v = find(key);
  if (!v) fail(path(), ": no metadata key '", key, "'");
  return *v;
}
const Tensor* File::find_tensor(const std::string& name) const {
  for (const Tensor& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}
const Tensor& File::tensor(const std::string& name) const {
  const Tensor* t = find_tensor(name);
  if (!t) fail(path(), ": no tensor '", name, "'");
  return *t;
}
std::vector<float> File::to_f32(const Tensor& t) const {
  std::vector<float> out((size_t)t.numel());
  const size_t rb = t.row_bytes();
  for (int64_t r = 0; r < t.rows(); ++r) quant::dequantize_row(t.type, t.data + r * rb, out.data() + r * t.row_len(), t.row_len());
  return out;
}

// --- writer ------------------------------------------------------------------

Writer::Writer(std::string path, uint32_t alignment) : out_(path), alignment_(alignment) {
  if (!alignment || (alignment & (alignment - 1))) fail("gguf: alignment ", alignment, " is not a power of two");
  if (alignment != 32) set("general.alignment", Value::uint(ValueType::U32, alignment));
}
Writer::~Writer() = default;
void Writer::set(const std::string& key, Value v) {
  if (header_done_) fail("gguf: metadata '", key, "' set after tensor data started");
  if (key == "general.alignment" && (v.type != ValueType::U32 || v.u != alignment_))
    fail("gguf: general.alignment is the Writer's constructor argument");
  for (auto& kv : kv_)
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  kv_.emplace_back(key, std::move(v));
}
uint64_t Writer::add_tensor(const std::string& name, quant::Type type, std::vector<int64_t> ne) {
  if (header_done_) fail("gguf: tensor '", name, "' declared after tensor data started");
  if (ne.size() > (size_t)kMaxDims) fail("gguf: tensor '", name, "' has more than ", kMaxDims, " dimensions");
  for (const Tensor& t : tensors_)
    if (t.name == name) fail("gguf: duplicate tensor '", name, "'");
  Tensor t;
  t.name = name, t.type = type, t.ne = std::move(ne);
  for (int64_t n : t.ne)
    if (n < 0) fail("gguf: tensor '", name, "' has a negative dimension");
  t.nbytes = t.numel() == 0 ? 0 : t.row_bytes() * (size_t)t.rows();
  t.offset = data_size_;
  data_size_ += (t.nbytes + alignment_ - 1) / alignment_ * alignment_;
  tensors_.push_back(std::move(t));
  return tensors_.back().offset;
}
void Writer::put(const void* p, size_t n) { out_.write(p, n); }
namespace {
void put_str(std::string& out, const std::string& s) {
  const uint64_t n = s.size();
  out.append((const char*)&n, 8).append(s);
}
template <class T>
void put_pod(std::string& out, T v) {
  out.append((const char*)&v, sizeof v);
}
void put_value(std::string& out, const Value& v) {
  switch (v.type) {
    case ValueType::U8: case ValueType::BOOL: put_pod<uint8_t>(out, (uint8_t)v.u); break;
    case ValueType::I8: put_pod<int8_t>(out, (int8_t)v.i); break;
    case ValueType::U16: put_pod<uint16_t>(out, (uint16_t)v.u); break;
    case ValueType::I16: put_pod<int16_t>(out, (int16_t)v.i); break;
    case ValueType::U32: put_pod<uint32_t>(out, (uint32_t)v.u); break;
    case ValueType::I32: put_pod<int32_t>(out, (int32_t)v.i); break;
    case ValueType::U64: put_pod<uint64_t>(out, v.u); break;
    case ValueType::I64: put_pod<int64_t>(out, v.i); break;
    case ValueType::F32: put_pod<float>(out, (float)v.f); break;
    case ValueType::F64: put_pod<double>(out, v.f); break;
    case ValueType::STRING: put_str(out, v.s); break;
    case ValueType::ARRAY:
      put_pod<uint32_t>(out, (uint32_t)v.elem);
      put_pod<uint64_t>(out, v.size());
      for (size_t k = 0; k < v.size(); ++k) put_value(out, v.at(k));
      break;
  }
}
}  // namespace
void Writer::write_header() {
  header_done_ = true;
  std::string h = "GGUF";
  put_pod<uint32_t>(h, 3);
  put_pod<uint64_t>(h, tensors_.size());
  put_pod<uint64_t>(h, kv_.size());
  for (const auto& [k, v] : kv_) {
    put_str(h, k);
    put_pod<uint32_t>(h, (uint32_t)v.type);
    put_value(h, v);
  }
  for (const Tensor& t : tensors_) {
    put_str(h, t.name);
    put_pod<uint32_t>(h, (uint32_t)t.ne.size());
    for (int64_t n : t.ne) put_pod<uint64_t>(h, (uint64_t)n);
    put_pod<uint32_t>(h, (uint32_t)t.type);
    put_pod<uint64_t>(h, t.offset);
  }
  h.resize((h.size() + alignment_ - 1) / alignment_ * alignment_, '\0');
  put(h.data(), h.size());
}
void Writer::write_tensor(const void* data, size_t nbytes) {
  if (!header_done_) write_header();
  if (next_ >= tensors_.size()) fail("gguf: more tensor data than declared tensors");
  const Tensor& t = tensors_[next_++];
  if (nbytes != t.nbytes) fail("gguf: tensor '", t.name, "' needs ", t.nbytes, " bytes, got ", nbytes);
  put(data, nbytes);
  static const char zeros[256] = {};
  const size_t pad = (size_t)((t.nbytes + alignment_ - 1) / alignment_ * alignment_ - t.nbytes);
  for (size_t k = 0; k < pad; k += sizeof zeros) put(zeros, std::min(sizeof zeros, pad - k));
}
void Writer::finish() {
  if (!header_done_) write_header();
  if (next_ != tensors_.size()) fail("gguf: ", tensors_.size() - next_, " declared tensors were not written (next: '", tensors_[next_].name, "')");
  out_.commit();
}

}  // namespace huginn::gguf
