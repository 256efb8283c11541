// The built-in reasoning tasks and the train/test split.
#include <algorithm>
#include <map>

#include "huginn/common.h"
#include "huginn/tasks.h"
#include "tasks/rng.h"

namespace huginn::tasks {

void Task::check_difficulty(int difficulty) const {
  if (difficulty < min_difficulty() || difficulty > max_difficulty())
    fail("task '", name(), "': difficulty ", difficulty, " is outside its range ", min_difficulty(), "..",
         max_difficulty());
}

namespace {

// ---------------------------------------------------------------------------
// digitsum / parity: a string of n symbols, answer the sum of all of them
// modulo the base. The running sum at position i is (running sum at i-1 +
// symbol i) mod base: a chain of n dependent steps along the prompt.
class RunningSum : public Task {
 public:
  RunningSum(std::string name, int base, int min_d) : name_(std::move(name)), base_(base), min_d_(min_d) {}
  std::string name() const override { return name_; }
  std::string description() const override {
    return str("prompt: ", base_ == 2 ? "n bits" : "n digits", " then '=' (e.g. ",
               base_ == 2 ? "\"0110=\"" : "\"4719=\"", "); answer: one digit, the sum of all of them modulo ",
               base_, " (", base_ == 2 ? "\"0\"" : "\"1\"",
               "). Difficulty n = number of symbols; the running sum is a chain of n dependent steps.");
  }
  int min_difficulty() const override { return min_d_; }
  int max_difficulty() const override { return 64; }
  int prompt_length(int d) const override { return d + 1; }
  int answer_length(int) const override { return 1; }
  Instance generate(int d, uint64_t seed) const override {
    check_difficulty(d);
    Rng rng(seed);
    Instance in;
    in.difficulty = d;
    int sum = 0;
    for (int i = 0; i < d; ++i) {
      const int v = (int)rng.below(base_);
      sum = (sum + v) % base_;
      in.prompt += (char)('0' + v);
    }
    in.prompt += '=';
    in.answer = std::string(1, (char)('0' + sum));
    return in;
  }

 private:
  std::string name_;
  int base_, min_d_;
};

// ---------------------------------------------------------------------------
// addition: two n-digit numbers given as digit pairs per column, least
// significant column first ("a0b0,a1b1,...="), answer the n+1-digit sum most
// significant digit first. The carry flows left to right along the prompt
// (one column per step); the first answer digit needs the whole carry chain.
class Addition : public Task {
 public:
  std::string name() const override { return "addition"; }
  std::string description() const override {
    return "prompt: the column digit pairs of a+b, least significant column first, comma separated, then '=' "
           "(473+829 -> \"39,72,48=\"); answer: the sum as n+1 digits, most significant first, with a leading "
           "zero when there is no final carry (\"1302\"). Difficulty n = digits per operand; half of the "
           "instances plant a carry chain of random length up to n-1.";
  }
  int min_difficulty() const override { return 1; }
  int max_difficulty() const override { return 24; }
  int prompt_length(int d) const override { return 3 * d; }
  int answer_length(int d) const override { return d + 1; }
  Instance generate(int n, uint64_t seed) const override {
    check_difficulty(n);
    Rng rng(seed);
    std::vector<int> a(n), b(n);
    for (int i = 0; i < n; ++i) {
      a[i] = (int)rng.below(10);
      b[i] = (int)rng.below(10);
    }
    if (n >= 2 && rng.bernoulli(0.5)) {
      // A carry generated at column `start` and propagated through k columns summing to 9.
      const int k = rng.range(1, n - 1);
      const int start = rng.range(0, n - 1 - k);
      a[start] = rng.range(1, 9);
      b[start] = rng.range(10 - a[start], 9);
      for (int i = start + 1; i <= start + k; ++i) {
        a[i] = rng.range(0, 9);
        b[i] = 9 - a[i];
      }
    }
    Instance in;
    in.difficulty = n;
    for (int i = 0; i < n; ++i) {
      if (i) in.prompt += ',';
      in.prompt += (char)('0' + a[i]);
      in.prompt += (char)('0' + b[i]);
    }
    in.prompt += '=';
    std::string sum_lsb;
    int carry = 0;
    for (int i = 0; i < n; ++i) {
      const int s = a[i] + b[i] + carry;
      sum_lsb += (char)('0' + s % 10);
      carry = s / 10;
    }
    sum_lsb += (char)('0' + carry);
    in.answer.assign(sum_lsb.rbegin(), sum_lsb.rend());
    return in;
  }
};

// ---------------------------------------------------------------------------
// reach: a grid of h rows of W = 6 cells, '.' (open) or '#' (wall), rows
// separated by '/', then '='. Is the bottom-right cell reachable from the
// top-left one moving only right or down through open cells? Answer 'y' or
// 'n'. Reachability of a cell is (open) and (left or upper neighbour
// reachable): both neighbours come earlier in the prompt, at fixed offsets 1
// and W+1 whatever the difficulty, so the fixed point propagates causally, one
// hop per step, W-1+h-1 hops from corner to corner.
class Reach : public Task {
 public:
  static constexpr int W = 6;
  // near_miss: the harder variant ("reach-hard"), whose answers no cheap
  // feature predicts. The plain variant cuts a random path until none is
  // left, so its 'n' grids have a few more walls and are sometimes decided by
  // the corners' neighbours: cues that give a small model its first gradient.
  explicit Reach(bool near_miss) : near_miss_(near_miss) {}
  std::string name() const override { return near_miss_ ? "reach-hard" : "reach"; }
  std::string description() const override {
    return str("prompt: a grid of h rows of 6 cells, '.' open and '#' wall, rows separated by '/', then '=' "
               "(\"..#.../#.....=\" for two rows); answer: 'y' if the bottom-right cell can be reached from the "
               "top-left cell by moves right or down through open cells, else 'n' (half each). ",
               near_miss_ ? "Near misses: an 'n' grid is a 'y' grid whose paths were cut, a 'y' grid is one wall short "
                            "of such a cut, so both have as many walls, and no 'n' is decided by the corners' "
                            "neighbours alone. "
                          : "An 'n' grid is a random grid with a carved path, cut until no path is left. ",
               "Difficulty h = number of rows; a path is 5 + h-1 hops.");
  }
  int min_difficulty() const override { return 2; }
  int max_difficulty() const override { return 24; }
  int prompt_length(int h) const override { return h * (W + 1); }
  int answer_length(int) const override { return 1; }

