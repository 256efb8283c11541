// Matrix products whose result does not depend on the BLAS kernel's threading
// nor on the number of threads.
//
// OpenBLAS splits a threaded sgemm into per-thread pieces that depend on the
// thread count, and some of its kernels (e.g. Haswell's sgemm) sum the edge
// blocks of a piece in a different order than its interior: the bits of the
// result then depend on the thread count. Here C is cut into blocks of rows
// (or, for few rows, of columns) whose size depends only on the shape (never
// on the thread count);
// every block is one single-threaded sgemm call, and the blocks are spread over
// OpenMP threads. The summed dimension K is never split.
#pragma once

namespace huginn::kern {

// Rows of C per block for an M-row product: a function of M alone.
int gemm_block_rows(int M);
// Columns of C per block: all N, except for products of fewer than 128 rows
// (one block of rows), whose columns are cut. A function of M and N alone.
int gemm_block_cols(int M, int N);

// C[M, N] = alpha · op(A)[M, K] · op(B)[K, N] + beta · C, row-major, exactly as
// cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
//             transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc),
// but computed as single-threaded sgemm calls on fixed blocks of rows of C.
// Bit-identical for any thread count (and called inside or outside an OpenMP
// parallel region). The forward's matmul (x · Wᵀ) is
// gemm_fixed_blocks(false, true, T, N, K, 1, x, ldx, W, ldw, beta, y, ldy).
void gemm_fixed_blocks(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                       const float* B, int ldb, float beta, float* C, int ldc);

}  // namespace huginn::kern
