// The parallel (diffusion-style) sampler of "Efficient Parallel Samplers for
// Recurrent-Depth Models": each pass advances every open position of a wave a
// few iterations, opens one new position, and freezes the prefix whose state
// (or token) has settled. The pass algorithm follows the fixtures README
// (generate_diffusion) step by step, including the reference's quirks.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "huginn/common.h"
#include "tensor/kernels.h"
#include "huginn/generate.h"
#include "infer/decoder.h"
#include "model/arch.h"

namespace huginn {

FreezeStrategy DiffusionOptions::parse_freeze(const std::string& s) {
  if (s == "latent-diff") return FreezeStrategy::LatentDiff;
  if (s == "fixed") return FreezeStrategy::Fixed;
  if (s == "token-stability") return FreezeStrategy::TokenStability;
  fail("unknown freeze strategy '", s, "' (use latent-diff, fixed or token-stability)");
}

void DiffusionOptions::validate(const ModelConfig& c) const {
  if (architecture_named(c.arch).state_from_embedding())
    fail("the parallel sampler warm-starts positions from other states; the ", c.arch,
         " architecture has no input injection (its loop starts from the token's embedding), so it is not supported");
  if (steps < 0) fail("parallel: steps must be >= 0, got ", steps);
  if (inner_recurrence < 1) fail("parallel: inner recurrence must be >= 1, got ", inner_recurrence);
  if (max_new_tokens < 0) fail("max tokens must be >= 0, got ", max_new_tokens);
  if (max_wavefront < 0) fail("parallel: wavefront must be >= 0 (0 = unbounded), got ", max_wavefront);
  if (!(exit_t > 0)) fail("parallel: exit threshold must be > 0, got ", exit_t);
  if (!(ema_embeds >= 0.f && ema_embeds < 1.f)) fail("parallel: ema must be in [0, 1), got ", ema_embeds);
  if (!(state_mixing >= 0.f && state_mixing <= 1.f)) fail("parallel: state mixing must be in [0, 1], got ", state_mixing);
  if (max_passes < 0) fail("parallel: max passes must be >= 0");
  if (!sampling.greedy()) fail("parallel: only greedy decoding is implemented (temperature 0)");
  if (exit.kind != ExitKind::None) fail("parallel: positions freeze by its own rule (exit_t), not a per-token exit criterion");
  if (init_scale != 0.f) fail("parallel: only the zero initial state is implemented (init scale 0)");
  CacheStrategy::parse(cache);
  (void)c;
}

DiffusionResult generate_diffusion(const Model& m, const std::vector<int>& prompt, const DiffusionOptions& o,
                                   const TokenCallback& cb) {
  const ModelConfig& c = m.config();
  o.validate(c);
  if (prompt.empty()) fail("generate: empty prompt");
  m.check_tokens(prompt.data(), (int)prompt.size(), 0);
  const int P = (int)prompt.size(), d = c.n_embd, V = c.vocab_size, S = o.steps, R = o.inner_recurrence;
  const int W = o.max_wavefront;
  if (!o.full_prefill && W > 0 && P > W)
    fail("parallel: without prefill the prompt (", P, " tokens) must fit the wavefront (", W, ")");
  const int npos = std::max(c.block_size, P + o.max_new_tokens + 1 + (o.full_prefill ? 1 : 0));
  // Positions the cache and the sequence can reach.
  const int cap = std::min(c.block_size, P + o.max_new_tokens + (W > 0 ? W : c.block_size) + 2);
  const int max_rows = std::max(P + 1, (W > 0 ? W : cap) + 1);
  infer::Decoder dec(m, cap, CacheStrategy::parse(o.cache), std::max(P, max_rows), ExitCriterion{}, 0.f, 0);
  KVCache& cache = dec.cache();
  Workspace& ws = dec.workspace();

  DiffusionResult res;
  std::vector<int> seq, newt, rec(npos, 0), stable(npos, 0);
  seq.reserve(cap + 2);
  newt.reserve(max_rows + 1);
  int F = 0;  // frozen = seq[:F]
  std::vector<float> states((size_t)(max_rows + 1) * d, 0.f), prev((size_t)(max_rows + 1) * d, 0.f);
  std::vector<float> e((size_t)std::max(max_rows + 1, cap) * d), old((size_t)std::max(max_rows + 1, cap) * d);
  std::vector<float> logits((size_t)(max_rows + 1) * V);
  int L = 0, prev_rows = 0, prev_base = 0, old_rows = 0, old_base = 0;
  auto is_stop = [&](int t) { return std::find(o.stop_tokens.begin(), o.stop_tokens.end(), t) != o.stop_tokens.end(); };
  int emitted = P;  // positions reported through cb
  auto report = [&]() {
    for (; emitted < F; ++emitted)
      if (cb) cb({0, seq[emitted], rec[emitted], false});
  };

  if (o.max_new_tokens == 0) {
    res.sequence = prompt;
    return res;
  }
  if (o.full_prefill) {
    infer::PassInput in;
    in.ids = prompt.data();
    in.T = P;
    infer::DepthPolicy p;
    p.max_steps = S;
    in.checks = false;
    dec.run(in, p);
    res.core_forward_passes += 1;
    res.tokens_forward += P;
    res.core_iterations += (long)P * S;
    seq = prompt;
    seq.push_back(argmax(dec.logits(0), V));
    F = P + 1;
    for (int i = 0; i <= P; ++i) rec[i] += S;
    L = 1;
  } else {
    seq = prompt;
    F = P;
    L = P;
  }
  std::fill(states.begin(), states.begin() + (size_t)L * d, 0.f);
  if (o.ema_embeds > 0) {
    // the prelude output of all of seq, without the cache
    const int T = (int)seq.size();
    Workspace ws2;
    m.embed(seq.data(), T, old.data());
    m.prelude(old.data(), T, 0, nullptr, ws2);
    old_rows = T;
    old_base = 0;
  }
  std::memcpy(prev.data(), states.data(), sizeof(float) * (size_t)L * d);
  prev_rows = L;
  prev_base = 0;
  const float a = o.ema_embeds, sigma = o.state_mixing;

  for (int step = 0; F - P < o.max_new_tokens && (int)seq.size() <= c.block_size; ++step) {
    const int cpos = cache.length();
    if (cpos + L > (int)seq.size()) fail("parallel: internal error: wave past the sequence");
    if (cpos + L > cache.capacity()) fail("parallel: the wave reached the end of the context");
    // 2. prelude of the wave tokens, with the cache
    m.check_tokens(seq.data() + cpos, L, cpos);
    m.embed(seq.data() + cpos, L, e.data());
    m.prelude(e.data(), L, cpos, &cache, ws);
    // 3. EMA of the embeddings
    if (a > 0) {
      const int off = cpos - old_base;
      const int mm = std::max(0, std::min(L, old_rows - off));
      kern::scale(e.data(), 1.f - a, e.data(), (size_t)L * d);
      kern::add_scaled(a, old.data() + (size_t)off * d, e.data(), (size_t)mm * d);
      std::memcpy(old.data(), e.data(), sizeof(float) * (size_t)L * d);
      old_rows = L;
      old_base = cpos;
    }
    // 4. state damping
    if (sigma > 0)
      for (int i = 0; i < L; ++i)
        kern::scale(states.data() + (size_t)i * d, 1.f - sigma / (1.f + (float)rec[cpos + i]),
                    states.data() + (size_t)i * d, d);
    // 5. R recurrences over the wave
    for (int j = 0; j < R; ++j) m.core_iteration(states.data(), e.data(), L, cpos, &cache, j, ws);
    for (int i = 0; i < L; ++i) rec[cpos + i] += R;
    res.core_forward_passes += R;
    res.tokens_forward += R * L;
    res.core_iterations += (long)R * L;
    // 6. logits of every wave row
    m.head(states.data(), L, cpos, &cache, nullptr, logits.data(), L, ws);
    // 7. argmax of the open rows
    const int f = F;
    const int first = std::max(f - 1 - cpos, 0);
    newt.clear();
    for (int i = first; i < L; ++i) newt.push_back(argmax(logits.data() + (size_t)i * V, V));
    res.pass_new_tokens.push_back(newt);
    // 8. stability counts against frozen + new[:-1]
    {
      const int n2 = f + (int)newt.size() - 1;
      const int n = std::min((int)seq.size(), n2);
      for (int p = 0; p < n; ++p) {
        const int want = p < f ? seq[p] : newt[p - f];
        stable[p] += seq[p] == want;
      }
    }
    // 9. seq = frozen + new
    seq.resize(f);
    seq.insert(seq.end(), newt.begin(), newt.end());
    // 10. one more state for the new last position
    float* last = states.data() + (size_t)L * d;
    if (o.continuous) std::memcpy(last, last - d, sizeof(float) * d);
    else std::fill(last, last + d, 0.f);
    int rows = L + 1;
    // 11. wave cap
    int h = 1;
    if (W > 0 && rows > W) {
      h = W - L;
      rows = W;
      if ((int)seq.size() > cpos + W) seq.resize(cpos + W);
      ++res.standing_waves;
    }
    // 12. freeze
    auto drop = [&](int n) {
      cache.drop_last(n);
      res.cache_clears += n;
    };
    auto freeze_at = [&](int k) {
      F = k;
      drop((int)seq.size() - h - k + 1);
      const int from = k - cpos - 1;
      std::memmove(states.data(), states.data() + (size_t)from * d, sizeof(float) * (size_t)(rows - from) * d);
      rows -= from;
    };
    if (o.freeze == FreezeStrategy::LatentDiff) {
      const int off = cpos - prev_base;
      const int n = std::min(rows, std::max(0, prev_rows - off));
      int istar = -1;
      for (int i = 0; i < n; ++i) {
        const double crit =
            relative_change(states.data() + (size_t)i * d, prev.data() + (size_t)(off + i) * d, d);
        if (crit < o.exit_t) istar = i;
      }
      if (istar >= 0) freeze_at(cpos + istar + 1);
      else drop(rows - h);
    } else if (o.freeze == FreezeStrategy::TokenStability) {
      const int thr = S / R;
      int pmax = -1;
      for (int p = 0; p < npos; ++p)
        if (stable[p] > thr) pmax = p;
      if (pmax >= 0) freeze_at(pmax + 1);
      else drop(rows - h);
    } else {
      if (step > S / R) {
        if (h == 0) fail("parallel: the fixed freeze strategy cannot continue once the wave is capped");
        drop(rows - 1 - h);
        std::memmove(states.data(), states.data() + (size_t)h * d, sizeof(float) * (size_t)(rows - h) * d);
        rows -= h;
        F = f + h;
      } else {
        drop(rows - h);
      }
    }
    if (F > (int)seq.size()) F = (int)seq.size();
    L = rows;
    res.pass_trace.push_back({cpos, (int)newt.size() + first, f, F});
    ++res.passes;
    report();
    // 13. stops
    bool stop = false;
    if (step > S)
      for (int p = P; p < F && !stop; ++p) stop = is_stop(seq[p]);
    // 14. prev = states
    std::memcpy(prev.data(), states.data(), sizeof(float) * (size_t)L * d);
    prev_rows = L;
    prev_base = cpos;
    if (stop || step + 1 > o.max_passes) break;
  }
  res.sequence.assign(seq.begin(), seq.begin() + F);
  res.tokens.assign(res.sequence.begin() + P, res.sequence.end());
  res.recurrence_per_position.assign(rec.begin(), rec.begin() + F);
  res.stable_per_position.assign(stable.begin(), stable.begin() + F);
  res.kv_bytes = cache.bytes_held();
  return res;
}

}  // namespace huginn
