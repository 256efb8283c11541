// Task mixes, the task manifest (tasks.json) and the training SequenceSource.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "huginn/atomic_file.h"
#include "huginn/common.h"
#include "huginn/gguf.h"
#include "huginn/json.h"
#include "huginn/tasks.h"
#include "model/gguf_model.h"
#include "tasks/rng.h"

namespace huginn::tasks {

namespace fs = std::filesystem;

int TaskMix::max_sequence_length() const {
  int L = 0;
  for (auto& r : tasks) L = std::max(L, get_task(r.task).sequence_length(r.max_difficulty));
  return L;
}

void TaskMix::validate() const {
  if (tasks.empty()) fail("task mix: no tasks");
  for (auto& r : tasks) {
    const Task& t = get_task(r.task);
    if (r.min_difficulty > r.max_difficulty)
      fail("task mix: '", r.task, "' has min difficulty ", r.min_difficulty, " > max ", r.max_difficulty);
    t.check_difficulty(r.min_difficulty);
    t.check_difficulty(r.max_difficulty);
    if (!(r.weight > 0)) fail("task mix: '", r.task, "' needs a weight > 0");
  }
}

static int whole_number(const std::string& s, const std::string& what) {
  long long v = 0;
  if (!huginn::parse_int(s, v) || v < INT32_MIN || v > INT32_MAX) fail("invalid ", what, " '", s, "'");
  return (int)v;
}

TaskMix parse_task_mix(const std::string& spec) {
  TaskMix mix;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    std::string item = spec.substr(start, end - start);
    start = end + 1;
    if (item.empty()) fail("task mix '", spec, "': empty entry");
    // Options of the whole mix: "pack" and "curriculum=N" (sequences).
    if (item == "pack") {
      mix.pack = true;
      if (end == spec.size()) break;
      continue;
    }
    if (item.rfind("curriculum=", 0) == 0) {
      const std::string v = item.substr(11);
      long long c = 0;
      if (!huginn::parse_int(v, c) || c < 0)
        fail("task mix '", spec, "': the curriculum length must be a whole number >= 0, got '", v, "'");
      mix.curriculum_sequences = (uint64_t)c;
      if (end == spec.size()) break;
      continue;
    }
    TaskRange r;
    if (auto at = item.find('@'); at != std::string::npos) {
      if (!huginn::parse_double(item.substr(at + 1), r.weight))
        fail("task mix '", spec, "': invalid weight in '", item, "'");
      item = item.substr(0, at);
    }
    auto colon = item.find(':');
    if (colon == std::string::npos) fail("task mix '", spec, "': expected NAME:MIN-MAX, got '", item, "'");
    r.task = item.substr(0, colon);
    std::string range = item.substr(colon + 1);
    auto dash = range.find('-', 1);
    if (dash == std::string::npos) {
      r.min_difficulty = r.max_difficulty = whole_number(range, "difficulty");
    } else {
      r.min_difficulty = whole_number(range.substr(0, dash), "difficulty");
      r.max_difficulty = whole_number(range.substr(dash + 1), "difficulty");
    }
    mix.tasks.push_back(r);
    if (end == spec.size()) break;
  }
  mix.validate();
  return mix;
}

nlohmann::json task_mix_to_json(const TaskMix& mix) {
  nlohmann::json tasks = nlohmann::json::array();
  for (auto& r : mix.tasks)
    tasks.push_back({{"name", r.task},
                     {"min_difficulty", r.min_difficulty},
                     {"max_difficulty", r.max_difficulty},
                     {"weight", r.weight}});
  return {{"format", "huginn-task-manifest"},
          {"version", 1},
          {"tokenizer", "char-v1"},
          {"tasks", tasks},
          {"seed", mix.seed},
          {"curriculum_sequences", mix.curriculum_sequences},
          {"pack", mix.pack},
          {"max_sequence_length", mix.max_sequence_length()}};
}

TaskMix task_mix_from_json(const nlohmann::json& j, const std::string& source) {
  TaskMix mix;
  try {
    if (!j.is_object() || !j.contains("tasks") || !j["tasks"].is_array())
      fail(source, ": not a task manifest (no \"tasks\" array)");
    for (auto& t : j["tasks"]) {
      TaskRange r;
      r.task = t.at("name").get<std::string>();
      auto difficulty = [&](const char* key) {  // range-checked first: a huge float cast to int is undefined
        int64_t v;
        if (!json_int(t.at(key), INT32_MIN, INT32_MAX, &v))
          fail(source, ": \"", key, "\" must be an integer, got ", json_brief(t.at(key)));
        return (int)v;
      };
      r.min_difficulty = difficulty("min_difficulty");
      r.max_difficulty = difficulty("max_difficulty");
      r.weight = t.value("weight", 1.0);
      mix.tasks.push_back(r);
    }
    mix.seed = j.value("seed", (uint64_t)0);
    mix.curriculum_sequences = j.value("curriculum_sequences", (uint64_t)0);
    mix.pack = j.value("pack", false);
  } catch (const nlohmann::json::exception& e) {
    fail(source, ": invalid task manifest: ", e.what());
  }
  try {
    mix.validate();
  } catch (const Error& e) {
    fail(source, ": ", e.what());
  }
  return mix;
}

