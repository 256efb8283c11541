// Synthetic reasoning tasks where depth of computation matters, the character
// tokenizer they use, seeded train/test splits that never overlap, a training
// SequenceSource over a task mix, the task manifest of a model directory, and
// the greedy answer decoder that evaluation uses.
//
// Every task's answer is the fixed point of a local propagation that flows in
// the causal (left-to-right) direction of the prompt, so that one recurrence
// can advance the propagation by a step at every position, and harder
// instances (longer inputs) need more steps. Answers are either one token or
// written in an order that needs the whole propagation before the first token,
// so the model cannot replace depth by its own answer tokens.
//
// Training on tasks (a trainer data spec such as "tasks:SPEC" maps to this):
//   tasks::TaskMix mix = tasks::parse_task_mix("reach:2-6,addition:1-8");
//   mix.pack = true;  // several instances per sequence: more answer labels per step
//   auto train = std::make_shared<tasks::TaskSequenceSource>(mix);
//   auto val = std::make_shared<tasks::TaskSequenceSource>(mix, tasks::Split::Validation);
//   // sequence length T >= mix.max_sequence_length(); model vocab_size >= kCharVocabSize
//   // and, with the checkpoint: tasks::write_task_manifest(dir, mix); tasks::write_tokenizer_files(dir);
// Evaluating: tasks::evaluate(model, tasks::get_task("reach"), {4, 8}, {{1}, {8}, {32}}, 200, seed, {})
// or `huginn eval`; both decode through decode_answer().
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "huginn/data.h"
#include "huginn/decode_spec.h"

namespace huginn {
class Model;
class Tokenizer;
struct ModelConfig;
}

