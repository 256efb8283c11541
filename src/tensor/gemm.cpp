#include "tensor/gemm.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>

#include "tensor/kernels.h"

namespace huginn::kern {

int gemm_block_rows(int M) {
  // About 16 blocks for large M (enough for 16 threads), at least 64 rows (so
  // that repacking op(B) once per block stays a few percent of the work), at
  // most 512, a multiple of 32 (whole register tiles of every sgemm kernel).
  const int per = (M + 15) / 16;
  const int r = (per + 31) / 32 * 32;
  return std::clamp(r, 64, 512);
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