static std::string manifest_path(const std::string& dir) { return (fs::path(dir) / "tasks.json").string(); }

// A GGUF model carries its manifest as huginn.task_manifest (huginn quantize).
static const gguf::Value* gguf_manifest(const gguf::File& f) { return f.find("huginn.task_manifest"); }

bool has_task_manifest(const std::string& dir) {
  if (gguf_model::is_gguf_path(dir)) return gguf_manifest(gguf::File(dir)) != nullptr;
  return fs::is_regular_file(manifest_path(dir));
}

void write_task_manifest(const std::string& dir, const TaskMix& mix) {
  mix.validate();
  fs::create_directories(dir);
  write_file_atomic(manifest_path(dir), task_mix_to_json(mix).dump(1) + "\n");
}

TaskMix read_task_manifest(const std::string& dir) {
  if (gguf_model::is_gguf_path(dir)) {
    const gguf::File f(dir);
    const gguf::Value* v = gguf_manifest(f);
    if (!v) fail(dir, ": no task manifest (huginn.task_manifest): the model was not trained on tasks");
    return task_mix_from_json(parse_json(v->as_string(), dir + ": huginn.task_manifest"),
                              dir + ": huginn.task_manifest");
  }
  const std::string path = manifest_path(dir);
  if (!std::filesystem::exists(path))
    fail(path, ": no task manifest (the model was not trained on tasks, or tasks.json is missing)");
  return task_mix_from_json(parse_json_file(path, kJsonMaxDepth, 1 << 20), path);
}

// ---------------------------------------------------------------------------
TaskSequenceSource::TaskSequenceSource(TaskMix mix, Split split) : mix_(std::move(mix)), split_(split) {
  mix_.validate();
  for (auto& r : mix_.tasks) total_weight_ += r.weight;
}

std::string TaskSequenceSource::describe() const {
  std::string s = str("tasks (", split_name(split_), " split) ");
  for (size_t i = 0; i < mix_.tasks.size(); ++i) {
    auto& r = mix_.tasks[i];
    s += str(i ? "," : "", r.task, ":", r.min_difficulty, "-", r.max_difficulty);
    if (r.weight != 1.0) s += str("@", r.weight);
  }
  s += str(" (seed ", mix_.seed, mix_.curriculum_sequences ? str(", curriculum over ", mix_.curriculum_sequences,
                                                                   " sequences")
                                                             : std::string(),
           mix_.pack ? ", packed" : "", ", longest sequence ", mix_.max_sequence_length(), ")");
  return s;
}

Instance TaskSequenceSource::draw(uint64_t index, uint64_t sub) const {
  Rng rng(mix64(mix64(mix_.seed ^ 0xA5A5F00Dull) ^ mix64(index) ^ (sub * 0x9E3779B97F4A7C15ull)));
  double u = rng.uniform() * total_weight_;
  const TaskRange* r = &mix_.tasks.back();
  for (auto& t : mix_.tasks) {
    if (u < t.weight) {
      r = &t;
      break;
    }
    u -= t.weight;
  }
  int hi = r->max_difficulty;
  if (split_ == Split::Train && mix_.curriculum_sequences > 0 && index < mix_.curriculum_sequences) {
    const double frac = (double)(index + 1) / (double)mix_.curriculum_sequences;
    hi = r->min_difficulty + (int)((r->max_difficulty - r->min_difficulty) * frac);
  }
  const int d = rng.range(r->min_difficulty, hi);
  return sample(get_task(r->task), split_, d, rng.next(), mix_.seed);
}

std::vector<Instance> TaskSequenceSource::instances(uint64_t index, int T) const {
  std::vector<Instance> out;
  int used = 0;
  for (uint64_t sub = 0;; ++sub) {
    Instance in = draw(index, sub);
    const int L = (int)(in.prompt.size() + in.answer.size() + 2);
    if (used + L > T) {
      if (sub == 0)
        fail("task sequence of ", L, " tokens (", in.prompt.size(), "-character prompt of task difficulty ",
             in.difficulty, ") does not fit the sequence length T=", T, "; use T >= ", mix_.max_sequence_length());
      break;
    }
    used += L;
    out.push_back(std::move(in));
    if (!mix_.pack) break;
  }
  return out;
}

void TaskSequenceSource::get(uint64_t index, int T, int* ids, int* labels) const {
  for (int t = 0; t < T; ++t) {
    ids[t] = kPadId;
    labels[t] = kIgnoreLabel;
  }
  int o = 0;
  for (const Instance& in : instances(index, T)) {
    const int P = (int)in.prompt.size(), A = (int)in.answer.size();
    ids[o] = kBosId;
    for (int i = 0; i < P; ++i) ids[o + 1 + i] = char_id(in.prompt[i]);
    for (int i = 0; i < A; ++i) ids[o + 1 + P + i] = char_id(in.answer[i]);
    ids[o + 1 + P + A] = kEosId;
    // Position t predicts token t+1: the last prompt token predicts the first
    // answer token, ..., the last answer token predicts EOS.
    for (int t = o + P; t <= o + P + A; ++t) labels[t] = ids[t + 1];
    o += P + A + 2;
  }
}

}  // namespace huginn::tasks
