// Greedy answer decoding for the tasks, and evaluation over test instances.
#include <chrono>
#include <cmath>
#include <set>

#include "huginn/common.h"
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
  if ((int64_t)prompt.size() + o.max_new_tokens > c.block_size)
    fail("prompt of ", prompt.size(), " tokens plus ", o.max_new_tokens, " answer tokens exceeds the context of ",
         c.block_size);
  GenerateOptions g;
  static_cast<DecodeSpec&>(g) = o;
  if (!with_exit) g.min_steps = 0;
  g.cache = !o.cache.empty() ? o.cache : with_exit ? "latest-m4" : "full";
  g.sampling = SamplingOptions{};  // greedy
  g.stop_tokens = {kEosId};
  g.stop_strings.clear();
  const SequenceResult r = generate(m, prompt, g);
  DecodeResult res;
  res.prompt_tokens = (int)prompt.size();
  res.tokens = r.tokens;
  res.steps_used.assign(r.steps.begin(), r.steps.begin() + std::min(r.steps.size(), r.tokens.size()));
  return res;
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
    for (auto& st : settings) {
      DecodeOptions o = base;
      o.steps = st.steps;
      o.exit = st.exit;
      o.max_new_tokens = task.answer_length(d) + 1;
      std::vector<char> ok(n, 0);
      std::vector<int64_t> steps_sum(n, 0), first_steps(n, 0), ntok(n, 0), nprompt(n, 0);
      const auto t0 = std::chrono::steady_clock::now();
      for_each_instance(
          n,
          [&](int i) {
            DecodeResult r = decode_answer(m, prompt_ids(inst[i]), o);
            ok[i] = task.score(inst[i], decode_answer_text(r.tokens));
            for (int sused : r.steps_used) steps_sum[i] += sused;
            first_steps[i] = r.steps_used.empty() ? 0 : r.steps_used[0];
            ntok[i] = (int64_t)r.tokens.size();
            nprompt[i] = r.prompt_tokens;
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
      for (int i = 0; i < n; ++i) {
        r.correct += ok[i];
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
