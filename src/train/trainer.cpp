// The training loop: global batches split over MPI ranks and micro-batches,
// gradient all-reduce, clipping, AdamW, validation at fixed depths, metrics,
// loss plot, and atomic checkpoints that resume bit-exactly.
#include <fcntl.h>
#include <omp.h>
#if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
#define HUGINN_HAVE_MXCSR 1
#elif defined(__aarch64__)
#define HUGINN_HAVE_FPCR 1
#endif
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "huginn/atomic_file.h"
#include "huginn/checkpoint.h"
#include "huginn/common.h"
#include "huginn/json.h"
#include "huginn/plot.h"
#include "huginn/safetensors.h"
#include "huginn/train.h"
#include "tensor/kernels.h"

namespace huginn {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {
uint64_t mix(uint64_t x) { return splitmix64(x); }
std::string fmt_time(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const long t = (long)(s + 0.5);
  char b[32];
  if (t >= 3600) std::snprintf(b, sizeof b, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(b, sizeof b, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(b, sizeof b, "%lds", t);
  return b;
}

// Whether a metrics.jsonl line read back on resume has the shape record()
// reads: an integer "step" up to max_step, a numeric "loss" and a "val_loss"
// object of numbers keyed by depth, where present. Other lines (a hand edit,
// a float step such as 1e300 whose conversion would be undefined) are skipped.
bool metrics_line_fits(const json& j, int max_step) {
  int64_t v = 0;
  if (!j.is_object() || !j.contains("step") || !json_int(j["step"], 0, max_step, &v)) return false;
  if (j.contains("loss") && !j["loss"].is_number()) return false;
  if (!j.contains("val_loss")) return true;
  if (!j["val_loss"].is_object()) return false;
  for (auto it = j["val_loss"].begin(); it != j["val_loss"].end(); ++it) {
    const std::string& k = it.key();
    if (k.empty() || k.size() > 9 || !std::all_of(k.begin(), k.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        !it->is_number())
      return false;
  }
  return true;
}
}  // namespace

json train_options_to_json(const TrainOptions& o) {
  json j;
  j["steps"] = o.steps, j["batch"] = o.batch, j["seq_len"] = o.seq_len, j["accum"] = o.accum;
  j["schedule"] = o.sched.kind, j["lr"] = o.sched.lr, j["min_lr"] = o.sched.min_lr;
  j["warmup"] = o.sched.warmup, j["cooldown"] = o.sched.cooldown;
  j["beta1"] = o.adamw.beta1, j["beta2"] = o.adamw.beta2, j["eps"] = o.adamw.eps;
  j["weight_decay"] = o.adamw.weight_decay, j["clip"] = o.clip;
  j["mean_recurrence"] = o.mean_recurrence, j["backprop_depth"] = o.backprop_depth;
  j["fixed_no_grad"] = o.fixed_no_grad, j["fixed_grad"] = o.fixed_grad, j["init_scale"] = o.init_scale;
  j["seed"] = o.seed, j["log_every"] = o.log_every, j["eval_every"] = o.eval_every;
  j["eval_batches"] = o.eval_batches, j["eval_depths"] = o.eval_depths, j["save_every"] = o.save_every;
  j["data"] = o.data;
  return j;
}

void train_options_from_json(const json& j, TrainOptions& o) {
  auto get = [&](const char* k, auto& v) {
    if (j.contains(k)) v = j[k].get<std::remove_reference_t<decltype(v)>>();
  };
  get("steps", o.steps), get("batch", o.batch), get("seq_len", o.seq_len), get("accum", o.accum);
  get("schedule", o.sched.kind), get("lr", o.sched.lr), get("min_lr", o.sched.min_lr);
  get("warmup", o.sched.warmup), get("cooldown", o.sched.cooldown);
  get("beta1", o.adamw.beta1), get("beta2", o.adamw.beta2), get("eps", o.adamw.eps);
  get("weight_decay", o.adamw.weight_decay), get("clip", o.clip);
  get("mean_recurrence", o.mean_recurrence), get("backprop_depth", o.backprop_depth);
  get("fixed_no_grad", o.fixed_no_grad), get("fixed_grad", o.fixed_grad), get("init_scale", o.init_scale);
  get("seed", o.seed), get("log_every", o.log_every), get("eval_every", o.eval_every);
  get("eval_batches", o.eval_batches), get("eval_depths", o.eval_depths), get("save_every", o.save_every);
  get("data", o.data);
}

struct Trainer::Impl {
  std::function<void(const std::string&)> write_model_files;
  ModelConfig cfg;
  TrainOptions opt;
  std::shared_ptr<const SequenceSource> train, val;
  Dist& dist = Dist::get();
  std::vector<ParamSpec> layout;
  std::vector<float> params, grads;
  std::unique_ptr<AdamW> adam;
  std::unique_ptr<GradEngine> eng;
  int step = 0, local = 0, micro = 0, kmax = 0;
  std::vector<int> ids, labels;
  std::vector<uint64_t> seeds;
  std::vector<std::string> metrics;  // JSONL lines, in order
  std::vector<std::pair<int, double>> train_hist;
  std::map<int, std::vector<std::pair<int, double>>> val_hist;
  bool have_params = false;

  void record(const json& j) {
    metrics.push_back(j.dump());
    if (j.contains("loss")) train_hist.push_back({j["step"].get<int>(), j["loss"].get<double>()});
    if (j.contains("val_loss"))
      for (auto it = j["val_loss"].begin(); it != j["val_loss"].end(); ++it)
        val_hist[std::stoi(it.key())].push_back({j["step"].get<int>(), it->get<double>()});
  }
};

void enable_flush_denormals() {
  // Denormal floats (tiny softmax tails, decaying optimizer moments) make every
  // op touching them ~100x slower; training flushes them to zero on every
  // thread of the pool (BLAS shares the OpenMP pool).
  // x86: MXCSR's FTZ and DAZ bits; AArch64: FPCR's FZ bit; elsewhere nothing.
  auto flush = [] {
#if defined(HUGINN_HAVE_MXCSR)
    _mm_setcsr(_mm_getcsr() | 0x8040);
#elif defined(HUGINN_HAVE_FPCR)
    uint64_t fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    __asm__ __volatile__("msr fpcr, %0" ::"r"(fpcr | (1ull << 24)));
#endif
  };
  flush();
#pragma omp parallel
  { flush(); }
}

Trainer::Trainer(const ModelConfig& cfg, TrainOptions opt, std::shared_ptr<const SequenceSource> train,
                 std::shared_ptr<const SequenceSource> val)
    : p_(new Impl) {
  enable_flush_denormals();
  auto& P = *p_;
  P.cfg = cfg;
  if (!train) fail("train: no training data");
  P.train = std::move(train);
  P.val = std::move(val);
  const int world = P.dist.size;
  if (opt.steps < 0) fail("--steps must be >= 0, got ", opt.steps);
  if (opt.batch < 1 || opt.seq_len < 1 || opt.accum < 1) fail("--batch, --seq-len and --accum must be >= 1");
  if (opt.seq_len > cfg.block_size)
    fail("--seq-len ", opt.seq_len, " exceeds the model's context of ", cfg.block_size, " (block_size)");
  if (opt.batch % (world * opt.accum) != 0)
    fail("--batch ", opt.batch, " must be divisible by ranks (", world, ") x --accum (", opt.accum, ")");
  if (opt.mean_recurrence <= 0) opt.mean_recurrence = cfg.mean_recurrence;
  if (opt.backprop_depth <= 0) opt.backprop_depth = cfg.mean_backprop_depth;
  if ((opt.fixed_no_grad >= 0) != (opt.fixed_grad >= 0)) fail("a fixed split needs both n and k");
  if (opt.fixed_grad == 0 && opt.fixed_no_grad >= 0) fail("a fixed split needs k >= 1");
  if (!(opt.sched.lr > 0) || !std::isfinite(opt.sched.lr)) fail("--lr must be positive, got ", opt.sched.lr);
  if (opt.sched.warmup < 0 || opt.sched.cooldown < 0) fail("--warmup and --cooldown must be >= 0");
  if (opt.sched.kind != "constant" && opt.sched.kind != "cosine")
    fail("--schedule must be constant or cosine, got '", opt.sched.kind, "'");
  if (opt.clip < 0) fail("--clip must be >= 0");
  if (opt.eval_depths.empty()) {
    std::set<int> ds = {1, std::max(1, opt.mean_recurrence / 2), opt.mean_recurrence, 2 * opt.mean_recurrence};
    opt.eval_depths.assign(ds.begin(), ds.end());
  }
  for (int dd : opt.eval_depths)
    if (dd < 0) fail("validation depths must be >= 0");
  opt.sched.total_steps = opt.steps;
  P.kmax = opt.fixed_grad >= 0 ? opt.fixed_grad : opt.backprop_depth;
  P.opt = opt;
  P.local = opt.batch / world;
  P.micro = P.local / opt.accum;
  P.layout = param_layout(cfg);
  P.grads.assign(param_count(P.layout), 0.f);
  P.adam = std::make_unique<AdamW>(cfg, opt.adamw);
  P.eng = std::make_unique<GradEngine>(cfg, P.micro, opt.seq_len, P.kmax);
  P.ids.resize((size_t)P.local * opt.seq_len);
  P.labels.resize(P.ids.size());
  P.seeds.resize(P.local);
}
Trainer::~Trainer() = default;

void Trainer::init_params() {
  p_->params = huginn::init_params(p_->cfg, p_->opt.seed);
  p_->have_params = true;
}

void Trainer::load_params(const std::string& dir) {
  auto m = Model::load(dir);
  const auto& c = m->config();
  auto lay = param_layout(c);
  if (lay.size() != p_->layout.size()) fail(dir, ": its config does not match the model being trained");
  for (size_t i = 0; i < lay.size(); ++i)
    if (lay[i].name != p_->layout[i].name || lay[i].shape != p_->layout[i].shape)
      fail(dir, ": parameter ", lay[i].name, " does not match the model being trained");
  p_->params = flatten_weights(*m);
  p_->have_params = true;
}

void Trainer::resume(const std::string& dir) {
  auto& P = *p_;
  const fs::path d(dir);
  json st;
  {
    std::ifstream f(d / "trainer_state.json");
    if (!f) fail(dir, ": no trainer_state.json (not a training checkpoint)");
    st = parse_json_file((d / "trainer_state.json").string(), kJsonMaxDepth, 1 << 24);
    if (!st.is_object()) fail((d / "trainer_state.json").string(), ": not a JSON object");
  }
  const int step = json_count(st, "step", (d / "trainer_state.json").string());
  TensorStore model = TensorStore::open_file((d / "model.safetensors").string());
  TensorStore optim = TensorStore::open_file((d / "optimizer.safetensors").string());
  auto check_step = [&](const TensorStore& s, const char* what) {
    auto it = s.metadata().find("step");
    if (it == s.metadata().end() || it->second != std::to_string(step))
      fail(dir, ": ", what, " is not from step ", step, " (an interrupted save?)");
  };
  check_step(model, "model.safetensors");
  check_step(optim, "optimizer.safetensors");
  P.params.assign(P.grads.size(), 0.f);
  auto& m = P.adam->m();
  auto& v = P.adam->v();
  for (auto& p : P.layout) {
    auto load = [&](const TensorStore& s, const std::string& name, float* dst) {
      const TensorView& t = s.get(name);
      if (t.dtype != DType::F32 || (size_t)t.numel() != p.numel)
        fail(dir, ": tensor ", name, " must be F32 with ", p.numel, " values to resume");
      t.to_f32(dst);
    };
    load(model, p.name, P.params.data() + p.offset);
    load(optim, "exp_avg." + p.name, m.data() + p.offset);
    load(optim, "exp_avg_sq." + p.name, v.data() + p.offset);
  }
  P.adam->set_step(step);
  P.step = step;
  P.have_params = true;
  P.metrics.clear();
  P.train_hist.clear();
  P.val_hist.clear();
  std::ifstream mf(d / "metrics.jsonl");
  std::string line;
  while (std::getline(mf, line)) {
    if (line.empty()) continue;
    try {
      json j = parse_json(line, "metrics.jsonl");
      if (metrics_line_fits(j, step)) P.record(j);
    } catch (const json::exception&) {
    } catch (const Error&) {  // a line cut short by a crash during the last save
    }
  }
}

StepStats Trainer::step() {
  auto& P = *p_;
  if (!P.have_params) fail("train: parameters not initialised (init_params, load_params or resume)");
  const auto t0 = std::chrono::steady_clock::now();
  const TrainOptions& o = P.opt;
  const int T = o.seq_len;
  StepStats st;
  st.split = o.fixed_grad >= 0 ? RecurrenceSplit{o.fixed_no_grad, o.fixed_grad}
                               : sample_recurrence(o.mean_recurrence, o.backprop_depth, o.seed, (uint64_t)P.step);
  st.lr = o.sched.at(P.step);
  double counts[2] = {0, 0};  // scored positions, loss sum
  for (int j = 0; j < P.local; ++j) {
    const uint64_t idx = (uint64_t)P.step * o.batch + (uint64_t)P.dist.rank * P.local + j;
    P.train->get(idx, T, P.ids.data() + (size_t)j * T, P.labels.data() + (size_t)j * T);
    P.seeds[j] = mix(o.seed ^ mix(idx + 0x51ED));
  }
  for (int l : P.labels) counts[0] += l != kIgnoreLabel;
  P.dist.allreduce_sum(counts, 1);
  const double valid = counts[0];
  const float scale = valid > 0 ? (float)(1.0 / valid) : 0.f;
  std::fill(P.grads.begin(), P.grads.end(), 0.f);
  double loss_sum = 0;
  for (int a = 0; a < o.accum; ++a) {
    const size_t off = (size_t)a * P.micro;
    auto r = P.eng->forward_backward(P.params.data(), P.grads.data(), P.ids.data() + off * T,
                                     P.labels.data() + off * T, P.micro, st.split, scale, nullptr, o.init_scale,
                                     P.seeds.data() + off);
    loss_sum += r.loss_sum;
  }
  P.dist.allreduce_sum(P.grads.data(), P.grads.size());
  P.dist.allreduce_sum(&loss_sum, 1);
  st.loss = valid > 0 ? loss_sum / valid : 0.0;
  if (!std::isfinite(st.loss)) fail("training diverged: the loss at step ", P.step + 1, " is ", st.loss);
  st.grad_norm = grad_norm(P.grads.data(), P.grads.size());
  if (o.clip > 0 && st.grad_norm > o.clip) {
    const float c = (float)(o.clip / st.grad_norm);
    for (auto& g : P.grads) g *= c;
  }
  P.adam->update(P.params.data(), P.grads.data(), st.lr);
  ++P.step;
  st.step = P.step;
  st.tokens = (int64_t)o.batch * T;
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return st;
}

double Trainer::eval_loss(int depth, int batches) {
  auto& P = *p_;
  const int T = P.opt.seq_len, B = P.opt.batch;
  const int total = std::max(1, batches) * B;
  double acc[2] = {0, 0};
  std::vector<int> ids((size_t)P.micro * T), labels(ids.size());
  // Rank r takes sequences r, r + world, ...; each rank in micro-batches.
  std::vector<uint64_t> mine;
  for (int j = P.dist.rank; j < total; j += P.dist.size) mine.push_back((uint64_t)j);
  for (size_t s = 0; s < mine.size(); s += P.micro) {
    const int b = (int)std::min<size_t>(P.micro, mine.size() - s);
    for (int i = 0; i < b; ++i) {
      if (P.val) P.val->get(mine[s + i], T, ids.data() + (size_t)i * T, labels.data() + (size_t)i * T);
      else P.train->get((1ull << 62) + mine[s + i], T, ids.data() + (size_t)i * T, labels.data() + (size_t)i * T);
    }
    auto r = P.eng->loss(P.params.data(), ids.data(), labels.data(), b, depth);
    acc[0] += r.loss_sum;
    acc[1] += r.n_valid;
  }
  P.dist.allreduce_sum(acc, 2);
  return acc[1] > 0 ? acc[0] / acc[1] : 0.0;
}

// Files a checkpoint directory holds: the trainer's own, and the model files
// its data source adds (tokenizer, task manifest; see set_model_files).
static bool is_checkpoint_file(const std::string& name) {
  static const std::set<std::string> files = {
      "config.json",   "model.safetensors", "optimizer.safetensors", "trainer_state.json",    "metrics.jsonl",
      "loss.svg",      "tokenizer.json",    "tokenizer_config.json", "generation_config.json", "tasks.json"};
  return files.count(name) > 0;
}

void Trainer::save(const std::string& dir) const {
  const auto& P = *p_;
  if (P.dist.rank != 0) return;
  const fs::path target(dir);
  const fs::path tmp = target.string() + ".tmp." + std::to_string(getpid());
  std::error_code ec;
  // The directory is replaced as a whole: never swap away anything but our own files.
  if (fs::exists(target)) {
    if (!fs::is_directory(target)) fail(dir, ": exists and is not a directory");
    for (auto& e : fs::directory_iterator(target))
      if (!is_checkpoint_file(e.path().filename().string()))
        fail(dir, ": holds ", e.path().filename().string(),
             ", which is not part of a training checkpoint; choose an empty or new --out directory");
  }
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fail(tmp.string(), ": cannot create directory: ", ec.message());
  write_file_atomic((tmp / "config.json").string(), config_to_json(P.cfg).dump(2) + "\n");
  // Step stamps let resume detect a mix of files from different saves.
  {
    std::vector<TensorToWrite> ts;
    for (auto& p : P.layout) ts.push_back({p.name, p.shape, P.params.data() + p.offset, DType::F32});
    write_safetensors((tmp / "model.safetensors").string(), ts, {{"format", "pt"}, {"step", std::to_string(P.step)}});
  }
  {
    std::vector<TensorToWrite> ts;
    for (auto& p : P.layout) {
      ts.push_back({"exp_avg." + p.name, p.shape, P.adam->m().data() + p.offset, DType::F32});
      ts.push_back({"exp_avg_sq." + p.name, p.shape, P.adam->v().data() + p.offset, DType::F32});
    }
    write_safetensors((tmp / "optimizer.safetensors").string(), ts,
                      {{"step", std::to_string(P.step)}, {"optimizer", "AdamW"}});
  }
  json st;
  st["format"] = "huginn-trainer-state-1";
  st["step"] = P.step;
  st["options"] = train_options_to_json(P.opt);
  st["world_size"] = P.dist.size;
  st["train_data"] = P.train->describe();
  if (P.val) st["validation_data"] = P.val->describe();
  if (!P.train_hist.empty()) st["last_loss"] = P.train_hist.back().second;
  write_file_atomic((tmp / "trainer_state.json").string(), st.dump(2) + "\n");
  std::string ml;
  for (auto& l : P.metrics) ml += l + "\n";
  write_file_atomic((tmp / "metrics.jsonl").string(), ml);
  std::vector<std::pair<std::string, std::vector<std::pair<int, double>>>> vs;
  for (auto& [dd, h] : P.val_hist) vs.push_back({str("val r=", dd), h});
  write_loss_svg((tmp / "loss.svg").string(), P.train_hist, vs);
  if (P.write_model_files) P.write_model_files(tmp.string());
  // Swap the directory in: atomic exchange when the old one exists.
  if (fs::exists(target)) {
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, target.c_str(), RENAME_EXCHANGE) != 0) {
      const fs::path old = target.string() + ".old." + std::to_string(getpid());
      fs::rename(target, old, ec);
      if (ec) fail(dir, ": cannot replace the checkpoint: ", ec.message());
      fs::rename(tmp, target, ec);
      if (ec) fail(dir, ": cannot move the new checkpoint in place: ", ec.message());
      fs::remove_all(old, ec);
      return;
    }
    fs::remove_all(tmp, ec);  // now the previous checkpoint
  } else {
    if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
    fs::rename(tmp, target, ec);
    if (ec) fail(dir, ": cannot move the new checkpoint in place: ", ec.message());
  }
}

void Trainer::run() {
  auto& P = *p_;
  const TrainOptions& o = P.opt;
  const bool rank0 = P.dist.rank == 0;
  const bool talk = rank0 && !o.quiet;
  if (o.out.empty()) fail("train: no output directory (--out)");
  const fs::path out(o.out);
  // The live metrics file is the checkpoint's own metrics.jsonl, appended to
  // as steps run. It is never truncated in place: a kill at any moment must
  // leave every line of the last complete checkpoint in it (resume keeps the
  // lines up to its step). At the start it is replaced atomically by the
  // history so far; after a save it already holds exactly that history.
  std::ofstream live;
  auto open_live = [&](bool rewrite) {
    if (!rank0) return;
    std::error_code ec;
    fs::create_directories(out, ec);
    if (ec) fail(o.out, ": cannot create directory: ", ec.message());
    live.close();
    live.clear();
    if (rewrite) {
      std::string all;
      for (auto& l : P.metrics) all += l + "\n";
      write_file_atomic((out / "metrics.jsonl").string(), all);
    }
    live.open(out / "metrics.jsonl", std::ios::out | std::ios::app);
    if (!live) fail((out / "metrics.jsonl").string(), ": cannot write");
  };
  auto emit = [&](const json& j) {
    P.record(j);
    if (rank0) {
      live << P.metrics.back() << "\n";
      live.flush();
    }
  };
  if (rank0 && fs::exists(out) && fs::is_directory(out))
    for (auto& e : fs::directory_iterator(out)) {
      const std::string n = e.path().filename().string();
      if (!is_checkpoint_file(n))
        fail(o.out, ": holds ", n, ", which is not part of a training checkpoint; choose an empty or new --out directory");
    }
  open_live(true);
  const int stop = o.stop_at >= 0 ? std::min(o.stop_at, o.steps) : o.steps;
  if (talk) {
    std::printf("train: %lld parameters, %d ranks x %d threads, batch %d (micro %d x accum %d per rank), seq %d\n",
                (long long)P.cfg.params_total(), P.dist.size, kern::threads(), o.batch, P.micro, o.accum, o.seq_len);
    std::printf("train: data %s%s; recurrence %s; activations %.1f MiB; steps %d..%d of %d\n",
                P.train->describe().c_str(), P.val ? (", validation " + P.val->describe()).c_str() : "",
                o.fixed_grad >= 0 ? str("fixed ", o.fixed_no_grad, "+", o.fixed_grad).c_str()
                                  : str("mean ", o.mean_recurrence, ", backprop ", o.backprop_depth).c_str(),
                P.eng->activation_bytes() / 1048576.0, P.step + 1, stop, o.steps);
    std::fflush(stdout);
  }
  auto evaluate = [&]() {
    if (o.eval_batches <= 0 || o.eval_depths.empty()) return;
    json j;
    j["step"] = P.step;
    json vl;
    std::string line;
    for (int dd : o.eval_depths) {
      const double l = eval_loss(dd, o.eval_batches);
      vl[std::to_string(dd)] = l;
      line += str(" r=", dd, ":", std::to_string(l).substr(0, 6));
    }
    j["val_loss"] = vl;
    emit(j);
    if (talk) {
      std::printf("eval step %d |%s\n", P.step, line.c_str());
      std::fflush(stdout);
    }
  };
  const auto start = std::chrono::steady_clock::now();
  const int first = P.step;
  int64_t tokens_window = 0;
  double time_window = 0;
  bool evaluated_last = false;
  while (P.step < stop) {
    StepStats st = step();
    tokens_window += st.tokens;
    time_window += st.seconds;
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    json j;
    j["step"] = st.step, j["loss"] = st.loss, j["lr"] = st.lr, j["grad_norm"] = st.grad_norm;
    j["no_grad"] = st.split.no_grad, j["grad"] = st.split.grad, j["tokens"] = st.tokens;
    j["step_seconds"] = st.seconds;
    emit(j);
    evaluated_last = false;
    if (talk && o.log_every > 0 && (st.step % o.log_every == 0 || st.step == first + 1 || st.step == stop)) {
      const double eta = elapsed / (st.step - first) * (stop - st.step);
      std::printf("step %d/%d | loss %.4f | lr %.2e | depth %d+%d | %.0f tok/s | gnorm %.3f | ETA %s\n", st.step,
                  o.steps, st.loss, st.lr, st.split.no_grad, st.split.grad, tokens_window / time_window,
                  st.grad_norm, fmt_time(eta).c_str());
      std::fflush(stdout);
      tokens_window = 0;
      time_window = 0;
    }
    if (o.eval_every > 0 && st.step % o.eval_every == 0) {
      evaluate();
      evaluated_last = true;
    }
    if (o.save_every > 0 && st.step % o.save_every == 0 && st.step != stop) {
      save(o.out);
      open_live(false);
    }
  }
  if (!evaluated_last) evaluate();
  save(o.out);
  if (talk) {
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("saved %s (step %d) in %s\n", o.out.c_str(), P.step, fmt_time(elapsed).c_str());
  }
}

void Trainer::set_model_files(std::function<void(const std::string&)> write) {
  p_->write_model_files = std::move(write);
}

int Trainer::steps_done() const { return p_->step; }
const std::vector<float>& Trainer::params() const { return p_->params; }
const ModelConfig& Trainer::config() const { return p_->cfg; }
const TrainOptions& Trainer::options() const { return p_->opt; }

// ------------------------------------------------------------------ plot --

void write_loss_svg(const std::string& path, const std::vector<std::pair<int, double>>& train,
                    const std::vector<std::pair<std::string, std::vector<std::pair<int, double>>>>& val) {
  auto series = [](const std::string& label, const std::vector<std::pair<int, double>>& pts, double width) {
    std::vector<double> x, y;
    for (auto& [s, v] : pts) x.push_back(s), y.push_back(v);
    plot::Series sr = plot::make_series(label, std::move(x), std::move(y));
    sr.markers = false;
    sr.line_width = width;
    return sr;
  };
  plot::Chart c;
  c.title = "training loss";
  c.xlabel = "step";
  c.ylabel = "loss";
  c.width = 800;
  c.series.push_back(series("train", train, 1.2));
  for (auto& [label, pts] : val) c.series.push_back(series(label, pts, 2.0));
  plot::write_chart(path, c);
}

}  // namespace huginn
