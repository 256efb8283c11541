// Per-weight-type SIMD inner loops (src/tensor/simd.cpp), as function
// pointers chosen once per call site by weight type.
#pragma once
#include <cstddef>

#include "huginn/safetensors.h"

namespace huginn::kern::simd {
using DotFn = float (*)(const float* x, const void* w, size_t n);
using Dot4Fn = void (*)(const float* x, const void* w0, const void* w1, const void* w2, const void* w3, size_t n,
                        float* y);
// y[t * ldy + j] (+= if accumulate) = rows w_j · x_t for t < T, j < 4, where
// w_j = w + j * ldw elements and x_t = x + t * ldx: one read of the four
// weight rows for all T activation rows; each output equals the Dot4Fn result
// for x_t alone, bit for bit. prefetch_rows > 0: the four rows that many rows
// ahead (w + prefetch_rows * ldw ...) are prefetched into L2 meanwhile.
using Dot4RowsFn = void (*)(const float* x, size_t ldx, size_t T, const void* w, size_t ldw, size_t n, float* y,
                            size_t ldy, bool accumulate, size_t prefetch_rows);
using AxpyFn = void (*)(float a, const void* w, float* y, size_t n);
using WidenFn = void (*)(const void* w, float scale, float* out, size_t n);
// F32, BF16 or F16 weights.
DotFn dot_fn(DType t);
Dot4Fn dot4_fn(DType t);
Dot4RowsFn dot4_rows_fn(DType t);
AxpyFn axpy_fn(DType t);
WidenFn widen_fn(DType t);
}  // namespace huginn::kern::simd
