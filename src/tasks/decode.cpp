// Greedy answer decoding for the tasks, and evaluation over test instances.
#include <chrono>
#include <cmath>
#include <set>

#include "huginn/common.h"
#include "huginn/config.h"
#include "huginn/exit_criteria.h"
#include "huginn/generate.h"
#include "huginn/kv_cache.h"
#include "huginn/model.h"
#include "huginn/tasks.h"
#include "tasks/parallel.h"

namespace huginn::tasks {

// Answers are decoded by the engine's one decode loop (huginn::generate):
// greedy, stopping at EOS, at a fixed depth or with the KL exit.
DecodeResult decode_answer(const Model& m, const std::vector<int>& prompt, const DecodeOptions& o) {
  const ModelConfig& c = m.config();
  if (prompt.empty()) fail("decode: empty prompt");
  if (o.steps < 1) fail("decode: the number of iterations must be >= 1, got ", o.steps);
  if (o.max_new_tokens < 1) fail("decode: max_new_tokens must be >= 1");
  const bool with_exit = o.exit.kind != ExitKind::None;
  if (with_exit && !(o.exit.threshold > 0 && std::isfinite(o.exit.threshold)))
    fail("decode: the exit threshold must be a positive number, got ", o.exit.threshold);
  if (o.soft_thoughts < 0) fail("decode: soft thoughts must be >= 0, got ", o.soft_thoughts);
  if (o.soft_top_k < 0) fail("decode: soft thoughts' k must be >= 0 (0 = all tokens), got ", o.soft_top_k);
  if (!(o.soft_temperature > 0.f && std::isfinite(o.soft_temperature)))
    fail("decode: soft thoughts' temperature must be a positive number, got ", o.soft_temperature);
  if ((int64_t)prompt.size() + o.soft_thoughts + o.max_new_tokens > c.block_size)
    fail("prompt of ", prompt.size(), " tokens plus ", o.soft_thoughts ? str(o.soft_thoughts, " thoughts and ") : "",
         o.max_new_tokens, " answer tokens exceeds the context of ", c.block_size);
  GenerateOptions g;
  static_cast<DecodeSpec&>(g) = o;
  if (!with_exit) g.min_steps = 0;
  g.cache = !o.cache.empty() ? o.cache : with_exit ? "latest-m4" : "full";
  g.sampling = SamplingOptions{};  // greedy
  g.stop_tokens = {kEosId};
  g.stop_strings.clear();
  g.soft_thoughts = o.soft_thoughts;
  g.soft_top_k = o.soft_top_k;
  g.soft_temperature = o.soft_temperature;
  const SequenceResult r = generate(m, prompt, g);
  DecodeResult res;
  res.prompt_tokens = (int)prompt.size();
  res.tokens = r.tokens;
  res.steps_used.assign(r.steps.begin(), r.steps.begin() + std::min(r.steps.size(), r.tokens.size()));
  res.thought_tokens = r.thought_tokens;
  res.thought_steps = r.thought_steps;
  // The passes run: the prompt, then one position per thought or fed-back
  // token (the last generated token is not fed); their iterations in order.
  std::vector<int> pass_steps = r.thought_steps;
  pass_steps.insert(pass_steps.end(), res.steps_used.begin(), res.steps_used.end());
  int pos = 0;
  for (size_t k = 0; k < pass_steps.size(); ++k) {
    const int T = k == 0 ? (int)prompt.size() : 1;
    res.token_layers += (int64_t)T * (c.n_prelude + c.n_coda + (int64_t)c.n_core * pass_steps[k]);
    res.flops += pass_flops(c, T, pos, pass_steps[k]);
    pos += T;
  }
  return res;
}

double pass_flops(const ModelConfig& c, int T, int pos, int steps) {
  const double d = c.n_embd, I = c.intermediate_size, V = c.vocab_size;
  const double matmul = 2 * (d * 3 * d + d * d + d * 2 * I + I * d);         // per token and layer
  const double attention = 4 * d * ((double)T * pos + (double)T * (T + 1) / 2);  // QK^T and AV over the context
  const double layers = c.n_prelude + c.n_coda + (double)c.n_core * steps;
  const double adapter = (double)steps * T * 2 * (2 * d * d);  // input injection, once per iteration
  return layers * (T * matmul + attention) + adapter + 2 * V * d;
}

// The characters of soft thought positions (their argmax tokens); '?' for
// special tokens, so that a path with one stays its length and is wrong.
static std::string soft_thought_text(const std::vector<int>& ids) {
  std::string s;
  for (int id : ids) {
    const char ch = id_char(id);
    s += ch ? ch : '?';
  }
  return s;
}

std::vector<Instance> test_instances(const Task& task, int d, int n, uint64_t seed, int* distinct) {
  // Distinct where the instance space allows (small difficulties have few):
  // draws stop after 20n tries, then repeat.
  std::vector<Instance> inst;
  std::set<std::string> seen;
  for (uint64_t i = 0; (int)inst.size() < n && i < (uint64_t)n * 20; ++i) {
    Instance in = sample(task, Split::Test, d, i, seed);
    if (seen.insert(in.prompt).second) inst.push_back(std::move(in));
  }
  const int nd = (int)inst.size();
  if (distinct) *distinct = nd;
  for (int i = 0; (int)inst.size() < n; ++i) {
    Instance copy = inst[i % nd];
    inst.push_back(std::move(copy));
  }
  return inst;
}

std::vector<EvalResult> evaluate(const Model& m, const Task& task, const std::vector<int>& difficulties,
                                 const std::vector<EvalSetting>& settings, int n, uint64_t seed,
                                 const DecodeOptions& base, const EvalProgress& progress) {
  if (n < 1) fail("eval: the number of instances must be >= 1, got ", n);
  if (difficulties.empty()) fail("eval: no difficulties");
  if (settings.empty()) fail("eval: no settings");
  for (auto& st : settings) {
    if (st.steps < 1) fail("eval: iterations must be >= 1, got ", st.steps);
    if (st.exit.kind != ExitKind::None && !(st.exit.threshold > 0 && std::isfinite(st.exit.threshold)))
      fail("eval: the ", ExitCriterion::name(st.exit.kind), " exit needs a positive threshold, got ",
           st.exit.threshold);
  }
  for (int d : difficulties) task.check_difficulty(d);
  for (auto& st : settings)
    if (st.soft_k >= 0) {
      if (task.path_length(difficulties.front()) == 0)
        fail("eval: soft thoughts decode a written reasoning path; task '", task.name(),
             "' answers directly (use a chain-of-thought task such as jumps-cot)");
      if (st.exit.kind != ExitKind::None) fail("eval: soft thoughts run at a fixed depth; give no --exit with them");
      if (!(st.soft_temperature > 0.f && std::isfinite(st.soft_temperature)))
        fail("eval: the soft thoughts' temperature must be a positive number, got ", st.soft_temperature);
    }
  const int V = m.config().vocab_size;
  if (V < kCharVocabSize)
    fail("eval: the model's vocabulary (", V, ") is smaller than the task tokenizer's (", kCharVocabSize,
         "): not a task model");
  const int64_t total = (int64_t)difficulties.size() * settings.size() * n;
  int64_t done = 0;  // counted under for_each_instance's lock
  std::vector<EvalResult> out;
  for (int d : difficulties) {
    int distinct = 0;
    const std::vector<Instance> inst = test_instances(task, d, n, seed, &distinct);
    const int path = task.path_length(d);
    for (auto& st : settings) {
      DecodeOptions o = base;
      o.steps = st.steps;
      o.exit = st.exit;
      o.max_new_tokens = task.answer_length(d) + 1;
      // Soft thoughts: along the written path, then the final answer and EOS,
      // within the tokens greedy decoding may write.
      SoftChainOptions so;
      so.steps = st.steps;
      so.max_new_tokens = o.max_new_tokens;
      so.soft_top_k = st.soft_k;
      so.soft_temperature = st.soft_temperature;
      so.is_thought = [&task](int id) { return task.path_char(id_char(id)); };
      std::vector<char> ok(n, 0), path_ok(n, 0);
      std::vector<int64_t> steps_sum(n, 0), first_steps(n, 0), ntok(n, 0), nprompt(n, 0), emitted(n, 0),
          layers(n, 0);
      std::vector<double> flops(n, 0);
      const auto t0 = std::chrono::steady_clock::now();
      for_each_instance(
          n,
          [&](int i) {
            DecodeResult r = st.soft_k >= 0 ? decode_soft_chain(m, prompt_ids(inst[i]), so)
                                            : decode_answer(m, prompt_ids(inst[i]), o);
            const std::string text = soft_thought_text(r.thought_tokens) + decode_answer_text(r.tokens);
            ok[i] = task.score(inst[i], text);
            path_ok[i] = path > 0 && task.score_path(inst[i], text);
            for (int sused : r.steps_used) steps_sum[i] += sused;
            first_steps[i] = !r.thought_steps.empty() ? r.thought_steps[0]
                             : r.steps_used.empty()   ? 0
                                                      : r.steps_used[0];
            ntok[i] = (int64_t)r.tokens.size();
            nprompt[i] = r.prompt_tokens;
            emitted[i] = (int64_t)r.thought_tokens.size() + (int64_t)r.tokens.size() -
                         (!r.tokens.empty() && r.tokens.back() == kEosId ? 1 : 0);
            layers[i] = r.token_layers;
            flops[i] = r.flops;
          },
          [&] {
            ++done;
            if (progress) progress(done, total);
          });
      EvalResult r;
      r.task = task.name();
      r.difficulty = d;
      r.setting = st;
      r.n = n;
      r.distinct = distinct;
      r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      int64_t ssum = 0, fsum = 0;
      r.has_path = path > 0;
      for (int i = 0; i < n; ++i) {
        r.correct += ok[i];
        r.path_correct += path_ok[i];
        r.emitted_tokens += emitted[i];
        r.token_layers += layers[i];
        r.flops += flops[i];
        ssum += steps_sum[i];
        fsum += first_steps[i];
        r.generated_tokens += ntok[i];
        r.prompt_tokens += nprompt[i];
      }
      r.mean_steps = r.generated_tokens ? (double)ssum / (double)r.generated_tokens : 0;
      r.mean_first_steps = (double)fsum / n;
      out.push_back(r);
    }
  }
  return out;
}

}  // namespace huginn::tasks
