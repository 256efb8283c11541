// A typed, non-owning view of one parameter tensor: how the model and the
// kernels see weights. The data usually lives in a memory-mapped checkpoint
// and is read in its stored type (F32, BF16, F16, or a ggml block type from a
// GGUF file: Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q5_K, Q6_K): the matrix kernels take
// the type as a parameter, so a BF16 or Q4_0 checkpoint runs without an F32
// copy.
#pragma once
#include <cstddef>
#include <cstdint>

#include "huginn/quant.h"
#include "huginn/safetensors.h"

namespace huginn {

struct Weight {
  DType dtype = DType::F32;
  const void* data = nullptr;
  // A row-major [rows, cols] matrix; a vector is one row. For a Linear layer
  // rows = out features, cols = in features (y = x · Wᵀ).
  int64_t rows = 0, cols = 0;
  // A ggml block type (quant.h) when not F32: then the rows are ggml blocks
  // (quant::row_bytes(qtype, cols) bytes each) and `dtype` is not used. F32,
  // BF16 and F16 weights say so in `dtype` and leave qtype F32.
  quant::Type qtype = quant::Type::F32;

  static Weight f32(const float* p, int64_t rows, int64_t cols) { return {DType::F32, p, rows, cols}; }
  explicit operator bool() const { return data != nullptr; }
  int64_t numel() const { return rows * cols; }
  bool quantized() const { return qtype != quant::Type::F32; }
  static Weight blocks(quant::Type t, const void* p, int64_t rows, int64_t cols) {
    return {DType::U8, p, rows, cols, t};
  }
  size_t row_bytes() const {
    return quantized() ? quant::row_bytes(qtype, cols) : (size_t)cols * dtype_size(dtype);
  }
  size_t bytes() const { return (size_t)rows * row_bytes(); }
  // "F32", "BF16", "Q4_0", ...
  const char* type_name() const { return quantized() ? quant::name(qtype) : dtype_name(dtype); }
  // The float32 data; throws unless the weight is F32 (vectors always are:
  // the loader converts the small ones).
  const float* f32() const;
  // Row r as a view of its own (e.g. one embedding row).
  const void* row_ptr(int64_t r) const {
    return static_cast<const uint8_t*>(data) + (size_t)r * row_bytes();
  }
  // A view of columns [c0, c0 + n) of every row is not contiguous; matrices
  // that are used in column blocks (the adapter) are split by the kernels.
};

// Weight types the matrix kernels read directly.
inline bool is_kernel_dtype(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

}  // namespace huginn