namespace huginn::tasks {

// ---------------------------------------------------------------------------
// Character tokenizer. THE one place that maps characters to ids (until the
// lead switches tasks to huginn::Tokenizer reading the same tokenizer.json).
// ids 0..93: printable ASCII '!'..'~' (id = c - 33); 94: ' '; 95: '\n';
// 96: <|begin_text|> (BOS); 97: <|end_text|> (EOS); 98: <|pad|> (PAD).
constexpr int kBosId = 96;
constexpr int kEosId = 97;
constexpr int kPadId = 98;
constexpr int kCharVocabSize = 99;       // ids actually used
constexpr int kCharModelVocabSize = 128;  // recommended (padded) vocab_size for task models
extern const char* const kBosText;        // "<|begin_text|>"
extern const char* const kEosText;        // "<|end_text|>"
extern const char* const kPadText;        // "<|pad|>"

// id of one character; throws huginn::Error naming it when it has none.
int char_id(char c);
// The character of an id, or 0 for special / out-of-range ids.
char id_char(int id);
std::vector<int> encode_chars(const std::string& text);
// Characters of the ids; specials are written as their names (<|end_text|>).
std::string decode_ids(const std::vector<int>& ids);
// Same, but stops before the first EOS and skips BOS/PAD (an answer's text).
std::string decode_answer_text(const std::vector<int>& ids);

// The tokenizer as a Hugging Face tokenizer.json: BPE with the character
// vocabulary (byte-level alphabet) and no merges, ByteLevel pre-tokenizer and
// decoder, BOS/EOS/PAD as special added tokens.
nlohmann::json tokenizer_json();
// Throws huginn::Error when a model directory holds a tokenizer.json whose
// vocabulary is not this character vocabulary (a model directory without one
// is accepted: test models made by `huginn init`).
void check_char_tokenizer(const std::string& model_dir);
// The same for a tokenizer already loaded (LoadedModel::tokenizer(); null:
// the model has none, accepted); `origin` names it in the error.
void check_char_tokenizer(const Tokenizer* tok, const std::string& origin);
// Writes tokenizer.json, tokenizer_config.json (BOS/EOS/PAD names) and
// generation_config.json (their ids, greedy) into a model directory, atomically.
void write_tokenizer_files(const std::string& dir);

// ---------------------------------------------------------------------------
// Tasks.
struct Instance {
  std::string prompt;  // characters, without BOS
  std::string answer;  // characters, without EOS
  int difficulty = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual std::string name() const = 0;
  // One paragraph: prompt and answer format, what difficulty means.
  virtual std::string description() const = 0;
  // Difficulties the generator supports (inclusive).
  virtual int min_difficulty() const = 0;
  virtual int max_difficulty() const = 0;
  // A pure function of (difficulty, seed); throws for a difficulty outside the range.
  virtual Instance generate(int difficulty, uint64_t seed) const = 0;
  // Prompt and answer lengths (characters) of every instance of a difficulty.
  virtual int prompt_length(int difficulty) const = 0;
  virtual int answer_length(int difficulty) const = 0;
  // Exact match of the decoded answer text (before EOS). A chain-of-thought
  // task scores its final answer only (score_path() checks the reasoning).
  virtual bool score(const Instance& inst, const std::string& output) const { return output == inst.answer; }
  // Instances (prompts, the train/validation/test split and the sampled
  // stream) are those of this task family: a chain-of-thought variant names
  // its base task ("jumps-cot" -> "jumps") and poses the very same problems.
  virtual std::string family() const { return name(); }
  // Chain-of-thought tasks: the answer starts with this many written
  // reasoning characters (the rest is the final answer); 0 for direct tasks.
  virtual int path_length(int difficulty) const { (void)difficulty; return 0; }
  // Whether a character can be part of the written reasoning (what soft
  // thoughts replace); false for direct tasks.
  virtual bool path_char(char c) const { (void)c; return false; }
  // Whether the written reasoning (the first path_length characters) is
  // exactly right; false for tasks without one.
  virtual bool score_path(const Instance& inst, const std::string& output) const {
    (void)inst, (void)output;
    return false;
  }
  // Tokens of [BOS] prompt answer [EOS].
  int sequence_length(int difficulty) const { return prompt_length(difficulty) + answer_length(difficulty) + 2; }
  void check_difficulty(int difficulty) const;
};

// The built-in tasks by name ("addition", "digitsum", "parity", "reach", "reach-hard",
// "jumps", "jumps-cot");
// throws huginn::Error listing the known names for an unknown one.
const Task& get_task(const std::string& name);
std::vector<std::string> task_names();

// ---------------------------------------------------------------------------
// Splits. Every possible instance belongs to exactly one split, decided by a
// hash of its task family and prompt (1/8 of the instance space is test, 1/16
// validation, the rest training). sample() draws instance `index` of a split
// and rejects candidates that belong to another split, so the splits never
// overlap, whatever the seeds and indices.
enum class Split { Train, Validation, Test };
const char* split_name(Split s);
Split split_of(const Task& task, const std::string& prompt);
Instance sample(const Task& task, Split split, int difficulty, uint64_t index, uint64_t seed = 0);

// A stable 64-bit hash (FNV-1a then a splitmix finaliser), for seeds.
uint64_t hash64(const std::string& s, uint64_t salt = 0);
uint64_t mix64(uint64_t x);

// ---------------------------------------------------------------------------
// A task mix for training, recorded in the model's task manifest (tasks.json).
struct TaskRange {
  std::string task;
  int min_difficulty = 0, max_difficulty = 0;
  double weight = 1.0;
};
struct TaskMix {
  std::vector<TaskRange> tasks;
  uint64_t seed = 0;
  // Curriculum: when > 0, the largest difficulty drawn for sequence i grows
  // linearly from min to max over the first `curriculum_sequences` indices.
  uint64_t curriculum_sequences = 0;
  // Pack several instances into one sequence while they fit (default: one per sequence).
  bool pack = false;

  // Longest [BOS] prompt answer [EOS] over the mix: the smallest usable T.
  int max_sequence_length() const;
  void validate() const;  // known tasks, ranges inside the supported ones, weights > 0
};
// "addition:1-12,reach:3-8@2" (name:min-max[@weight]; "name:K" for one difficulty),
// optionally with "pack" and "curriculum=N" entries ("jumps:4-20,pack,curriculum=100000").
TaskMix parse_task_mix(const std::string& spec);
nlohmann::json task_mix_to_json(const TaskMix& mix);
TaskMix task_mix_from_json(const nlohmann::json& j, const std::string& source);
// tasks.json in a model directory.
void write_task_manifest(const std::string& dir, const TaskMix& mix);
TaskMix read_task_manifest(const std::string& dir);  // throws if absent or invalid
bool has_task_manifest(const std::string& dir);

// Training sequences over a mix: [BOS] prompt answer [EOS] then PAD up to T;
// labels only on the positions whose next token is an answer token or the EOS
// (labels[t] = ids[t+1] there, kIgnoreLabel elsewhere). Instances come from
// the training split (or the validation split, for validation losses).
class TaskSequenceSource : public SequenceSource {
 public:
  explicit TaskSequenceSource(TaskMix mix, Split split = Split::Train);
  void get(uint64_t index, int T, int* ids, int* labels) const override;
  std::string describe() const override;
  // The instance(s) that sequence `index` holds (for tests and logs).
  std::vector<Instance> instances(uint64_t index, int T) const;
  const TaskMix& mix() const { return mix_; }

