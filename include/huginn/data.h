// Training data as a pure function of an index: the trainer asks for sequence
// number i (global across ranks and steps), so a run is reproducible, resumable
// bit-exactly, and splits across MPI ranks without coordination.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace huginn {

constexpr int kIgnoreLabel = -100;

class SequenceSource {
 public:
  virtual ~SequenceSource() = default;
  // Fills ids[T] and labels[T] for sequence `index` (labels[t] is the target of
  // position t, or kIgnoreLabel). Must depend only on (its construction, index).
  virtual void get(uint64_t index, int T, int* ids, int* labels) const = 0;
  // A human-readable description for logs.
  virtual std::string describe() const = 0;
};

}  // namespace huginn