  // Reachability of every cell (row-major h x W), moving right/down from (0,0).
  static std::vector<char> reachable(const std::vector<char>& open, int h) {
    std::vector<char> r(h * W, 0);
    for (int i = 0; i < h; ++i)
      for (int j = 0; j < W; ++j) {
        if (!open[i * W + j]) continue;
        if (i == 0 && j == 0) r[0] = 1;
        else r[i * W + j] = (j > 0 && r[i * W + j - 1]) || (i > 0 && r[(i - 1) * W + j]);
      }
    return r;
  }

  Instance generate(int h, uint64_t seed) const override {
    check_difficulty(h);
    Rng rng(seed);
    const bool want_yes = rng.bernoulli(0.5);
    const int target = h * W - 1;
    std::vector<char> open(h * W);
    for (int attempt = 0;; ++attempt) {
      for (auto& c : open) c = !rng.bernoulli(0.4);
      // Carve a random monotone path so that the grid starts reachable.
      int i = 0, j = 0, downs = h - 1, rights = W - 1;
      open[0] = 1;
      while (downs + rights > 0) {
        const bool down = rng.below(downs + rights) < (uint64_t)downs;
        if (down) ++i, --downs;
        else ++j, --rights;
        open[i * W + j] = 1;
      }
      // Cut: wall a random interior cell of some path until none is left.
      // `before` is the grid one wall short of the cut: still reachable.
      const std::vector<char> path_grid = open;
      std::vector<char> before = open;
      for (;;) {
        auto r = reachable(open, h);
        if (!r[target]) break;
        before = open;
        std::vector<int> path;
        int ci = h - 1, cj = W - 1;
        while (ci + cj > 0) {
          const bool up_ok = ci > 0 && r[(ci - 1) * W + cj];
          const bool left_ok = cj > 0 && r[ci * W + cj - 1];
          if (up_ok && (!left_ok || rng.bernoulli(0.5))) --ci;
          else --cj;
          if (ci + cj > 0) path.push_back(ci * W + cj);
        }
        open[path[rng.below(path.size())]] = 0;
      }
      if (!near_miss_) {
        if (want_yes) open = path_grid;
        break;
      }
      if (want_yes) {
        // The near miss: the grid before the cut plus one wall that keeps a
        // path, so that 'y' and 'n' grids have the same number of walls.
        open = before;
        std::vector<int> cells;
        for (int c = 1; c < target; ++c)
          if (open[c]) cells.push_back(c);
        for (size_t k = cells.size(); k > 1; --k) std::swap(cells[k - 1], cells[rng.below(k)]);
        for (int c : cells) {
          open[c] = 0;
          if (reachable(open, h)[target]) break;
          open[c] = 1;
        }
        break;
      }
      // A 'n' that the start's or the target's two neighbours alone decide is
      // too easy: draw again (rarely more than a few times).
      const bool start_blocked = !open[1] && !open[W];
      const bool target_blocked = !open[target - 1] && !open[target - W];
      if ((!start_blocked && !target_blocked) || attempt >= 1000) break;
    }
    Instance in;
    in.difficulty = h;
    for (int a = 0; a < h; ++a) {
      if (a) in.prompt += '/';
      for (int b = 0; b < W; ++b) in.prompt += open[a * W + b] ? '.' : '#';
    }
    in.prompt += '=';
    in.answer = std::string(1, reachable(open, h)[h * W - 1] ? 'y' : 'n');
    return in;
  }