 private:
  Instance draw(uint64_t index, uint64_t sub) const;
  TaskMix mix_;
  Split split_;
  double total_weight_ = 0;
};

// ---------------------------------------------------------------------------
// Greedy answer decoding through the Model API, the one function evaluation
// uses: prefill the prompt with a KV cache, then one token at a time, at a
// fixed depth or with a per-token exit.
// DecodeOptions is a DecodeSpec (decode_spec.h), with the tasks' defaults:
// at most 8 answer tokens, and the cache "" = the mode's default (full at a
// fixed depth, latest-m4 with an exit). Decoding is greedy and stops at EOS
// (the spec's sampling and stop tokens are not used). The exit criterion
// ("kl:5e-4", "latent-diff:0.03", ...) needs a threshold > 0; min_steps is
// the spec's (the reference's): the earliest exit is after min_steps + 1
// iterations.
struct DecodeOptions : DecodeSpec {
  DecodeOptions() {
    max_new_tokens = 8;
    cache = "";
  }
  // Soft thoughts (the engine's GenerateOptions::soft_thoughts): after the
  // prompt, this many positions are fed the probability-weighted mixture of
  // the embeddings of the top soft_top_k tokens (0: all) of the previous
  // position's next-token distribution at soft_temperature, instead of one
  // token; then max_new_tokens are decoded greedily. With soft_top_k = 1 the
  // mixture is the argmax token's embedding: greedy decoding.
  int soft_thoughts = 0;
  int soft_top_k = 1;
  float soft_temperature = 1.f;
};
struct DecodeResult {
  std::vector<int> tokens;      // generated ids (including a final EOS)
  std::vector<int> steps_used;  // iterations for each generated token
  std::vector<int> thought_tokens;  // argmax of each soft thought position's input distribution
  std::vector<int> thought_steps;   // iterations of the passes that produced them (the first: the prompt pass)
  int prompt_tokens = 0;
  // Compute actually run: the sum over every input position of the layers
  // applied to it (prelude + coda + core x iterations: "iterations x layers"),
  // and an analytic count of floating-point operations (matrix products of
  // every layer, the recurrence's input adapter, attention over the cached
  // context, and the head on the one predicting position of each pass).
  int64_t token_layers = 0;
  double flops = 0;
};
DecodeResult decode_answer(const Model& m, const std::vector<int>& prompt_ids, const DecodeOptions& o);

// FLOPs of one forward pass of T input positions starting at position `pos`
// (the cache holds pos earlier ones) at `steps` iterations, with logits for
// its last position only: the count decode_answer() reports.
double pass_flops(const ModelConfig& c, int T, int pos, int steps);

// Chain-of-thought decoding with soft thoughts at every reasoning position
// (the engine's GenerateOptions::soft_thoughts feeds a fixed number of them
// before the answer): after the prompt, while the most likely next token is a
// reasoning token (is_thought), the next position is fed the
// probability-weighted mixture of the embeddings of the top soft_top_k tokens
// (0: all) at soft_temperature, and the argmax is recorded as the written
// token (thought_tokens); from the first other token on, tokens are decoded
// greedily until EOS. max_new_tokens counts thoughts and answer tokens
// together. With soft_top_k = 1 every input is the argmax token's embedding:
// exactly greedy decoding (decode_answer), token for token. Fixed depth, full
// KV cache, zero initial state.
struct SoftChainOptions {
  int steps = 1;
  int max_new_tokens = 8;
  int soft_top_k = 1;
  float soft_temperature = 1.f;
  std::function<bool(int)> is_thought;  // token id -> part of the written reasoning
};
DecodeResult decode_soft_chain(const Model& m, const std::vector<int>& prompt_ids, const SoftChainOptions& o);

// [BOS] + the prompt's characters.
std::vector<int> prompt_ids(const Instance& inst);

// ---------------------------------------------------------------------------
// Evaluation on fresh test-split instances: for each difficulty, the first n
// distinct instances of the test split's stream (seeded; repeated only when
// the difficulty has fewer), decoded by decode_answer under each setting,
// scored by exact match. Instances run in parallel across threads.
struct EvalSetting {
  int steps = 32;      // fixed depth, or the maximum with an exit
  ExitCriterion exit;  // none, or a criterion with its threshold (> 0): DecodeSpec::parse_exit("kl:1e-6")
  // Chain-of-thought tasks only: soft_k >= 0 decodes the written path as soft
  // thoughts (decode_soft_chain: top-k mixture, 0 = all tokens, at
  // soft_temperature, while the argmax is a path character), then the final
  // answer greedily; -1: plain greedy (decode_answer).
  int soft_k = -1;
  float soft_temperature = 1.f;
};
struct EvalResult {
  std::string task;
  int difficulty = 0;
  EvalSetting setting;
  int n = 0, correct = 0;
  int distinct = 0;            // distinct instances among the n (fewer only at tiny difficulties)
  double mean_steps = 0;       // mean iterations per generated token
  double mean_first_steps = 0; // mean iterations of the first answer token (the prompt pass)
  double wall_s = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  // Chain-of-thought tasks: instances whose written path is exactly right.
  int path_correct = 0;
  bool has_path = false;
  // Totals over the n instances: tokens emitted before EOS (written path or
  // soft thought positions, and the answer), iterations x layers, FLOPs.
  int64_t emitted_tokens = 0, token_layers = 0;
  double flops = 0;
  double accuracy() const { return n ? (double)correct / n : 0; }
  double path_accuracy() const { return n ? (double)path_correct / n : 0; }
};
using EvalProgress = std::function<void(int64_t done, int64_t total)>;
std::vector<EvalResult> evaluate(const Model& m, const Task& task, const std::vector<int>& difficulties,
                                 const std::vector<EvalSetting>& settings, int n, uint64_t seed,
                                 const DecodeOptions& base, const EvalProgress& progress = {});

// The first n distinct test instances of a difficulty (repeated only when the
// instance space is smaller): what evaluate() and convergence() run on.
std::vector<Instance> test_instances(const Task& task, int difficulty, int n, uint64_t seed, int* distinct = nullptr);

// How many iterations the latent state needs to settle, by difficulty: for
// each test instance, the prompt is iterated up to max_steps times (zero
// initial state) and the last prompt position (the one that predicts the
// first answer token) is followed.
struct ConvergenceResult {
  std::string task;
  int difficulty = 0, n = 0, max_steps = 0;
  double tol = 0;
  // Settling: the first iteration from which the relative change of the state
  // stays below tol; instances that never settle count as max_steps.
  double mean_settle = 0, median_settle = 0;
  int unsettled = 0;
  // The first iteration from which the predicted first answer token stays
  // what it is at max_steps (the answer has stopped changing).
  double mean_answer_settle = 0;
};
std::vector<ConvergenceResult> convergence(const Model& m, const Task& task, const std::vector<int>& difficulties,
                                           int n, uint64_t seed, int max_steps, double tol = 1e-3,
                                           const EvalProgress& progress = {});

// ---------------------------------------------------------------------------
// Latent analysis: the state after every iteration of one forward pass, and
// what its trajectory does (settles to a fixed point, orbits, slides).
struct LatentTrace {
  int T = 0, d = 0, steps = 0, vocab = 0;
  std::vector<float> states;   // [steps, T, d] raw state after iteration k+1
  std::vector<float> latents;  // [steps, T, d] ln_f of it (what the coda reads)
  std::vector<float> logits;   // [steps, vocab] next-token logits of the last position
};
LatentTrace trace_latents(const Model& m, const std::vector<int>& ids, int steps, float init_scale = 0.f,
                          uint64_t seed = 0);

struct Trajectory {
  std::vector<double> norm;           // ||s_k||, k = 1..steps
  std::vector<double> dist_to_final;  // ||s_k - s_steps||
  std::vector<double> rel_change;     // ||s_k - s_{k-1}|| / ||s_k|| (s_0 = the initial state)
  // First iteration from which every relative change stays below the
  // tolerance, or -1 when the state never settles.
  int settle_iteration = -1;
  int period = 0;          // > 0 for an orbit
  std::string behaviour;   // "fixed point", "orbit", "slider" or "unsettled"
  std::string summary;     // one readable line
  std::vector<double> pc1, pc2;  // 2-D PCA projection of the states
  double explained[2] = {0, 0};  // variance fractions of the two components
};
// states: `steps` rows of `d` floats, `stride` floats apart (one position of a
// LatentTrace: stride = T * d); initial: the state before iteration 1 (may be null = zeros).
Trajectory analyze_trajectory(const float* states, int steps, int d, size_t stride, const float* initial = nullptr,
                              double settle_tol = 1e-3);

}  // namespace huginn::tasks
