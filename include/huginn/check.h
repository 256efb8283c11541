// Checks of a model's files against its config and of values for NaN/Inf,
// before and during use. Each throws huginn::Error with a one-line message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "huginn/config.h"
#include "huginn/safetensors.h"

namespace huginn {

// Every size of the config against the tensors actually present, in time and
// memory bounded by the number of tensors (the layout is built only once the
// layer count is at most the tensor count): for Huginn the layer counts of
// prelude, core block and coda equal the layers stored; every tensor of the
// architecture's layout is present with its shape; for Huginn the parameter
// count equals the elements of those tensors; a stored freqs_cis matches
// block_size, and the rotary tables that block_size asks for (block_size ·
// head_dim floats) are at most max(kMaxRopeBytes, bytes of the weights).
// To be called by Model::load right after TensorStore::open_dir.
constexpr uint64_t kMaxRopeBytes = uint64_t(128) << 20;
void check_config_against_weights(const ModelConfig& c, const TensorStore& store);

// Non-finite values of one tensor (F32, F16, BF16, F64; other dtypes have
// none), found from the bits without converting. first: index of the first.
struct NonFinite {
  uint64_t nan = 0, inf = 0;
  int64_t first = -1;
  uint64_t count() const { return nan + inf; }
};
NonFinite scan_non_finite(const TensorView& t);

// The load-time check: every tensor of at most max_numel elements (norms,
// biases, qk_bias: cheap, and where a NaN does the most harm) is scanned;
// throws naming the tensor and the index of the first NaN/Inf.
void check_small_tensors_finite(const TensorStore& store, int64_t max_numel = 1 << 16);

// The cheap check of a row of logits during generation: throws
// "non-finite logits (NaN) at iteration DEPTH of token POSITION: ..." when any
// value is NaN or ±Inf. Vectorisable; about the cost of one pass over V floats.
void check_logits_finite(const float* logits, size_t n, int depth, int64_t position);
bool all_finite(const float* x, size_t n);

// A recurrence depth asked for (a --steps value, a config's mean_recurrence used
// as default) against the cap: throws "WHAT: DEPTH iterations exceed the cap of
// CAP (raise it with --max-steps)". The default cap keeps a config with
// mean_recurrence 2^30 from running for ever.
constexpr int kDefaultMaxRecurrence = 4096;
void check_recurrence(int64_t depth, const std::string& what, int64_t cap = kDefaultMaxRecurrence);

}  // namespace huginn
