// Writing and initialising checkpoints in the Hugging Face layout.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "huginn/config.h"
#include "huginn/model.h"
#include "huginn/safetensors.h"

namespace huginn {

// The paper's "takase" initialisation into a flat buffer (param_layout order):
// truncated normal (3 std), std sqrt(2/(5d)) for embeddings, qkv, adapter and
// the gate half of fc; attention proj, MLP proj and the up half of fc use that
// std / sqrt(2 * L_eff); norms are one, qk_bias zero.
std::vector<float> init_params(const ModelConfig& c, uint64_t seed);

// Writes config.json and model.safetensors (tied head not stored, freqs_cis not
// stored) into dir, creating it; each file is written atomically.
void save_checkpoint(const std::string& dir, const ModelConfig& c, const float* flat, DType dtype = DType::F32);

}  // namespace huginn
