// huginn/threads.h: the public face of the kernels' thread setting.
#include "huginn/threads.h"

#include "tensor/kernels.h"

namespace huginn {

void set_threads(int n) { kern::set_threads(n); }
int threads() { return kern::threads(); }

}  // namespace huginn