 private:
  bool near_miss_;
};

// ---------------------------------------------------------------------------
// jumps: a row of n cells, each holding a jump length 1, 2 or 3, then '='. A
// frog starts on the first cell and jumps forward by the number on its cell
// until it leaves the row. Does it land on the last cell? Answer 'y' or 'n'.
// Whether cell i is landed on is (cell i-k landed on and holds k) for some k
// in 1..3: a local rule over fixed offsets 1-3, one hop per step.
// Random rows would make this shallow: frogs started on different cells meet
// within a few jumps, so simulating one from a few cells before the end gives
// the answer. Instead every row carries two tracks that never meet, one from
// the first cell and one from the second or third, and exactly one of them
// lands on the last cell (the other cells are random and only feed into the
// tracks). Near the end the two tracks look alike: only following the frog's
// track from the start tells which one it is on, ~n/2 dependent jumps.
class Jumps : public Task {
 public:
  std::string name() const override { return "jumps"; }
  std::string description() const override {
    return "prompt: n jump lengths, each 1, 2 or 3, then '=' (\"2132122=\"); a frog starts on the first cell and "
           "jumps forward by the number on its cell; answer: 'y' if it lands on the last cell, else 'n' (half "
           "each). Every row holds two paths that never meet, from the first cell and from the second or third, "
           "and exactly one of them ends on the last cell, so only following the frog from the start decides. "
           "Difficulty n = number of cells; about n/2 jumps, each depending on the previous one.";
  }
  int min_difficulty() const override { return 4; }
  int max_difficulty() const override { return 64; }
  int prompt_length(int n) const override { return n + 1; }
  int answer_length(int) const override { return 1; }

  static std::vector<char> landed(const std::vector<int>& jump, size_t start = 0) {
    std::vector<char> on(jump.size(), 0);
    for (size_t i = start; i < jump.size(); i += (size_t)jump[i]) on[i] = 1;
    return on;
  }

  Instance generate(int n, uint64_t seed) const override {
    check_difficulty(n);
    Rng rng(seed);
    const bool want_yes = rng.bernoulli(0.5);
    std::vector<int> jump(n);
    for (int attempt = 0;; ++attempt) {
      for (auto& j : jump) j = rng.range(1, 3);
      // Grow the two tracks, always moving the one behind, never onto the other.
      const int second = rng.range(1, 2);
      int pos[2] = {0, second};
      while (pos[0] < n || pos[1] < n) {
        const int behind = pos[0] < n && (pos[1] >= n || pos[0] < pos[1]) ? 0 : 1;
        const int gap = pos[1 - behind] - pos[behind];  // a jump of this length would merge them
        int j;
        do j = rng.range(1, 3);
        while (j == gap);
        jump[pos[behind]] = j;
        pos[behind] += j;
      }
      const bool frog = landed(jump)[n - 1] != 0;
      const bool other = landed(jump, (size_t)second)[n - 1] != 0;
      if (frog != other && frog == want_yes) break;
      if (attempt >= 1000) fail("jumps: no row found for n=", n);  // not reached: ~1 in 3 rows qualifies
    }
    Instance in;
    in.difficulty = n;
    for (int j : jump) in.prompt += (char)('0' + j);
    in.prompt += '=';
    in.answer = std::string(1, landed(jump)[n - 1] ? 'y' : 'n');
    return in;
  }
};

// ---------------------------------------------------------------------------
// jumps-cot: the same problems as jumps (the same prompts, splits and
// instance stream: family() is "jumps"), answered by writing the frog's path
// out first. The answer is the row again, cell by cell, with every cell the
// frog lands on written as a letter (1 -> 'a', 2 -> 'b', 3 -> 'c') and the
// others as their digit, then 'y'/'n': "2132122=" -> "b1c21b2n". Each written
// cell needs only the cell itself (copied from the prompt) and whether one of
// the three written cells before it is a letter that jumps onto it ('a' one
// back, 'b' two back, 'c' three back): one local step per token, n steps in
// all, so the chain of n/2 dependent jumps is carried by the written tokens
// instead of by depth.
class JumpsCot : public Task {
 public:
  std::string name() const override { return "jumps-cot"; }
  std::string family() const override { return "jumps"; }
  std::string description() const override {
    return "the jumps problems (same prompts, splits and difficulty) answered with the frog's path written "
           "out first: the row again, each cell the frog lands on as a letter (1->a, 2->b, 3->c), the others as "
           "their digit, then 'y'/'n' (\"2132122=\" -> \"b1c21b2n\"). Scored on the last character written "
           "(the final 'y'/'n'); the written path (its first n characters) is scored separately. Difficulty n "
           "= number of cells; n written steps, each local.";
  }
  int min_difficulty() const override { return jumps_.min_difficulty(); }
  int max_difficulty() const override { return jumps_.max_difficulty(); }
  int prompt_length(int n) const override { return jumps_.prompt_length(n); }
  int answer_length(int n) const override { return n + 1; }
  int path_length(int n) const override { return n; }
  Instance generate(int n, uint64_t seed) const override {
    Instance in = jumps_.generate(n, seed);
    in.answer = written_path(in.prompt) + in.answer;
    return in;
  }
  // The final answer is the last character written (before EOS), whatever
  // the path before it.
  bool score(const Instance& inst, const std::string& output) const override {
    return !output.empty() && output.back() == inst.answer.back();
  }
  bool path_char(char c) const override { return (c >= '1' && c <= '3') || (c >= 'a' && c <= 'c'); }
  bool score_path(const Instance& inst, const std::string& output) const override {
    const size_t n = inst.answer.size() - 1;
    return output.size() >= n && output.compare(0, n, inst.answer, 0, n) == 0;
  }

