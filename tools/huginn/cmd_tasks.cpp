// huginn tasks: the built-in reasoning tasks, their formats and examples.
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "huginn/common.h"
#include "huginn/tasks.h"

namespace huginn::cli {
namespace {

struct Opts {
  std::string task, split = "test", write_tokenizer;
  int difficulty = 0, n = 3;
  uint64_t seed = 0;
};

int run(const Opts& o) {
  if (!o.write_tokenizer.empty()) {
    tasks::write_tokenizer_files(o.write_tokenizer);
    std::printf("wrote tokenizer.json, tokenizer_config.json, generation_config.json into %s\n",
                o.write_tokenizer.c_str());
    return 0;
  }
  tasks::Split split;
  if (o.split == "train") split = tasks::Split::Train;
  else if (o.split == "validation") split = tasks::Split::Validation;
  else if (o.split == "test") split = tasks::Split::Test;
  else fail("--split must be train, validation or test, got '", o.split, "'");
  if (o.n < 0) fail("--n must be >= 0");
  std::vector<std::string> names = o.task.empty() ? tasks::task_names() : std::vector<std::string>{o.task};
  for (auto& name : names) {
    const tasks::Task& t = tasks::get_task(name);
    const int d = o.difficulty ? o.difficulty : std::min(t.max_difficulty(), t.min_difficulty() + 2);
    t.check_difficulty(d);
    std::printf("%s (difficulty %d..%d)\n  %s\n", name.c_str(), t.min_difficulty(), t.max_difficulty(),
                t.description().c_str());
    std::printf("  difficulty %d: %d-token sequences ([BOS] prompt answer [EOS]); %s instances:\n", d,
                t.sequence_length(d), tasks::split_name(split));
    for (int i = 0; i < o.n; ++i) {
      tasks::Instance in = tasks::sample(t, split, d, (uint64_t)i, o.seed);
      std::printf("    %s %s\n", in.prompt.c_str(), in.answer.c_str());
    }
  }
  return 0;
}
}  // namespace

static Register reg("tasks", "the built-in reasoning tasks: formats, difficulty, examples", [](CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.add_option("task", o->task, "one task (default: all)");
  app.add_option("--difficulty", o->difficulty, "difficulty of the examples");
  app.add_option("--n", o->n, "examples per task")->capture_default_str();
  app.add_option("--split", o->split, "train, validation or test")->capture_default_str();
  add_seed_option(app, o->seed, "seed of the split's instance stream")->capture_default_str();
  app.add_option("--write-tokenizer", o->write_tokenizer,
                 "write the character tokenizer files into this model directory and exit");
  return [o] { return run(*o); };
});
}  // namespace huginn::cli
