#include "tasks/parallel.h"

#include <omp.h>

#include <exception>
#include <mutex>
#include <string>

#include "huginn/common.h"
#include "tensor/kernels.h"

namespace huginn::tasks {

void for_each_instance(int n, const std::function<void(int)>& body, const std::function<void()>& done) {
  std::mutex mu;
  std::string error;
#pragma omp parallel for schedule(dynamic, 1) num_threads(kern::threads())
  for (int i = 0; i < n; ++i) {
    try {
      body(i);
    } catch (const std::exception& ex) {
      std::lock_guard<std::mutex> lk(mu);
      if (error.empty()) error = ex.what();
    }
    std::lock_guard<std::mutex> lk(mu);
    if (done) done();
  }
  if (!error.empty()) throw Error(error);
}

}  // namespace huginn::tasks
