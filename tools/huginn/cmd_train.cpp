// huginn train: train (or fine-tune) a recurrent-depth model; under mpirun
// the global batch is split across ranks (data parallel).
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/json.h"
#include "huginn/config.h"
#include "huginn/train.h"

namespace huginn::cli {
namespace {
namespace fs = std::filesystem;

struct Opts {
  std::string model_config, init_from, data, out, resume, fixed_split, eval_depths;
  TrainOptions t;
  std::vector<CLI::Option*> explicit_opts;  // given on the command line (override a resumed run)
};

ModelConfig config_from(const std::string& s) {
  if (!s.empty() && s.front() == '{') {
    return parse_config(parse_json(s, "--model-config"), "--model-config");
  }
  if (fs::is_directory(s)) return load_config((fs::path(s) / "config.json").string());
  return load_config(s);
}

int run_train(Opts& o);
bool g_training_started = false;

int run(Opts& o) {
  Dist& dist = Dist::get();
  dist.init_if_launched();
  int rc = 0;
  try {
    rc = run_train(o);
  } catch (const std::exception& e) {
    // Setup errors (options, files) happen identically on every rank: rank 0
    // reports. A failure mid-training may hit one rank only: abort the world
    // so that the others do not wait in an all-reduce forever.
    if (dist.active && dist.size > 1 && g_training_started) {
      std::cerr << "error (rank " << dist.rank << "): " << e.what() << "\n";
      dist.abort(1);
    }
    const bool quiet_rank = dist.active && dist.rank != 0;
    dist.finalize();
    if (quiet_rank) return 1;
    throw;
  }
  dist.finalize();
  return rc;
}

int run_train(Opts& o) {
  TrainOptions t = o.t;
  ModelConfig cfg;
  if (!o.resume.empty()) {
    if (!o.model_config.empty() || !o.init_from.empty()) fail("--resume takes the model from the checkpoint; drop --model-config/--init-from");
    const fs::path d(o.resume);
    if (!fs::is_directory(d)) fail("--resume ", o.resume, ": not a directory");
    std::ifstream f(d / "trainer_state.json");
    if (!f) fail("--resume ", o.resume, ": no trainer_state.json (not a training checkpoint)");
    const nlohmann::json st = parse_json_file((d / "trainer_state.json").string(), kJsonMaxDepth, 1 << 24);
    if (!st.is_object()) fail((d / "trainer_state.json").string(), ": not a JSON object");
    // The saved options, then whatever was given explicitly on this command line.
    TrainOptions saved = t;
    train_options_from_json(st.value("options", nlohmann::json::object()), saved);
    TrainOptions given = t;
    t = saved;
    for (CLI::Option* op : o.explicit_opts) {
      if (!op->count()) continue;
      const std::string n = op->get_name();
      if (n == "--steps") t.steps = given.steps;
      else if (n == "--log-every") t.log_every = given.log_every;
      else if (n == "--eval-every") t.eval_every = given.eval_every;
      else if (n == "--save-every") t.save_every = given.save_every;
      else if (n == "--stop-at") t.stop_at = given.stop_at;
      else if (n == "--quiet") t.quiet = given.quiet;
      else if (n == "--data") t.data = o.data;
      else fail(n, " cannot change when resuming (the run would no longer be the same); start a new run with "
                   "--init-from instead");
    }
    t.stop_at = given.stop_at;
    cfg = load_config((d / "config.json").string());
    if (o.out.empty()) o.out = o.resume;
  } else {
    if (o.model_config.empty() == o.init_from.empty())
      fail("give exactly one of --model-config (new model) or --init-from DIR (fine-tune); or --resume DIR");
    if (o.data.empty()) fail("--data is required (synthetic:TASK or tokens:PREFIX)");
    if (o.out.empty()) fail("--out is required");
    cfg = o.init_from.empty() ? config_from(o.model_config) : load_config((fs::path(o.init_from) / "config.json").string());
    t.data = o.data;
    if (fs::exists(fs::path(o.out) / "trainer_state.json"))
      fail("--out ", o.out, " already holds a training checkpoint; use --resume ", o.out, " or another --out");
  }
  if (!o.fixed_split.empty() && o.resume.empty()) {
    auto v = parse_ids(o.fixed_split);
    if (v.size() != 2 || v[0] < 0 || v[1] < 1) fail("--fixed-split must be N,K with N >= 0 and K >= 1");
    t.fixed_no_grad = v[0];
    t.fixed_grad = v[1];
  }
  if (!o.eval_depths.empty() && o.resume.empty()) t.eval_depths = parse_ids(o.eval_depths);
  t.out = o.out;
  DataSources ds = open_data(t.data, cfg.vocab_size);
  Trainer tr(cfg, t, ds.train, ds.val);
  if (ds.write_model_files) tr.set_model_files(ds.write_model_files);
  if (!o.resume.empty()) tr.resume(o.resume);
  else if (!o.init_from.empty()) tr.load_params(o.init_from);
  else tr.init_params();
  g_training_started = true;
  tr.run();
  return 0;
}
}  // namespace

static Register reg("train", "train or fine-tune a recurrent-depth model (data parallel under mpirun)", [](CLI::App& app) {
  auto o = std::make_shared<Opts>();
  TrainOptions& t = o->t;
  app.add_option("--model-config", o->model_config, "model config.json path (or its directory, or inline JSON)");
  app.add_option("--init-from", o->init_from, "start from this model directory's weights (fine-tune)");
  auto add = [&](CLI::Option* op) { o->explicit_opts.push_back(op); return op; };
  add(app.add_option("--data", o->data, "synthetic:copy|reverse|modsum[,len=N,digits=N,seed=N], tokens:PREFIX, or tasks:MIX (e.g. tasks:addition:1-6,reach:2-6@2)"));
  app.add_option("--out", o->out, "checkpoint directory (HF layout + optimizer + trainer state, metrics, plot)");
  app.add_option("--resume", o->resume, "continue a run from its checkpoint directory, bit-exactly");
  add(app.add_option("--steps", t.steps, "optimizer steps")->capture_default_str());
  add(app.add_option("--batch", t.batch, "global batch (sequences per step, all ranks)")->capture_default_str());
  add(app.add_option("--seq-len", t.seq_len, "tokens per sequence")->capture_default_str());
  add(app.add_option("--accum", t.accum, "gradient-accumulation micro-batches per rank")->capture_default_str());
  add(app.add_option("--lr", t.sched.lr, "peak learning rate")->capture_default_str());
  add(app.add_option("--min-lr", t.sched.min_lr, "final learning rate (cosine / cooldown)")->capture_default_str());
  add(app.add_option("--schedule", t.sched.kind, "constant or cosine")->capture_default_str());
  add(app.add_option("--warmup", t.sched.warmup, "linear warmup steps")->capture_default_str());
  add(app.add_option("--cooldown", t.sched.cooldown, "final steps of linear decay to --min-lr")->capture_default_str());
  add(app.add_option("--clip", t.clip, "gradient-norm clip (0: off)")->capture_default_str());
  add(app.add_option("--weight-decay", t.adamw.weight_decay, "AdamW weight decay (matrices only)")->capture_default_str());
  add(app.add_option("--beta1", t.adamw.beta1, "AdamW beta1")->capture_default_str());
  add(app.add_option("--beta2", t.adamw.beta2, "AdamW beta2")->capture_default_str());
  add(app.add_option("--mean-recurrence", t.mean_recurrence, "mean sampled depth (default: the config's)"));
  add(app.add_option("--backprop-depth", t.backprop_depth, "iterations with gradient (default: the config's)"));
  add(app.add_option("--fixed-split", o->fixed_split, "N,K: always N no-grad + K graded iterations"));
  add(app.add_option("--init-scale", t.init_scale, "initial-state noise scale in training")->capture_default_str());
  add(add_seed_option(app, t.seed, "seed (init, depth sampling, state noise)")->capture_default_str());
  add(app.add_option("--log-every", t.log_every, "progress line every N steps")->capture_default_str());
  add(app.add_option("--eval-every", t.eval_every, "validation every N steps (0: at the end)")->capture_default_str());
  add(app.add_option("--eval-batches", t.eval_batches, "validation batches per depth")->capture_default_str());
  add(app.add_option("--eval-depths", o->eval_depths, "validation depths, e.g. 1,4,8,16"));
  add(app.add_option("--save-every", t.save_every, "checkpoint every N steps (0: at the end)")->capture_default_str());
  add(app.add_option("--stop-at", t.stop_at, "stop (and save) after this many steps; the schedule keeps --steps"));
  add(app.add_flag("--quiet", t.quiet, "no progress output"));
  return [o] { return run(*o); };
});
}  // namespace huginn::cli
