// Reasoning tasks: generators against independent brute-force solvers,
// reproducibility, difficulty, scorers, split disjointness, the training
// SequenceSource, the tokenizer.json and the task manifest.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "huginn/common.h"
#include "huginn/tasks.h"

using namespace huginn;
using namespace huginn::tasks;
namespace fs = std::filesystem;

namespace {

// --- independent solvers ----------------------------------------------------
std::string solve_running_sum(const std::string& prompt, int base) {
  EXPECT_EQ(prompt.back(), '=');
  long total = 0;
  for (size_t i = 0; i + 1 < prompt.size(); ++i) {
    const int v = prompt[i] - '0';
    EXPECT_TRUE(v >= 0 && v < base) << prompt;
    total += v;
  }
  return std::to_string(total % base);
}

std::string u128_to_string(unsigned __int128 v) {
  std::string s;
  do {
    s.insert(s.begin(), (char)('0' + (int)(v % 10)));
    v /= 10;
  } while (v);
  return s;
}

// Rebuilds both operands from the column pairs and adds them as integers.
std::string solve_addition(const std::string& prompt, int n) {
  EXPECT_EQ(prompt.back(), '=');
  unsigned __int128 a = 0, b = 0, place = 1;
  for (int i = 0; i < n; ++i) {
    const std::string col = prompt.substr(3 * i, 2);
    EXPECT_TRUE(isdigit(col[0]) && isdigit(col[1])) << prompt;
    if (i + 1 < n) {
      EXPECT_EQ(prompt[3 * i + 2], ',') << prompt;
    }
    a += place * (unsigned)(col[0] - '0');
    b += place * (unsigned)(col[1] - '0');
    place *= 10;
  }
  std::string s = u128_to_string(a + b);
  while ((int)s.size() < n + 1) s.insert(s.begin(), '0');
  return s;
}

// Depth-first search over every right/down path (no memoisation).
bool dfs(const std::vector<std::string>& g, int i, int j) {
  const int h = (int)g.size(), w = (int)g[0].size();
  if (i >= h || j >= w || g[i][j] != '.') return false;
  if (i == h - 1 && j == w - 1) return true;
  return dfs(g, i, j + 1) || dfs(g, i + 1, j);
}
std::string solve_reach(const std::string& prompt, int rows) {
  EXPECT_EQ(prompt.back(), '=');
  std::vector<std::string> g;
  std::string body = prompt.substr(0, prompt.size() - 1);
  size_t start = 0;
  for (;;) {
    size_t end = body.find('/', start);
    g.push_back(body.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  EXPECT_EQ((int)g.size(), rows) << prompt;
  for (auto& row : g) EXPECT_EQ((int)row.size(), 6) << prompt;
  return dfs(g, 0, 0) ? "y" : "n";
}

// Every cell the frog can stand on, by breadth-first search from cell 0 (the
// frog's moves are forced, so the set is its path).
std::string solve_jumps(const std::string& prompt, int n) {
  EXPECT_EQ(prompt.back(), '=');
  EXPECT_EQ((int)prompt.size(), n + 1);
  std::vector<char> seen(n, 0);
  std::vector<int> queue{0};
  while (!queue.empty()) {
    const int i = queue.back();
    queue.pop_back();
    if (i >= n || seen[i]) continue;
    seen[i] = 1;
    const int j = prompt[i] - '0';
    EXPECT_TRUE(j >= 1 && j <= 3) << prompt;
    queue.push_back(i + j);
  }
  return seen[n - 1] ? "y" : "n";
}

// Whether a frog started on `start` lands on the last cell.
bool lands_last(const std::string& prompt, int start) {
  const int n = (int)prompt.size() - 1;
  int i = start;
  while (i < n - 1) i += prompt[i] - '0';
  return i == n - 1;
}

// The frog's path written out by walking it: the row again with the cells it
// stands on as letters (1 -> a, 2 -> b, 3 -> c), then whether it stood on the last.
std::string solve_jumps_cot(const std::string& prompt, int n) {
  std::string path = prompt.substr(0, n);
  int i = 0;
  for (; i < n; i += prompt[i] - '0') path[i] = (char)('a' + (prompt[i] - '1'));
  return path + (path[n - 1] >= 'a' ? "y" : "n");
}

std::string brute_force(const Instance& in, const std::string& task) {
  if (task == "jumps") return solve_jumps(in.prompt, in.difficulty);
  if (task == "jumps-cot") return solve_jumps_cot(in.prompt, in.difficulty);
  if (task == "digitsum") return solve_running_sum(in.prompt, 10);
  if (task == "parity") return solve_running_sum(in.prompt, 2);
  if (task == "addition") return solve_addition(in.prompt, in.difficulty);
  if (task == "reach" || task == "reach-hard") return solve_reach(in.prompt, in.difficulty);
  ADD_FAILURE() << "no solver for " << task;
  return "";
}

// Longest run of carries in an addition instance.
int longest_carry_chain(const std::string& prompt, int n) {
  int carry = 0, run = 0, best = 0;
  for (int i = 0; i < n; ++i) {
    const int s = (prompt[3 * i] - '0') + (prompt[3 * i + 1] - '0') + carry;
    carry = s / 10;
    run = carry ? run + 1 : 0;
    best = std::max(best, run);
  }
  return best;
}

}  // namespace

TEST(Tasks, RegistryHasAtLeastThreeTasksAndRejectsUnknownNames) {
  auto names = task_names();
  EXPECT_GE(names.size(), 3u);
  for (auto& n : names) EXPECT_EQ(get_task(n).name(), n);
  try {
    get_task("nope");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown task 'nope'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("addition"), std::string::npos);
  }
}

TEST(Tasks, AnswersMatchIndependentBruteForceSolvers) {
  for (auto& name : task_names()) {
    const Task& t = get_task(name);
    const int hi = std::min(t.max_difficulty(), name.rfind("reach", 0) == 0 ? 14 : 24);
    for (int d = t.min_difficulty(); d <= hi; ++d)
      for (uint64_t seed = 0; seed < 60; ++seed) {
        Instance in = t.generate(d, seed * 7919 + d);
        ASSERT_EQ(in.difficulty, d);
        ASSERT_EQ((int)in.prompt.size(), t.prompt_length(d)) << name << " " << in.prompt;
        ASSERT_EQ((int)in.answer.size(), t.answer_length(d)) << name << " " << in.prompt;
        ASSERT_EQ(in.answer, brute_force(in, name)) << name << " d=" << d << " prompt " << in.prompt;
        for (char c : in.prompt + in.answer) ASSERT_NO_THROW(char_id(c));
      }
  }
}

TEST(Tasks, GeneratorsAreReproducibleBySeedAndVaryAcrossSeeds) {
  for (auto& name : task_names()) {
    const Task& t = get_task(name);
    const int d = t.min_difficulty() + 3;
    std::set<std::string> seen;
    for (uint64_t seed = 0; seed < 50; ++seed) {
      Instance a = t.generate(d, seed), b = t.generate(d, seed);
      EXPECT_EQ(a.prompt, b.prompt);
      EXPECT_EQ(a.answer, b.answer);
      seen.insert(a.prompt);
    }
    EXPECT_GT(seen.size(), 40u) << name;
  }
}

TEST(Tasks, DifficultyIsCheckedAndGrowsTheInput) {
  for (auto& name : task_names()) {
    const Task& t = get_task(name);
    EXPECT_THROW(t.generate(t.min_difficulty() - 1, 1), Error);
    EXPECT_THROW(t.generate(t.max_difficulty() + 1, 1), Error);
    EXPECT_LT(t.prompt_length(t.min_difficulty()), t.prompt_length(t.min_difficulty() + 1));
  }
}

TEST(Tasks, AdditionCarryChainsGrowWithDifficulty) {
  const Task& t = get_task("addition");
  auto max_chain = [&](int n) {
    int best = 0, sum = 0;
    for (uint64_t s = 0; s < 300; ++s) {
      int c = longest_carry_chain(t.generate(n, s).prompt, n);
      best = std::max(best, c);
      sum += c;
    }
    return std::pair<int, double>(best, sum / 300.0);
  };
  auto [b3, m3] = max_chain(3);
  auto [b12, m12] = max_chain(12);
  EXPECT_LE(b3, 3);
  EXPECT_GE(b12, 10);
  EXPECT_GT(m12, 2 * m3);
}

TEST(Tasks, ReachIsBalancedAndReachHardHasNoCheapCues) {
  for (const std::string name : {"reach", "reach-hard"})
    for (int n : {2, 4, 10}) {
      const Task& t = get_task(name);
      int yes = 0;
      for (uint64_t s = 0; s < 600; ++s) yes += t.generate(n, s).answer == "y";
      EXPECT_GT(yes, 600 * 40 / 100) << name << " " << n;
      EXPECT_LT(yes, 600 * 60 / 100) << name << " " << n;
    }
  const Task& t = get_task("reach-hard");
  for (int n : {2, 4, 10}) {
    int yes = 0, local_no = 0, walls_y = 0, walls_n = 0;
    const int N = 600;
    for (uint64_t s = 0; s < N; ++s) {
      Instance in = t.generate(n, s);
      const bool y = in.answer == "y";
      yes += y;
      const int walls = (int)std::count(in.prompt.begin(), in.prompt.end(), '#');
      (y ? walls_y : walls_n) += walls;
      // A "no" that the corners' two neighbours alone decide.
      const int target = (n - 1) * 7 + 5;
      ASSERT_EQ(in.prompt[target + 1], '=');
      const bool target_blocked = in.prompt[target - 1] == '#' && in.prompt[target - 7] == '#';
      const bool start_blocked = in.prompt[1] == '#' && in.prompt[7] == '#';
      if (!y && (target_blocked || start_blocked)) ++local_no;
    }
    EXPECT_GT(yes, N * 40 / 100) << n;
    EXPECT_LT(yes, N * 60 / 100) << n;
    EXPECT_EQ(local_no, 0) << n;
    // The wall count says nothing about the answer.
    EXPECT_NEAR((double)walls_y / yes, (double)walls_n / (N - yes), 0.5) << n;
  }
}

TEST(Tasks, JumpsIsBalancedAndOnlyTheWholeRowDecides) {
  const Task& t = get_task("jumps");
  for (int n : {4, 10, 24, 48}) {
    const int N = 600;
    int yes = 0, from_late = 0;
    for (uint64_t s = 0; s < N; ++s) {
      Instance in = t.generate(n, s);
      const bool y = in.answer == "y";
      yes += y;
      // Two tracks that never meet: the frog's and one from cell 1 or 2, and
      // exactly one of them ends on the last cell.
      auto path = [&](int start) {
        std::set<int> cells;
        for (int i = start; i < n; i += in.prompt[i] - '0') cells.insert(i);
        return cells;
      };
      const std::set<int> frog = path(0);
      bool found = false;
      for (int start : {1, 2}) {
        const std::set<int> other = path(start);
        bool meet = false;
        for (int c : other) meet = meet || frog.count(c);
        if (meet) continue;
        found = true;
        EXPECT_NE(y, lands_last(in.prompt, start)) << in.prompt;
      }
      EXPECT_TRUE(found) << in.prompt;
      // A frog simulated from 6 cells before the end says nothing about the answer.
      from_late += lands_last(in.prompt, std::max(0, n - 6)) == y;
    }
    EXPECT_GT(yes, N * 40 / 100) << n;
    EXPECT_LT(yes, N * 60 / 100) << n;
    if (n >= 24) {
      EXPECT_GT(from_late, N * 35 / 100) << n;
      EXPECT_LT(from_late, N * 65 / 100) << n;
    }
  }
}

TEST(Tasks, ScorerIsExactMatch) {
  const Task& t = get_task("addition");
  Instance in = t.generate(4, 3);
  EXPECT_TRUE(t.score(in, in.answer));
  EXPECT_FALSE(t.score(in, in.answer + "0"));
  EXPECT_FALSE(t.score(in, in.answer.substr(1)));
  std::string wrong = in.answer;
  wrong[0] = wrong[0] == '9' ? '0' : wrong[0] + 1;
  EXPECT_FALSE(t.score(in, wrong));
  EXPECT_FALSE(t.score(in, ""));
  // decode_answer_text stops at EOS and ignores BOS/PAD.
  std::vector<int> ids = encode_chars(in.answer);
  ids.push_back(kEosId);
  ids.push_back(char_id('7'));
  EXPECT_TRUE(t.score(in, decode_answer_text(ids)));
}

TEST(Tasks, TrainAndTestSplitsNeverOverlap) {
  for (auto& [name, d] : std::vector<std::pair<std::string, int>>{{"digitsum", 3}, {"addition", 2}, {"reach", 2}}) {
    const Task& t = get_task(name);
    std::set<std::string> train, test, val;
    for (uint64_t i = 0; i < 3000; ++i) {
      Instance in = sample(t, Split::Train, d, i, 11);
      EXPECT_EQ(split_of(t, in.prompt), Split::Train);
      train.insert(in.prompt);
    }
    for (uint64_t i = 0; i < 400; ++i) {
      Instance in = sample(t, Split::Validation, d, i, 11);
      EXPECT_EQ(split_of(t, in.prompt), Split::Validation);
      val.insert(in.prompt);
      EXPECT_EQ(train.count(in.prompt), 0u) << name << ": validation instance " << in.prompt << " is in training";
    }
    for (uint64_t i = 0; i < 400; ++i) {
      Instance in = sample(t, Split::Test, d, i, 11);
      EXPECT_EQ(split_of(t, in.prompt), Split::Test);
      test.insert(in.prompt);
      EXPECT_EQ(train.count(in.prompt), 0u) << name << ": test instance " << in.prompt << " is in training";
      EXPECT_EQ(val.count(in.prompt), 0u) << name << ": test instance " << in.prompt << " is in validation";
    }
    EXPECT_GT(test.size(), 5u) << name;
    EXPECT_GT(val.size(), 3u) << name;
    // Roughly the intended share of the instance space (1/8 test).
    int n_test = 0;
    for (uint64_t seed = 0; seed < 4000; ++seed) n_test += split_of(t, t.generate(d + 4, seed).prompt) == Split::Test;
    EXPECT_GT(n_test, 350);
    EXPECT_LT(n_test, 650);
    // Deterministic: the same index gives the same instance.
    EXPECT_EQ(sample(t, Split::Test, d, 5, 11).prompt, sample(t, Split::Test, d, 5, 11).prompt);
  }
  // The training stream of a SequenceSource holds no test instance either.
  TaskSequenceSource src(parse_task_mix("digitsum:3"));
  std::set<std::string> test;
  for (uint64_t i = 0; i < 300; ++i) test.insert(sample(get_task("digitsum"), Split::Test, 3, i).prompt);
  for (uint64_t i = 0; i < 3000; ++i)
    for (auto& in : src.instances(i, 16)) EXPECT_EQ(test.count(in.prompt), 0u);
  TaskSequenceSource vsrc(parse_task_mix("digitsum:3"), Split::Validation);
  for (uint64_t i = 0; i < 100; ++i)
    for (auto& in : vsrc.instances(i, 16)) EXPECT_EQ(split_of(get_task("digitsum"), in.prompt), Split::Validation);
}

TEST(Tasks, SequenceSourceLabelsOnlyTheAnswerAndEos) {
  TaskSequenceSource src(parse_task_mix("addition:2-5,reach:3-4,digitsum:2-8"));
  const int T = 40;
  std::vector<int> ids(T), labels(T), ids2(T), labels2(T);
  std::set<std::string> tasks_seen;
  for (uint64_t idx = 0; idx < 200; ++idx) {
    src.get(idx, T, ids.data(), labels.data());
    src.get(idx, T, ids2.data(), labels2.data());
    ASSERT_EQ(ids, ids2);
    ASSERT_EQ(labels, labels2);
    auto inst = src.instances(idx, T);
    ASSERT_EQ(inst.size(), 1u);
    const Instance& in = inst[0];
    const int P = (int)in.prompt.size(), A = (int)in.answer.size();
    ASSERT_EQ(ids[0], kBosId);
    for (int i = 0; i < P; ++i) ASSERT_EQ(ids[1 + i], char_id(in.prompt[i]));
    for (int i = 0; i < A; ++i) ASSERT_EQ(ids[1 + P + i], char_id(in.answer[i]));
    ASSERT_EQ(ids[1 + P + A], kEosId);
    for (int t = 2 + P + A; t < T; ++t) ASSERT_EQ(ids[t], kPadId);
    int labelled = 0;
    for (int t = 0; t < T; ++t) {
      if (labels[t] == kIgnoreLabel) continue;
      ++labelled;
      ASSERT_GE(t, P);  // position P holds the last prompt character ('=')
      ASSERT_LE(t, P + A);
      ASSERT_EQ(labels[t], ids[t + 1]);
    }
    ASSERT_EQ(labelled, A + 1);
    ASSERT_EQ(labels[P], char_id(in.answer[0]));
    ASSERT_EQ(labels[P + A], kEosId);
    ASSERT_EQ(in.prompt.back(), '=');
    tasks_seen.insert(in.prompt.find('/') != std::string::npos   ? "reach"
                      : in.prompt.find(',') != std::string::npos ? "addition"
                                                                 : "other");
  }
  EXPECT_EQ(tasks_seen.size(), 3u);
  // Different indices give different sequences; the same mix and seed give the same.
  TaskSequenceSource same(parse_task_mix("addition:2-5,reach:3-4,digitsum:2-8"));
  same.get(7, T, ids2.data(), labels2.data());
  src.get(7, T, ids.data(), labels.data());
  EXPECT_EQ(ids, ids2);
  src.get(8, T, ids2.data(), labels2.data());
  EXPECT_NE(ids, ids2);
  // A T too small for the longest sequence is an error, not a truncation.
  EXPECT_THROW(src.get(0, 5, ids.data(), labels.data()), Error);
  EXPECT_EQ(src.mix().max_sequence_length(), 4 * 7 + 1 + 2);
}

TEST(Tasks, SequenceSourceDifficultyRangeCurriculumAndPacking) {
  TaskMix mix = parse_task_mix("digitsum:2-20");
  mix.curriculum_sequences = 1000;
  TaskSequenceSource src(mix);
  int early_max = 0, late_max = 0;
  for (uint64_t i = 0; i < 100; ++i) early_max = std::max(early_max, src.instances(i, 64)[0].difficulty);
  for (uint64_t i = 5000; i < 5200; ++i) late_max = std::max(late_max, src.instances(i, 64)[0].difficulty);
  EXPECT_LE(early_max, 4);
  EXPECT_EQ(late_max, 20);
  // The curriculum shapes training only: validation draws the whole range from the start.
  TaskSequenceSource val(mix, Split::Validation);
  int val_early_max = 0;
  for (uint64_t i = 0; i < 100; ++i) val_early_max = std::max(val_early_max, val.instances(i, 64)[0].difficulty);
  EXPECT_GT(val_early_max, 10);
  mix.curriculum_sequences = 0;
  mix.pack = true;
  TaskSequenceSource packed(mix);
  std::vector<int> ids(64), labels(64);
  packed.get(3, 64, ids.data(), labels.data());
  auto inst = packed.instances(3, 64);
  EXPECT_GE(inst.size(), 2u);
  int bos = 0, labelled = 0;
  for (int t = 0; t < 64; ++t) {
    bos += ids[t] == kBosId;
    labelled += labels[t] != kIgnoreLabel;
  }
  EXPECT_EQ(bos, (int)inst.size());
  EXPECT_EQ(labelled, 2 * (int)inst.size());
}

TEST(Tasks, TaskMixParsingAndManifestRoundTrip) {
  TaskMix mix = parse_task_mix("addition:1-12,reach:3-8@2,parity:10");
  ASSERT_EQ(mix.tasks.size(), 3u);
  EXPECT_EQ(mix.tasks[1].weight, 2.0);
  EXPECT_EQ(mix.tasks[2].min_difficulty, 10);
  EXPECT_EQ(mix.tasks[2].max_difficulty, 10);
  EXPECT_THROW(parse_task_mix("addition:5-2"), Error);
  EXPECT_THROW(parse_task_mix("addition:0-3"), Error);
  EXPECT_THROW(parse_task_mix("bogus:1-3"), Error);
  EXPECT_THROW(parse_task_mix("addition"), Error);
  EXPECT_THROW(parse_task_mix("addition:1-x"), Error);
  EXPECT_THROW(parse_task_mix("addition:1-3@0"), Error);
  // Options of the whole mix.
  TaskMix opt = parse_task_mix("jumps:4-24,pack,curriculum=1000");
  ASSERT_EQ(opt.tasks.size(), 1u);
  EXPECT_TRUE(opt.pack);
  EXPECT_EQ(opt.curriculum_sequences, 1000u);
  EXPECT_THROW(parse_task_mix("jumps:4-8,curriculum=x"), Error);
  EXPECT_THROW(parse_task_mix("jumps:4-8,curriculum=-3"), Error);
  EXPECT_EQ(parse_task_mix("jumps:4-8,curriculum=5000000000").curriculum_sequences, 5000000000ull);
  EXPECT_THROW(parse_task_mix("pack"), Error);  // no task
  TaskMix opt_back = task_mix_from_json(task_mix_to_json(opt), "test");
  EXPECT_TRUE(opt_back.pack);
  EXPECT_EQ(opt_back.curriculum_sequences, 1000u);
  // difficulties out of int range are refused before any conversion (a huge float cast to int is undefined)
  EXPECT_THROW(task_mix_from_json(nlohmann::json::parse(R"({"tasks": [{"name": "jumps", "min_difficulty": 1e300,
      "max_difficulty": 8}]})"), "test"), Error);
  EXPECT_THROW(task_mix_from_json(nlohmann::json::parse(R"({"tasks": [{"name": "jumps", "min_difficulty": 4,
      "max_difficulty": 4294967296}]})"), "test"), Error);
  const std::string dir = (fs::temp_directory_path() / ("huginn_test_manifest_" + std::to_string(getpid()))).string();
  mix.seed = 42;
  write_task_manifest(dir, mix);
  EXPECT_TRUE(has_task_manifest(dir));
  TaskMix back = read_task_manifest(dir);
  ASSERT_EQ(back.tasks.size(), 3u);
  EXPECT_EQ(back.tasks[0].task, "addition");
  EXPECT_EQ(back.tasks[0].max_difficulty, 12);
  EXPECT_EQ(back.seed, 42u);
  std::ofstream(dir + "/tasks.json") << "{\"tasks\": [{\"name\": \"x\"}]}";
  EXPECT_THROW(read_task_manifest(dir), Error);
  fs::remove_all(dir);
  EXPECT_THROW(read_task_manifest(dir), Error);
}

