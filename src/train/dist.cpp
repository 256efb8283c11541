// MPI data parallelism: the world is initialised only when the process was
// started by mpirun (OpenMPI / PMI / PMIx environment), so plain runs never
// touch MPI.
// Built without MPI (cmake -DHUGINN_MPI=OFF, or no MPI found), a launch by
// mpirun is refused with a clear message and plain runs train on one process.
#if HUGINN_HAVE_MPI
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

#include <algorithm>
#include <cstdlib>

#include "huginn/common.h"
#include "huginn/train.h"

namespace huginn {

Dist& Dist::get() {
  static Dist d;
  return d;
}

void Dist::init_if_launched() {
  if (active) return;
  const char* vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK", "MPI_LOCALNRANKS"};
  bool launched = false;
  for (const char* v : vars) launched = launched || std::getenv(v) != nullptr;
  if (!launched) return;
#if HUGINN_HAVE_MPI
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited && MPI_Init(nullptr, nullptr) != MPI_SUCCESS) fail("MPI_Init failed");
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  active = true;
#else
  fail("this huginn was built without MPI (cmake -DHUGINN_MPI=ON with an MPI installed): "
       "it cannot train data-parallel under mpirun; run it as one process");
#endif
}

void Dist::finalize() {
  if (!active) return;
#if HUGINN_HAVE_MPI
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
#endif
  active = false;
}

void Dist::abort(int code) {
#if HUGINN_HAVE_MPI
  if (active) MPI_Abort(MPI_COMM_WORLD, code);
#else
  (void)code;
#endif
}

void Dist::allreduce_sum(float* x, size_t n) const {
  if (!active || size == 1) return;
#if HUGINN_HAVE_MPI
  // In chunks: MPI counts are int.
  const size_t chunk = (size_t)1 << 28;
  for (size_t off = 0; off < n; off += chunk) {
    const int c = (int)std::min(chunk, n - off);
    if (MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
      fail("MPI_Allreduce failed");
  }
#else
  (void)x, (void)n;
#endif
}

void Dist::allreduce_sum(double* x, size_t n) const {
  if (!active || size == 1) return;
#if HUGINN_HAVE_MPI
  if (MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
    fail("MPI_Allreduce failed");
#else
  (void)x, (void)n;
#endif
}

}  // namespace huginn
