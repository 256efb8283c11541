// Running one task computation per test instance over the kernel threads
// (evaluation and convergence share it).
#pragma once
#include <functional>

namespace huginn::tasks {

// body(i) for every i in [0, n), in parallel; after each, done() is called
// under a lock (progress reports). An exception in a body does not stop the
// others; the first one's message is thrown as huginn::Error at the end.
void for_each_instance(int n, const std::function<void(int)>& body, const std::function<void()>& done);

}  // namespace huginn::tasks
