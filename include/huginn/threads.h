// The compute thread count, for programs using the library (the CLI's -t).
#pragma once

namespace huginn {

// Threads used by the parallel kernels (OpenMP loops and BLAS); n <= 0: all
// cores. OpenMP's count belongs to the calling thread: a worker thread that
// runs the model (the server's) calls set_threads(threads()) once itself.
void set_threads(int n);
int threads();

}  // namespace huginn
