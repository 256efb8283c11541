// ggml's weight storage formats (block quantization) and the kernels that
// multiply with them. Layouts follow ggml exactly (little-endian, blocks back to
// back along a row), so GGUF tensors can be used in place from a memory map.
//
//   type  ggml id  block  bytes  layout of one block
//   F32       0       1      4
//   F16       1       1      2
//   Q4_0      2      32     18   f16 d; u8 qs[16]              w = d*(q-8)
//   Q4_1      3      32     20   f16 d, m; u8 qs[16]           w = d*q + m
//   Q5_0      6      32     22   f16 d; u8 qh[4]; u8 qs[16]    w = d*(q-16), 5th bit in qh
//   Q8_0      8      32     34   f16 d; i8 qs[32]              w = d*q
//   Q4_K     12     256    144   f16 d, dmin; u8 scales[12]; u8 qs[128]
//   Q5_K     13     256    176   f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]
//   Q6_K     14     256    210   u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d
//   BF16     30       1      2
// In the 32-element types element j of a block sits in the low nibble of
// qs[j] and element j+16 in its high nibble. The K types split 256 elements into
// sub-blocks (8 of 32 with 6-bit scale and min, or 16 of 16 with an 8-bit scale)
// whose scales are themselves quantized against the f16 super-block scale.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace huginn::quant {

enum class Type : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q8_0 = 8,
  Q4_K = 12, Q5_K = 13, Q6_K = 14, BF16 = 30,
};

struct TypeInfo {
  Type type;
  const char* name;  // ggml's name: "F32", "Q4_K", ...
  int block_elems;
  int block_bytes;
};

// nullptr for a ggml id this code does not support.
const TypeInfo* find_type(uint32_t ggml_id);
const TypeInfo* find_type(const std::string& name);
const TypeInfo& info(Type t);
inline const char* name(Type t) { return info(t).name; }
// Bytes of a row of n elements; fails when n is not a whole number of blocks.
size_t row_bytes(Type t, int64_t n);

// One row of n elements (n a multiple of the block size).
void dequantize_row(Type t, const void* src, float* dst, int64_t n);
// Byte for byte ggml's reference quantizer for F32, F16, BF16 and the 32-element
// types. For the K types a search over scales that minimises the squared error
// (ggml's minimises a weighted error), so never worse than ggml on plain RMSE.
void quantize_row(Type t, const float* src, void* dst, int64_t n);
// rows x n floats into rows back to back (row_bytes(t, n) each), OpenMP over
// rows (the K types' search runs at a few million elements/s per core).
void quantize_rows(Type t, const float* src, void* dst, int64_t rows, int64_t n);

// ---------------------------------------------------------------------------
// Kernels (quant_kernels.cpp). W is N rows of K elements, row r at
// W + r*row_bytes. x holds `rows` activation rows of K floats (row stride K),
// y gets `rows` rows of N floats (row stride N): y[r][n] = W[n]·x[r].
// For the block types x is first quantized to 8 bits per 32-element block (the
// idea of ggml's vec_dot_*_q8_*), so y differs from the float product by at most
// sum_i |w_i| * amax(x's block of i) / 254 per output. F32/F16/BF16 multiply
// in float. Weights are read once for all `rows` (rows <= 64 per pass; more are
// done in passes). OpenMP over output rows; the result does not depend on the
// thread count.
void gemv(Type t, const void* W, size_t row_bytes, int N, int K, const float* x, int rows, float* y);

// Rows [row0, row0+nrows) of W as floats into out (nrows x K, stride K).
void dequantize_rows(Type t, const void* W, size_t row_bytes, int row0, int nrows, int K, float* out);

// Y[M,N] = X[M,K] · W[N,K]^T for many rows (prefill): W is dequantized in
// panels of rows and multiplied with cblas_sgemm, so results match a float
// GEMM with the dequantized weights.
void gemm(Type t, const void* W, size_t row_bytes, int N, int K, const float* X, int M, float* Y);

}  // namespace huginn::quant
