#include "tensor/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "tensor/kernels.h"

namespace huginn::kern {

int gemm_block_rows(int M) {
  // Each block is its own sgemm call, which repacks the whole other operand:
  // that costs about 1/rows of the block's arithmetic, so blocks are at least
  // 256 rows (at 64 rows the repacking was 10% of a training step's CPU time).
  // A power of two of equal blocks, at most 16 (enough for 16 threads), so
  // that 2, 4, 8 or 16 threads share them evenly; two blocks from 128 rows on,
  // so that two threads have work. Rows per block: a multiple of 32 (whole
  // register tiles of every sgemm kernel).
  constexpr int kMinRows = 256, kMaxBlocks = 16;
  int blocks = 1;
  while (blocks < kMaxBlocks && (M + 2 * blocks - 1) / (2 * blocks) >= kMinRows) blocks *= 2;
  if (blocks == 1 && M >= 128) blocks = 2;
  const int per = (M + blocks - 1) / blocks;
  return std::max(32, (per + 31) / 32 * 32);
}

namespace {
// One block: rows [m0, m1) of C.
inline void block(bool transA, bool transB, int m0, int m1, int N, int K, float alpha, const float* A, int lda,
                  const float* B, int ldb, float beta, float* C, int ldc) {
  const float* Ab = transA ? A + m0 : A + (size_t)m0 * lda;
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m1 - m0, N, K,
              alpha, Ab, lda, B, ldb, beta, C + (size_t)m0 * ldc, ldc);
}
}  // namespace

void gemm_fixed_blocks(bool transA, bool transB, int M, int N, int K, float alpha, const float* A, int lda,
                       const float* B, int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  const int R = gemm_block_rows(M);
  const int nb = (M + R - 1) / R;
  // OpenBLAS (OpenMP build) runs single-threaded exactly when it is called
  // inside an active parallel region or when OpenMP allows one thread. So the
  // blocks always run inside a region of at least two threads (one may idle
  // when there is a single block); with one thread in all, BLAS is
  // single-threaded anyway.
  if (omp_in_parallel() || omp_get_max_threads() <= 1) {
    for (int b = 0; b < nb; ++b)
      block(transA, transB, b * R, std::min(M, (b + 1) * R), N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Blocks are handed out one at a time: a thread that starts late (woken
  // from sleep, or preempted on a shared machine) takes fewer of them. A
  // block's bits do not depend on the thread that computes it.
  const int team = std::max(2, std::min(threads(), nb));
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
  for (int b = 0; b < nb; ++b)
    block(transA, transB, b * R, std::min(M, (b + 1) * R), N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace huginn::kern
