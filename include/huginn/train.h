// Training recurrent-depth models (spec section 6): the float32 training
// forward/backward (GradEngine), the recipe (recurrence sampling, AdamW with
// the reference's parameter groups, warmup + constant/cosine + cooldown,
// clipping, accumulation), and the training loop with atomic HF checkpoints,
// bit-exact resume and MPI data parallelism (Trainer).
//
// Training on your own data from C++:
//
//   huginn::TrainOptions o;            // steps, batch, seq_len, lr, ...
//   o.out = "runs/demo";
//   auto src = std::make_shared<MySource>();   // any huginn::SequenceSource
//   huginn::Trainer tr(cfg, o, src, /*validation*/ src_val_or_nullptr);
//   tr.init_params();                  // or tr.load_params(dir) / tr.resume(dir)
//   tr.run();                          // logs, validation, checkpoints
//   // or drive it yourself: StepStats s = tr.step(); tr.save(dir);
//
// Determinism: step s trains on global sequences s*batch .. s*batch+batch-1 of
// the source, its depth split is a function of (seed, s) and each sequence's
// initial-state noise of (seed, sequence index). Results are bitwise
// identical across runs, resumes and thread counts; across MPI world sizes
// they agree to float rounding (the gradient sum order changes).
// Validation runs from the zero initial state (init_scale 0, as inference).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "huginn/config.h"
#include "huginn/data.h"
#include "huginn/model.h"

namespace huginn {

// ---------------------------------------------------------------- recipe --

// One step's iteration split: `no_grad` iterations under no-grad, then `grad`
// iterations with gradient (spec 6).
struct RecurrenceSplit {
  int no_grad = 0, grad = 0;
  int total() const { return no_grad + grad; }
};
// rate ~ LogNormal(ln(mean) - 1/8, 1/2), p = Poisson(rate) + 1,
// split (max(p - k, 0), min(p, k)). A pure function of (seed, step).
RecurrenceSplit sample_recurrence(int mean_recurrence, int backprop_depth, uint64_t seed, uint64_t step);

// Learning rate at optimizer step `step` (0-based): linear warmup from 0 over
// `warmup` steps, then "constant" (with a linear cooldown to min_lr over the
// last `cooldown` steps) or "cosine" (from lr to min_lr over the remaining
// steps, the last `cooldown` steps included).
struct LRSchedule {
  std::string kind = "constant";  // constant | cosine
  float lr = 1e-3f, min_lr = 0.f;
  int warmup = 0, cooldown = 0, total_steps = 1;
  float at(int step) const;
};

// AdamW exactly as torch.optim.AdamW (decoupled weight decay applied before
// the Adam update). Weight decay only on matrices: the reference's
// no_weight_decay_for_bias_and_norm_params groups (norms, ln_f, qk_bias get 0).
struct AdamWConfig {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};
class AdamW {
 public:
  AdamW(const ModelConfig& c, AdamWConfig cfg);
  // p, g: flat buffers in param_layout order. Increments step() first.
  void update(float* p, const float* g, float lr);
  int64_t step() const { return t_; }
  // Decay factor for one parameter name (0 or weight_decay).
  float decay_for(const std::string& name) const;
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }
  void set_step(int64_t t) { t_ = t; }

 private:
  std::vector<ParamSpec> layout_;
  std::vector<float> decay_;  // per tensor
  AdamWConfig cfg_;
  std::vector<float> m_, v_;
  int64_t t_ = 0;
};

// Copies a model's weights into one flat F32 buffer in param_layout order.
std::vector<float> flatten_weights(const Model& m);

// Sets flush-to-zero / denormals-are-zero on the calling thread and every
// OpenMP thread (the Trainer does this; denormals slow training ~100x).
void enable_flush_denormals();

// Gradient norm (L2 over the whole flat buffer, in double).
double grad_norm(const float* g, size_t n);

// ------------------------------------------------------ forward/backward --

// The training forward and backward for batches of B sequences of T tokens.
// Activations live in buffers preallocated for (max_batch, T, max_grad_iters):
// only the graded iterations (and prelude/coda) keep theirs.
class GradEngine {
 public:
  GradEngine(const ModelConfig& c, int max_batch, int T, int max_grad_iters);
  ~GradEngine();
  GradEngine(const GradEngine&) = delete;
  GradEngine& operator=(const GradEngine&) = delete;

