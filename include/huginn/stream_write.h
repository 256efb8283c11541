// Writing files tensor by tensor, so that peak memory is one tensor, not the
// model (`huginn init` of a 3.5B-parameter model holds 1.4 GB, not 14 GB).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "huginn/config.h"
#include "huginn/safetensors.h"

namespace huginn {

// A tensor produced on demand: `produce` fills its elements (as float32) when
// the writer reaches it; tensors are produced in order, one at a time.
struct StreamedTensor {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;  // stored as F32, BF16 or F16
  std::function<void(float*)> produce;
};

// write_safetensors for produced tensors: the same file format, written
// atomically, with one tensor in memory at a time.
void write_safetensors_streamed(const std::string& path, const std::vector<StreamedTensor>& tensors,
                                const std::map<std::string, std::string>& metadata = {});

// save_checkpoint(dir, c, init_params(c, seed).data(), dtype), byte for byte,
// with each tensor generated as the file reaches it.
void save_random_checkpoint(const std::string& dir, const ModelConfig& c, uint64_t seed, DType dtype = DType::F32);

}  // namespace huginn
