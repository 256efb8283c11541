// GGUF (v2/v3, little-endian) single-file models: a memory-mapped, fully
// validated reader and a streaming writer.
//
// File: "GGUF", u32 version, u64 n_tensors, u64 n_kv, then n_kv (key, value)
// pairs, n_tensors tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml
// type, u64 offset), padding to `general.alignment` (default 32), then the data
// section; a tensor's offset is relative to the data section and aligned.
// Strings are u64 length + UTF-8 bytes (no terminator).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "huginn/atomic_file.h"
#include "huginn/safetensors.h"  // MappedFile
#include "huginn/quant.h"

namespace huginn::gguf {

enum class ValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
// GGUF's names: "UINT8" ... "FLOAT64", "ARRAY[INT32]" for arrays.
const char* type_name(ValueType t);

struct Value {
  ValueType type = ValueType::U8;
  ValueType elem = ValueType::U8;  // arrays: the element type
  uint64_t u = 0;                  // U8..U64 and BOOL
  int64_t i = 0;                   // I8..I64
  double f = 0;                    // F32 (exactly) and F64
  std::string s;                   // STRING
  // ARRAY: size() elements, read with at(k). Arrays of strings or arrays, and
  // arrays built for writing, hold them in `items`; arrays of numbers read
  // from a file stay in the file's map (`raw`, valid while the File lives), so
  // a file's metadata costs no more memory than the file.
  std::vector<Value> items;
  const uint8_t* raw = nullptr;
  uint64_t raw_count = 0;
  size_t size() const { return raw ? (size_t)raw_count : items.size(); }
  Value at(size_t k) const;  // fails past the end

  static Value uint(ValueType t, uint64_t v);
  static Value sint(ValueType t, int64_t v);
  static Value real(ValueType t, double v);
  static Value boolean(bool v);
  static Value string(std::string v);
  static Value array(ValueType elem, std::vector<Value> items);
  std::string type_str() const;  // "UINT32", "ARRAY[STRING]"
  // Checked reads: fail naming the type when the value is not of that kind.
  uint64_t as_uint() const;  // any unsigned type or BOOL
  int64_t as_int() const;    // any integer type that fits int64
  double as_real() const;    // F32, F64 or any integer
  const std::string& as_string() const;
};

struct Tensor {
  std::string name;
  quant::Type type = quant::Type::F32;
  std::vector<int64_t> ne;  // GGUF order: ne[0] is the row length (contiguous)
  uint64_t offset = 0;      // within the data section
  size_t nbytes = 0;
  const uint8_t* data = nullptr;  // into the map
  int64_t numel() const;
  int64_t row_len() const { return ne.empty() ? 1 : ne[0]; }
  int64_t rows() const;                 // numel / row_len
  std::vector<int64_t> shape() const;   // torch order: ne reversed
  size_t row_bytes() const { return quant::row_bytes(type, row_len()); }
};

class File {
 public:
  // Maps and validates the whole file; any inconsistency fails with one message
  // naming the file and what is wrong.
  explicit File(const std::string& path);
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  size_t data_offset() const { return data_offset_; }
  const std::string& path() const { return map_->path(); }
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
  const Value* find(const std::string& key) const;
  const Value& get(const std::string& key) const;  // fails naming the key
  const std::vector<Tensor>& tensors() const { return tensors_; }
  const Tensor* find_tensor(const std::string& name) const;
  const Tensor& tensor(const std::string& name) const;  // fails naming it
  // Every element as float32 (ggml's dequantization).
  std::vector<float> to_f32(const Tensor& t) const;

 private:
  std::shared_ptr<MappedFile> map_;
  uint32_t version_ = 0, alignment_ = 32;
  size_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<Tensor> tensors_;
};

// Streaming writer: declare metadata and tensors first, then hand over each
// tensor's bytes in declaration order; the header is written with the first
// tensor, the data go out one tensor at a time (nothing is buffered whole).
// Written to `path.tmp.<pid>` and renamed over `path` by finish(); a writer
// destroyed before finish() removes its temporary file.
class Writer {
 public:
  explicit Writer(std::string path, uint32_t alignment = 32);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  void set(const std::string& key, Value v);  // replaces an earlier value of the key
  // ne in GGUF order (ne[0] = row length); returns the tensor's data offset.
  uint64_t add_tensor(const std::string& name, quant::Type type, std::vector<int64_t> ne);
  // The next declared tensor's bytes: exactly its size.
  void write_tensor(const void* data, size_t nbytes);
  void finish();

 private:
  void put(const void* p, size_t n);
  void write_header();
  AtomicWriter out_;
  uint32_t alignment_;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<Tensor> tensors_;
  uint64_t data_size_ = 0;
  size_t next_ = 0;
  bool header_done_ = false;
};

}  // namespace huginn::gguf