  struct Result {
    double loss_sum = 0;  // sum of cross-entropy over scored positions
    int n_valid = 0;      // scored positions
  };
  // One forward + backward. params/grads: flat param_layout buffers; grads is
  // accumulated into (+=). dlogits are scaled by loss_scale (use 1/#scored
  // positions of the whole (global) batch for a mean loss). input_states:
  // [B*T*d] initial states, or null for the reference's init with init_scale
  // (0: zeros) seeded per sequence by state_seeds[b] (null: seed b).
  // split.no_grad iterations without gradient, then split.grad with.
  Result forward_backward(const float* params, float* grads, const int* ids, const int* labels, int B,
                          RecurrenceSplit split, float loss_scale, const float* input_states = nullptr,
                          float init_scale = 0.f, const uint64_t* state_seeds = nullptr);
  // Loss only, with `steps` iterations (no gradient, nothing saved).
  Result loss(const float* params, const int* ids, const int* labels, int B, int steps,
              const float* input_states = nullptr, float init_scale = 0.f, const uint64_t* state_seeds = nullptr);

  // After forward_backward: d loss / d initial state [B*T*d] (zero when no_grad > 0).
  const std::vector<float>& input_state_grad() const;
  // Of the last call: the raw final state [B*T, d] (the state the head
  // started from) and, after loss() (forward_backward overwrites them with
  // their gradient), the logits [B*T, V].
  const float* logits() const;
  const float* final_state() const;
  // After forward_backward: d loss / d (wte[ids] * sqrt(d)) [B*T*d], the
  // gradient reaching the scaled embedding output.
  const std::vector<float>& embedding_output_grad() const;

  int seq_len() const;
  int max_batch() const;
  int max_grad_iters() const;
  size_t activation_bytes() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

// ------------------------------------------------------------------ data --

// A data spec: "synthetic:TASK[,key=value...]" (tasks copy, reverse, modsum;
// keys len, digits, seed) or "tokens:PREFIX" (PREFIX.train.bin and
// PREFIX.val.bin from `huginn data tokenize`; a single .bin file also works
// and then has no validation split). Returns train and validation (may be
// null) sources. vocab_size is checked against the ids the source can emit.
struct DataSources {
  std::shared_ptr<const SequenceSource> train, val;
  // Writes the files a model trained on this data needs beside its weights
  // (tokenizer, task manifest) into a checkpoint directory; may be empty.
  std::function<void(const std::string& dir)> write_model_files;
};
DataSources open_data(const std::string& spec, int vocab_size);

// A built-in synthetic task: packed examples "BOS x1..xm SEP y1..ym EOS" with
// the labels on the answer tokens only. Token ids: 0 pad, 1 BOS, 2 SEP,
// 3 EOS, 4.. digits. Validation uses a disjoint index range.
class SyntheticSource : public SequenceSource {
 public:
  enum class Task { Copy, Reverse, ModSum };
  SyntheticSource(Task task, int len, int digits, uint64_t seed, bool validation = false);
  void get(uint64_t index, int T, int* ids, int* labels) const override;
  std::string describe() const override;
  int vocab_needed() const { return 4 + digits_; }

 private:
  Task task_;
  int len_, digits_;
  uint64_t seed_;
  bool val_;
};

// Sequences cut from a binary token file (memory-mapped). Sequence i is the
// window of T+1 tokens at a pseudo-random (bijective per epoch) offset:
// ids = w[0..T-1], labels = w[1..T].
class TokenFileSource : public SequenceSource {
 public:
  explicit TokenFileSource(const std::string& path);
  ~TokenFileSource() override;
  void get(uint64_t index, int T, int* ids, int* labels) const override;
  std::string describe() const override;
  uint64_t size() const { return n_; }
  uint32_t max_id() const;

