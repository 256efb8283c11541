#include "infer/decoder.h"

#include <algorithm>
#include <cstring>

#include "huginn/check.h"
#include "huginn/common.h"

namespace huginn::infer {

Decoder::Decoder(const Model& m, int capacity, const CacheStrategy& cs, int max_rows, const ExitCriterion& exit,
                 float init_scale, uint64_t seed, int max_logit_rows)
    : m_(m),
      d_(m.config().n_embd),
      V_(m.config().vocab_size),
      rows_(max_rows),
      logit_rows_(std::max(1, max_logit_rows)),
      cache_(m.make_cache(capacity, cs)),
      tracker_(exit, m.config().vocab_size, m.config().n_embd),
      init_scale_(init_scale),
      seed_(seed) {
  if (max_rows <= 0) fail("decoder: at least one row per pass is needed");
  if (exit.needs_gate() && !m.has_exit_gate())
    fail("exit criterion 'gate' needs a model with a learned exit gate (Ouro); the ", m.config().arch,
         " architecture has none");
  s_.resize((size_t)max_rows * d_);
  logits_.resize((size_t)logit_rows_ * V_);
}

Decoder::~Decoder() = default;

void Decoder::ensure_rows(int rows) {
  if (rows <= rows_) return;
  rows_ = rows;
  s_.resize((size_t)rows * d_);
  solo_.reset();
}

Workspace& Decoder::workspace() {
  if (!solo_) solo_ = std::make_unique<BatchRunner>(m_, rows_, 1, cache_.capacity(), logit_rows_);
  return solo_->workspace();
}

PassResult Decoder::run(const PassInput& in, const DepthPolicy& p, std::vector<ExitCheck>* checks) {
  if (!solo_) solo_ = std::make_unique<BatchRunner>(m_, rows_, 1, cache_.capacity(), logit_rows_);
  Lane lane;
  lane.dec = this;
  lane.in = in;
  lane.checks = checks;
  solo_->run(&lane, 1, p);
  return lane.result;
}

BatchRunner::BatchRunner(const Model& m, int max_rows, int max_lanes, int capacity, int max_logit_rows)
    : m_(m),
      d_(m.config().n_embd),
      V_(m.config().vocab_size),
      max_rows_(max_rows),
      max_lanes_(max_lanes),
      max_logit_rows_(std::max(max_logit_rows, max_lanes)) {
  ws_.ensure(m.config(), max_rows, capacity);
  e_.resize((size_t)max_rows * d_);
  s_.resize((size_t)max_rows * d_);
  g_.resize((size_t)max_rows * d_);
  lg_.resize((size_t)max_logit_rows_ * V_);
  seg_.resize(max_lanes);
  sub_seg_.resize(max_lanes);
  for (auto* v : {&active_, &row0_, &sub_, &logit_sub_, &exited_, &done_, &have_logits_}) v->reserve(max_lanes);
  row0_.resize(max_lanes);
  have_logits_.resize(max_lanes);
}

void BatchRunner::head_for(const std::vector<int>& sub, Lane* lanes, bool final_rows, int depth) {
  // sub: lane indices, in row order. Contiguous scratch copy unless sub is the
  // whole active set.
  const float* src = s_.data();
  const bool all = sub.size() == active_.size();
  int r = 0;
  for (size_t j = 0; j < sub.size(); ++j) {
    const Lane& l = lanes[sub[j]];
    sub_seg_[j] = Segment{l.in.T, l.dec->cache().length() - l.in.T, &l.dec->cache(), final_rows ? l.in.logit_rows : 1};
    if (!all)
      std::memcpy(g_.data() + (size_t)r * d_, s_.data() + (size_t)row0_[sub[j]] * d_,
                  sizeof(float) * (size_t)l.in.T * d_);
    r += l.in.T;
  }
  if (!all) src = g_.data();
  m_.head_segments(src, sub_seg_.data(), (int)sub.size(), nullptr, lg_.data(), ws_);
  // hand each lane its logit rows
  size_t off = 0;
  for (size_t j = 0; j < sub.size(); ++j) {
    const int k = sub_seg_[j].logit_rows;
    Lane& l = lanes[sub[j]];
    std::memcpy(l.dec->logits_.data(), lg_.data() + off * V_, sizeof(float) * (size_t)k * V_);
    // NaN/Inf stops with an error naming the depth (one cheap pass over the row).
    check_logits_finite(l.dec->logits_.data(), (size_t)k * V_, depth >= 0 ? depth : l.result.steps,
                        l.dec->cache().length() - 1);
    off += k;
  }
}

void BatchRunner::run(Lane* lanes, int n, const DepthPolicy& p) {
  for (int i = 0; i < n; ++i) lanes[i].policy = p;
  run(lanes, n);
}

void BatchRunner::run(Lane* lanes, int n) {
  if (n <= 0) return;
  if (n > max_lanes_) fail("batch of ", n, " sequences exceeds the ", max_lanes_, " it was sized for");
  // Lay the lanes out as consecutive row ranges.
  active_.clear();
  int rows = 0, logit_rows = 0;
  for (int i = 0; i < n; ++i) {
    Lane& l = lanes[i];
    Decoder& dc = *l.dec;
    const DepthPolicy& p = l.policy;
    if (p.max_steps < 0) fail("number of iterations must be >= 0, got ", p.max_steps);
    if (p.exit.needs_gate() && !m_.has_exit_gate())
      fail("exit criterion 'gate' needs a model with a learned exit gate (Ouro); the ", m_.config().arch,
           " architecture has none");
    const int T = l.in.T, pos0 = dc.cache_.length();
    if (T <= 0 || T > dc.rows_) fail("decoder: a pass of ", T, " positions (at most ", dc.rows_, ")");
    if (l.in.logit_rows < 0 || l.in.logit_rows > std::min(T, dc.logit_rows_))
      fail("decoder: ", l.in.logit_rows, " logit rows for a pass of ", T, " positions");
    if (rows + T > max_rows_) fail("batch of ", rows + T, " positions exceeds the ", max_rows_, " it was sized for");
    float* e = e_.data() + (size_t)rows * d_;
    if (l.in.ids) {
      m_.check_tokens(l.in.ids, T, pos0);
      m_.embed(l.in.ids, T, e);
    } else {
      if (pos0 + T > m_.config().block_size)
        fail("sequence of ", pos0 + T, " positions exceeds the model's context of ", m_.config().block_size);
      std::memcpy(e, l.in.embeds, sizeof(float) * (size_t)T * d_);
    }
    if (pos0 + T > dc.cache_.capacity())
      fail("KV cache full: ", pos0 + T, " positions exceed its capacity of ", dc.cache_.capacity());
    seg_[i] = Segment{T, pos0, &dc.cache_, 1};
    row0_[i] = rows;
    have_logits_[i] = 0;
    l.result = PassResult{p.max_steps, false};
    active_.push_back(i);
    rows += T;
    logit_rows += l.in.logit_rows;
  }
  if (logit_rows > max_logit_rows_) fail("batch of ", logit_rows, " logit rows exceeds ", max_logit_rows_);
  m_.prelude_segments(e_.data(), seg_.data(), n, ws_);
  // The start states (after the prelude: a family may start from its output).
  for (int i = 0; i < n; ++i) {
    Lane& l = lanes[i];
    Decoder& dc = *l.dec;
    const size_t off = (size_t)row0_[i] * d_;
    if (l.in.start)
      std::memcpy(s_.data() + off, l.in.start, sizeof(float) * (size_t)l.in.T * d_);
    else
      m_.init_state(s_.data() + off, l.in.T, dc.init_scale_, dc.seed_ + dc.passes_, e_.data() + off);
    ++dc.passes_;
  }
  for (int i = 0; i < n; ++i)
    if (lanes[i].in.checks) lanes[i].dec->tracker_.reset(s_.data() + (size_t)row0_[i] * d_, lanes[i].in.T);

  // Lanes that leave the batch after `it` iterations without exiting: the
  // logits of their last logit check (a single logit row), else the coda on
  // the final state; then their state.
  auto finish_full_depth = [&](const std::vector<int>& done) {
    sub_.clear();
    for (int i : done)
      if (!(lanes[i].policy.exit.needs_logits() && have_logits_[i] && lanes[i].in.logit_rows <= 1)) sub_.push_back(i);
    if (!sub_.empty()) head_for(sub_, lanes, true);
    for (int i : done)
      std::memcpy(lanes[i].dec->s_.data(), s_.data() + (size_t)row0_[i] * d_, sizeof(float) * lanes[i].in.T * d_);
  };
  // Drops the lanes of exited_ and done_ from the batch, moving the others' rows together.
  auto compact = [&]() {
    const int na = (int)active_.size();
    int r = 0, k = 0;
    for (int j = 0; j < na; ++j) {
      const int i = active_[j];
      if (std::find(exited_.begin(), exited_.end(), i) != exited_.end() ||
          std::find(done_.begin(), done_.end(), i) != done_.end())
        continue;
      const int T = lanes[i].in.T;
      if (row0_[i] != r) {
        std::memmove(s_.data() + (size_t)r * d_, s_.data() + (size_t)row0_[i] * d_, sizeof(float) * T * d_);
        std::memmove(e_.data() + (size_t)r * d_, e_.data() + (size_t)row0_[i] * d_, sizeof(float) * T * d_);
      }
      row0_[i] = r;
      seg_[k] = seg_[j];
      active_[k++] = i;
      r += T;
    }
    active_.resize(k);
  };
  // Lanes with no iterations at all.
  exited_.clear();
  done_.clear();
  for (int i : active_)
    if (lanes[i].policy.max_steps == 0) done_.push_back(i);
  if (!done_.empty()) {
    finish_full_depth(done_);
    compact();
  }

  for (int it = 0; !active_.empty(); ++it) {
    const int na = (int)active_.size();
    for (int j = 0; j < na; ++j) {
      const int i = active_[j];
      if (lanes[i].in.checks) lanes[i].dec->tracker_.before_iteration(s_.data() + (size_t)row0_[i] * d_, lanes[i].in.T);
    }
    // active_ lanes occupy consecutive rows from 0 in this order: seg_[0..na)
    m_.core_iteration_segments(s_.data(), e_.data(), seg_.data(), na, it, ws_);
    // the gate's cumulative probability needs every iteration's gate
    for (int j = 0; j < na; ++j) {
      const int i = active_[j];
      if (!lanes[i].in.checks || !lanes[i].policy.exit.needs_gate()) continue;
      float g;
      m_.exit_gate(s_.data() + (size_t)(row0_[i] + lanes[i].in.T - 1) * d_, 1, &g);
      lanes[i].dec->tracker_.observe_gate(g);
    }
    // The lanes that check their criterion after this iteration.
    sub_.clear();
    logit_sub_.clear();
    for (int i : active_) {
      const DepthPolicy& p = lanes[i].policy;
      const int every = p.check_every > 0 ? p.check_every : 1;
      if (!lanes[i].in.checks || it < p.min_steps || (it - p.min_steps) % every != 0) continue;
      sub_.push_back(i);
      if (p.exit.needs_logits()) logit_sub_.push_back(i);
    }
    if (!logit_sub_.empty()) head_for(logit_sub_, lanes, false, it + 1);
    exited_.clear();
    for (int i : sub_) {
      Lane& l = lanes[i];
      const float* s = s_.data() + (size_t)row0_[i] * d_;
      const double v = l.dec->tracker_.value(l.dec->logits_.data(), s, l.in.T);
      const bool ex = l.dec->tracker_.exits(v);
      if (l.policy.exit.needs_logits()) have_logits_[i] = 1;
      if (l.checks) l.checks->push_back({it + 1, v, ex});
      if (ex) {
        l.result = PassResult{it + 1, true};
        exited_.push_back(i);
      }
    }
    // Exited lanes: their logits (the coda on the exit state for latent
    // criteria), their state; then they leave the batch.
    if (!exited_.empty()) {
      sub_.clear();
      for (int i : exited_)
        if (!lanes[i].policy.exit.needs_logits()) sub_.push_back(i);
      if (!sub_.empty()) head_for(sub_, lanes, false, it + 1);
      for (int i : exited_)
        std::memcpy(lanes[i].dec->s_.data(), s_.data() + (size_t)row0_[i] * d_, sizeof(float) * lanes[i].in.T * d_);
    }
    // Lanes that ran their last iteration.
    done_.clear();
    for (int i : active_)
      if (it + 1 >= lanes[i].policy.max_steps && std::find(exited_.begin(), exited_.end(), i) == exited_.end())
        done_.push_back(i);
    if (!done_.empty()) finish_full_depth(done_);
    if (!exited_.empty() || !done_.empty()) compact();
  }
}

}  // namespace huginn::infer
