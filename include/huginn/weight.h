// A typed, non-owning view of one parameter tensor: how the model and the
// kernels see weights. The data usually lives in a memory-mapped checkpoint
// and is read in its stored type (F32, BF16, F16): the matrix kernels take
// the type as a parameter, so a BF16 checkpoint runs without an F32 copy.
#pragma once
#include <cstddef>
#include <cstdint>

#include "huginn/safetensors.h"

namespace huginn {

struct Weight {
  DType dtype = DType::F32;
  const void* data = nullptr;
  // A row-major [rows, cols] matrix; a vector is one row. For a Linear layer
  // rows = out features, cols = in features (y = x · Wᵀ).
  int64_t rows = 0, cols = 0;

  static Weight f32(const float* p, int64_t rows, int64_t cols) { return {DType::F32, p, rows, cols}; }
  explicit operator bool() const { return data != nullptr; }
  int64_t numel() const { return rows * cols; }
  size_t bytes() const { return (size_t)numel() * dtype_size(dtype); }
  // The float32 data; throws unless the weight is F32 (vectors always are:
  // the loader converts the small ones).
  const float* f32() const;
  // Row r as a view of its own (e.g. one embedding row).
  const void* row_ptr(int64_t r) const {
    return static_cast<const uint8_t*>(data) + (size_t)r * (size_t)cols * dtype_size(dtype);
  }
  // A view of columns [c0, c0 + n) of every row is not contiguous; matrices
  // that are used in column blocks (the adapter) are split by the kernels.
};

// Weight types the matrix kernels read directly.
inline bool is_kernel_dtype(DType t) { return t == DType::F32 || t == DType::BF16 || t == DType::F16; }

}  // namespace huginn