  // The path of a jumps prompt ("2132122=" -> "b1c21b2").
  static std::string written_path(const std::string& prompt) {
    std::vector<int> jump;
    for (char c : prompt)
      if (c >= '1' && c <= '3') jump.push_back(c - '0');
    const std::vector<char> on = Jumps::landed(jump);
    std::string path;
    for (size_t i = 0; i < jump.size(); ++i) path += on[i] ? (char)('a' + jump[i] - 1) : (char)('0' + jump[i]);
    return path;
  }

 private:
  Jumps jumps_;
};

const std::map<std::string, std::unique_ptr<Task>>& registry() {
  static const auto r = [] {
    std::map<std::string, std::unique_ptr<Task>> m;
    m["digitsum"] = std::make_unique<RunningSum>("digitsum", 10, 2);
    m["parity"] = std::make_unique<RunningSum>("parity", 2, 6);
    m["addition"] = std::make_unique<Addition>();
    m["reach"] = std::make_unique<Reach>(false);
    m["reach-hard"] = std::make_unique<Reach>(true);
    m["jumps"] = std::make_unique<Jumps>();
    m["jumps-cot"] = std::make_unique<JumpsCot>();
    return m;
  }();
  return r;
}

}  // namespace

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (auto& [k, v] : registry()) names.push_back(k);
  return names;
}

const Task& get_task(const std::string& name) {
  auto it = registry().find(name);
  if (it == registry().end()) {
    std::string known;
    for (auto& n : task_names()) known += (known.empty() ? "" : ", ") + n;
    fail("unknown task '", name, "' (known: ", known, ")");
  }
  return *it->second;
}

uint64_t mix64(uint64_t z) { return splitmix64(z); }

uint64_t hash64(const std::string& s, uint64_t salt) {
  uint64_t h = 0xcbf29ce484222325ull ^ mix64(salt);
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return mix64(h);
}

const char* split_name(Split s) {
  return s == Split::Test ? "test" : s == Split::Validation ? "validation" : "training";
}

Split split_of(const Task& task, const std::string& prompt) {
  const uint64_t h = hash64(task.family() + '\x1f' + prompt, 0x5e11) & 15;
  return h < 2 ? Split::Test : h == 2 ? Split::Validation : Split::Train;
}

Instance sample(const Task& task, Split split, int difficulty, uint64_t index, uint64_t seed) {
  task.check_difficulty(difficulty);
  const uint64_t base = mix64(hash64(task.family(), seed) ^ mix64(index) ^
                              mix64(((uint64_t)difficulty << 2) | (uint64_t)split));
  for (uint64_t attempt = 0; attempt < 100000; ++attempt) {
    Instance in = task.generate(difficulty, mix64(base + attempt * 0x632BE59BD9B4E019ull));
    if (split_of(task, in.prompt) == split) return in;
  }
  fail("task '", task.name(), "' at difficulty ", difficulty, " has no ", split_name(split),
       " instances (its instance space is too small)");
}

std::vector<int> prompt_ids(const Instance& inst) {
  std::vector<int> ids{kBosId};
  for (char c : inst.prompt) ids.push_back(char_id(c));
  return ids;
}

}  // namespace huginn::tasks
