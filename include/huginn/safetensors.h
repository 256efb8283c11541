// safetensors reading (memory-mapped, fully validated) and atomic writing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace huginn {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2 };
const char* dtype_name(DType t);
size_t dtype_size(DType t);
bool parse_dtype(const std::string& s, DType* out);

// A read-only memory map of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Drops the resident pages that lie wholly inside [p, p + n) of a MappedFile's
// map: a tensor read once (converted or quantized) no longer counts in the
// process's memory. The map stays valid: a page touched again is read back
// from the file.
void release_mapped_pages(const void* p, size_t n);

struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // points into the mapped file
  size_t nbytes = 0;
  std::string file;  // for error messages

  int64_t numel() const;
  std::string shape_str() const;
  // Converts to float32 (F32, F64, BF16, F16). Exact for BF16/F16.
  void to_f32(float* out) const;
  std::vector<float> to_f32() const;
};

// One or more safetensors files (a sharded checkpoint) as one name -> tensor map.
class TensorStore {
 public:
  // Opens one .safetensors file.
  void add_file(const std::string& path);
  // Opens a model directory: model.safetensors, or the shards named by
  // model.safetensors.index.json (every name in its weight_map must be found
  // in the shard the map names).
  static TensorStore open_dir(const std::string& dir);
  static TensorStore open_file(const std::string& path);

  const TensorView* find(const std::string& name) const;
  const TensorView& get(const std::string& name) const;  // throws naming the tensor
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::vector<std::string> files() const;

 private:
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: float32 data, stored as `dtype` (F32, BF16 or F16).
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  const float* data = nullptr;
  DType dtype = DType::F32;
};

// Writes a safetensors file atomically: to `path.tmp.<pid>`, fsync, then rename.
void write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

uint16_t f32_to_bf16(float x);  // round to nearest even
float bf16_to_f32(uint16_t x);
float f16_to_f32(uint16_t x);
uint16_t f32_to_f16(float x);

}  // namespace huginn