TEST(Tasks, TokenizerJsonIsAHuggingFaceCharacterBpe) {
  nlohmann::json j = nlohmann::json::parse(tokenizer_json().dump());
  ASSERT_EQ(j["model"]["type"], "BPE");
  ASSERT_TRUE(j["model"]["merges"].is_array());
  EXPECT_TRUE(j["model"]["merges"].empty());
  ASSERT_TRUE(j["model"]["vocab"].is_object());
  for (const char* key : {"version", "truncation", "padding", "added_tokens", "normalizer", "pre_tokenizer",
                          "post_processor", "decoder", "model"})
    EXPECT_TRUE(j.contains(key)) << key;
  EXPECT_EQ(j["pre_tokenizer"]["type"], "ByteLevel");
  EXPECT_EQ(j["decoder"]["type"], "ByteLevel");
  auto& vocab = j["model"]["vocab"];
  EXPECT_EQ((int)vocab.size(), kCharVocabSize);
  std::set<int> ids;
  for (auto& [k, v] : vocab.items()) ids.insert(v.get<int>());
  EXPECT_EQ((int)ids.size(), kCharVocabSize);
  EXPECT_EQ(*ids.begin(), 0);
  EXPECT_EQ(*ids.rbegin(), kCharVocabSize - 1);
  // Every character the tasks use maps to the id the internal mapping gives.
  for (char c = '!'; c <= '~'; ++c) EXPECT_EQ(vocab[std::string(1, c)].get<int>(), char_id(c)) << c;
  EXPECT_EQ(vocab["\xC4\xA0"].get<int>(), char_id(' '));   // byte-level space
  EXPECT_EQ(vocab["\xC4\x8A"].get<int>(), char_id('\n'));  // byte-level newline
  std::map<std::string, int> specials;
  for (auto& t : j["added_tokens"]) {
    EXPECT_TRUE(t["special"].get<bool>());
    for (const char* key : {"id", "content", "single_word", "lstrip", "rstrip", "normalized"})
      EXPECT_TRUE(t.contains(key)) << key;
    specials[t["content"]] = t["id"];
  }
  EXPECT_EQ(specials[kBosText], kBosId);
  EXPECT_EQ(specials[kEosText], kEosId);
  EXPECT_EQ(specials[kPadText], kPadId);
  // Round trip through the internal mapping.
  const std::string text = "39,72,48=1302 ..#/#..";
  std::string back;
  for (int id : encode_chars(text)) back += id_char(id);
  EXPECT_EQ(back, text);
  EXPECT_THROW(char_id('\t'), Error);
  EXPECT_EQ(decode_ids({kBosId, char_id('1'), kEosId}), std::string(kBosText) + "1" + kEosText);
  // The files a task model directory gets.
  const std::string dir = (fs::temp_directory_path() / ("huginn_test_tok_" + std::to_string(getpid()))).string();
  write_tokenizer_files(dir);
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(dir + "/tokenizer.json")), tokenizer_json());
  auto cfg = nlohmann::json::parse(std::ifstream(dir + "/tokenizer_config.json"));
  EXPECT_EQ(cfg["eos_token"], kEosText);
  auto gen = nlohmann::json::parse(std::ifstream(dir + "/generation_config.json"));
  EXPECT_EQ(gen["eos_token_id"], kEosId);
  EXPECT_EQ(gen["bos_token_id"], kBosId);
  fs::remove_all(dir);
}

TEST(Tasks, CliListsTasksWithExamples) {
  auto run = [](const std::string& args, int* rc) {
    FILE* p = popen((std::string(HUGINN_BIN) + " " + args + " 2>&1").c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = pclose(p);
    *rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    return out;
  };
  int rc = 0;
  std::string out = run("tasks", &rc);
  EXPECT_EQ(rc, 0) << out;
  for (auto& name : task_names()) EXPECT_NE(out.find(name + " (difficulty"), std::string::npos) << name;
  out = run("tasks addition --difficulty 2 --n 2 --split test", &rc);
  EXPECT_EQ(rc, 0) << out;
  // The examples are the test split's first instances.
  for (uint64_t i = 0; i < 2; ++i) {
    Instance in = sample(get_task("addition"), Split::Test, 2, i);
    EXPECT_NE(out.find(in.prompt + " " + in.answer), std::string::npos) << out;
  }
  out = run("tasks nope", &rc);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("error: unknown task 'nope'"), std::string::npos) << out;
}