 private:
  struct Map;
  std::unique_ptr<Map> map_;
  uint64_t n_ = 0;
  int width_ = 4;
  std::string path_;
};

// Token file format: "HGNTOK01" magic, u32 bytes per token (2 or 4), u32 eos,
// u64 count, then count little-endian ids.
void write_token_file(const std::string& path, const std::vector<uint32_t>& ids, int eos);

// `huginn data tokenize`: reads .jsonl (lines of [ids...] or {"ids": [...]} or
// {"text": "..."}) or plain text (documents separated by blank lines), packs
// documents with eos between them, splits whole documents into train /
// validation by a hash of the document number, and writes PREFIX.train.bin and
// PREFIX.val.bin. Text needs the tokenizer (see tokenize_text in data.cpp).
struct TokenizeOptions {
  std::vector<std::string> inputs;
  std::string out_prefix, tokenizer;  // tokenizer: a model dir / tokenizer.json
  double val_fraction = 0.01;
  int eos = -1;  // -1: from the tokenizer, or error for id-only input
  uint64_t seed = 0;
};
struct TokenizeStats {
  uint64_t docs_train = 0, docs_val = 0, tokens_train = 0, tokens_val = 0;
};
TokenizeStats tokenize_files(const TokenizeOptions& o);

// -------------------------------------------------------------- training --

struct TrainOptions {
  int steps = 1000;
  int batch = 32;     // global sequences per optimizer step (all ranks)
  int seq_len = 128;  // T
  int accum = 1;      // micro-batches per rank per step
  LRSchedule sched;   // total_steps is set from `steps`
  AdamWConfig adamw;
  float clip = 1.0f;  // global grad-norm clip; 0 disables
  int mean_recurrence = 0, backprop_depth = 0;  // 0: from the model config
  int fixed_no_grad = -1, fixed_grad = -1;      // >= 0: fixed split instead of sampling
  float init_scale = 1.0f;                      // initial-state noise in training
  uint64_t seed = 0;
  int log_every = 1;
  int eval_every = 100;  // 0: only at the end
  int eval_batches = 2;  // validation batches of `batch` sequences per depth
  std::vector<int> eval_depths;  // default {1, mean/2, mean, 2*mean}
  int save_every = 0;            // 0: only at the end
  int stop_at = -1;              // >= 0: stop (and save) after this many steps; the schedule still uses `steps`
  std::string out;               // checkpoint directory (rank 0 writes)
  std::string data;              // the data spec, recorded in the trainer state
  bool quiet = false;
};
// The options as stored in trainer_state.json, and back (missing keys keep their value).
nlohmann::json train_options_to_json(const TrainOptions& o);
void train_options_from_json(const nlohmann::json& j, TrainOptions& o);

struct StepStats {
  int step = 0;  // optimizer steps done after this one
  double loss = 0, grad_norm = 0;
  float lr = 0;
  RecurrenceSplit split;
  int64_t tokens = 0;  // tokens processed by this step (global)
  double seconds = 0;
};

// MPI world (initialised only when launched by mpirun, or when forced).
struct Dist {
  int rank = 0, size = 1;
  bool active = false;
  static Dist& get();
  void init_if_launched();  // MPI_Init when OMPI/PMI environment variables say so
  void finalize();
  void abort(int code);  // MPI_Abort: a failing rank must not leave the others waiting
  void allreduce_sum(float* x, size_t n) const;
  void allreduce_sum(double* x, size_t n) const;
};

class Trainer {
 public:
  Trainer(const ModelConfig& cfg, TrainOptions opt, std::shared_ptr<const SequenceSource> train,
          std::shared_ptr<const SequenceSource> val = nullptr);
  ~Trainer();

  void init_params();                     // spec init, seeded by opt.seed
  void load_params(const std::string& model_dir);  // start from an existing checkpoint (fine-tune)
  void resume(const std::string& dir);    // params + optimizer + trainer state: continues bit-exactly

  StepStats step();                       // one optimizer step
  // Mean validation loss at a fixed depth over `batches` x batch sequences (the
  // validation source, or training indices from 2^62 when there is none).
  double eval_loss(int depth, int batches);
  void save(const std::string& dir) const;   // atomic HF checkpoint + optimizer + trainer state
  // Files written into every checkpoint beside the weights (see DataSources).
  void set_model_files(std::function<void(const std::string& dir)> write);
  void run();                              // the loop: steps, progress, validation, metrics, plot, saves

  int steps_done() const;
  const std::vector<float>& params() const;
  const ModelConfig& config() const;
  const TrainOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> p_;
};

// Writes a loss curve as a standalone SVG (train loss and validation series).
void write_loss_svg(const std::string& path, const std::vector<std::pair<int, double>>& train,
                    const std::vector<std::pair<std::string, std::vector<std::pair<int, double>>>>& val);

}  // namespace huginn
