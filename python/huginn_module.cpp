// The `huginn` Python module: huginn.cpp's engine with NumPy arrays in hand.
//
//   m = huginn.Model("models/huginn-tasks")
//   ids = m.tokenizer.encode("2132122=")
//   t = m.trace(ids, steps=16)          # t.latents: [iterations, tokens, d]
//   g = m.generate("2132122=", steps=32, exit="kl:5e-4")
//   for tok in m.generate(ids, stream=True): print(tok.text, tok.steps)
//
// Arrays that hold C++ results (logits, latents, states) are NumPy views of
// the C++ buffers (no copy): each array keeps the object owning its buffer
// alive. The GIL is released while the engine computes; huginn::Error becomes
// huginn.Error (a ValueError), other C++ failures RuntimeError, each with the
// engine's message.
#include <pybind11/functional.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "huginn/decode_spec.h"
#include "huginn/chat.h"
#include "huginn/common.h"
#include "huginn/config.h"
#include "huginn/exit_criteria.h"
#include "huginn/generate.h"
#include "huginn/model.h"
#include "huginn/tasks.h"
#include "huginn/loaded_model.h"
#include "huginn/tokenizer.h"
#include "tensor/kernels.h"

#include <omp.h>

namespace py = pybind11;
using namespace huginn;

namespace {

// ---------------------------------------------------------------------------
// Loading: the engine's loaded-model bundle (load_model: a directory or a
// .gguf file; model, tokenizer, generation config, stop ids read once).
struct Loaded {
  std::string path;
  std::unique_ptr<LoadedModel> bundle;
  const Model* model = nullptr;
  std::optional<Tokenizer> tok;
  GenerationConfig gen;
  std::vector<int> stops;  // what generation stops on by default
};

std::shared_ptr<Loaded> load_model_bundle(const std::string& path) {
  namespace fs = std::filesystem;
  auto b = std::make_shared<Loaded>();
  b->path = path;
  if (!fs::exists(path)) fail("model: ", path, " does not exist");
  b->bundle = std::make_unique<LoadedModel>(load_model(path));
  b->model = &b->bundle->model();
  if (b->bundle->tokenizer()) b->tok = *b->bundle->tokenizer();
  b->gen = b->bundle->generation_config();
  b->stops = b->bundle->stop_ids();  // as `huginn generate`
  return b;
}

// ---------------------------------------------------------------------------
// NumPy views of C++ buffers: the array's base is `owner` (a Python object or
// a capsule) that keeps the buffer alive.
template <class T>
py::array_t<T> view(const T* data, std::vector<py::ssize_t> shape, py::handle owner) {
  return py::array_t<T>(shape, data, owner);
}
// Moves a C++ object to the heap; the capsule deletes it with the last array.
template <class T>
py::capsule own(T* p) {
  return py::capsule(p, [](void* q) { delete static_cast<T*>(q); });
}

// Clears NumPy's WRITEABLE flag (what pybind11 does for its read-only views).
void read_only(py::array& a) {
  py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
}

std::vector<int> to_ids(py::handle h, const char* what = "ids") {
  if (py::isinstance<py::str>(h) || py::isinstance<py::bytes>(h))
    throw py::type_error(std::string(what) + ": expected a sequence of token ids, got a string");
  std::vector<int> ids;
  if (py::isinstance<py::array>(h)) {
    py::array a = py::reinterpret_borrow<py::array>(h);
    if (a.ndim() != 1) throw py::value_error(str(what, ": expected a 1-D array of token ids, got ", a.ndim(), " dimensions"));
    if (!(a.dtype().kind() == 'i' || a.dtype().kind() == 'u'))
      throw py::type_error(str(what, ": expected an integer array of token ids"));
    auto ai = py::array_t<long long, py::array::forcecast>::ensure(a);
    for (py::ssize_t i = 0; i < ai.size(); ++i) {
      const long long v = ai.at(i);
      if (v < 0 || v > INT32_MAX) throw py::value_error(str(what, ": token id ", v, " out of range"));
      ids.push_back((int)v);
    }
    return ids;
  }
  if (!py::isinstance<py::sequence>(h)) throw py::type_error(str(what, ": expected a sequence of token ids"));
  for (py::handle x : py::reinterpret_borrow<py::sequence>(h)) {
    if (!PyIndex_Check(x.ptr()) || PyBool_Check(x.ptr()))
      throw py::type_error(str(what, ": expected token ids (int), got ", std::string(py::str(py::type::of(x)))));
    const long long v = x.cast<long long>();
    if (v < 0 || v > INT32_MAX) throw py::value_error(str(what, ": token id ", v, " out of range"));
    ids.push_back((int)v);
  }
  return ids;
}

const Tokenizer& need_tok(const Loaded& b, const char* what) {
  if (!b.tok)
    throw py::value_error(str(what, " needs the model's tokenizer.json, and ", b.path,
                              " has none; give token ids instead"));
  return *b.tok;
}

// Chat messages: a string (one user turn), or a list of {"role", "content"}
// dicts or (role, content) pairs.
std::vector<ChatMessage> to_messages(py::handle h, const std::string& system) {
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system});
  if (py::isinstance<py::str>(h)) {
    msgs.push_back({"user", h.cast<std::string>()});
    return msgs;
  }
  if (!py::isinstance<py::sequence>(h)) throw py::type_error("chat: expected a string or a list of messages");
  for (py::handle x : py::reinterpret_borrow<py::sequence>(h)) {
    if (py::isinstance<py::dict>(x)) {
      py::dict d = py::reinterpret_borrow<py::dict>(x);
      if (!d.contains("role") || !d.contains("content"))
        throw py::value_error("chat: each message needs 'role' and 'content'");
      msgs.push_back({d["role"].cast<std::string>(), d["content"].cast<std::string>()});
    } else if (py::isinstance<py::sequence>(x) && !py::isinstance<py::str>(x) && py::len(x) == 2) {
      py::sequence s = py::reinterpret_borrow<py::sequence>(x);
      msgs.push_back({s[0].cast<std::string>(), s[1].cast<std::string>()});
    } else {
      throw py::type_error("chat: a message is a {'role': ..., 'content': ...} dict or a (role, content) pair");
    }
  }
  return msgs;
}

// ---------------------------------------------------------------------------
// Keyword arguments shared by the generation methods, with unknown ones
// refused as Python refuses them.
class Kw {
 public:
  Kw(const char* fn, py::kwargs kw) : fn_(fn), kw_(std::move(kw)) {}
  bool has(const char* k) {
    used_.insert(k);
    return kw_.contains(k) && !kw_[k].is_none();
  }
  py::object raw(const char* k) {
    used_.insert(k);
    return kw_.contains(k) ? py::reinterpret_borrow<py::object>(kw_[k]) : py::none();
  }
  template <class T>
  T get(const char* k, T dflt) {
    if (!has(k)) return dflt;
    try {
      return kw_[k].cast<T>();
    } catch (const py::cast_error&) {
      throw py::type_error(str(fn_, "(): ", k, " has the wrong type (", std::string(py::str(py::type::of(kw_[k]))), ")"));
    }
  }
  void finish() {
    for (auto item : kw_) {
      const std::string k = item.first.cast<std::string>();
      if (!used_.count(k)) throw py::type_error(str(fn_, "() got an unexpected keyword argument '", k, "'"));
    }
  }

 private:
  const char* fn_;
  py::kwargs kw_;
  std::set<std::string> used_;
};

int check_range(int v, const char* name, int lo, int hi) {
  if (v < lo || v > hi) throw py::value_error(str(name, " must be in [", lo, ", ", hi, "], got ", v));
  return v;
}

SamplingOptions sampling_from(Kw& kw) {
  SamplingOptions s;
  s.temperature = kw.get<float>("temperature", 0.f);
  s.top_k = kw.get<int>("top_k", 0);
  s.top_p = kw.get<float>("top_p", 1.f);
  s.min_p = kw.get<float>("min_p", 0.f);
  s.repetition_penalty = kw.get<float>("repetition_penalty", 1.f);
  s.seed = kw.get<uint64_t>("seed", 0);
  s.validate();
  return s;
}

std::vector<int> stops_from(const Loaded& b, Kw& kw) {
  std::vector<int> s = kw.get<bool>("default_stops", true) ? b.stops : std::vector<int>{};
  if (kw.has("stop_tokens")) {
    auto extra = to_ids(kw.raw("stop_tokens"), "stop_tokens");
    s.insert(s.end(), extra.begin(), extra.end());
  }
  return s;
}

// A custom exit rule written in Python. Called by the C++ decode loop at
// every check, from the thread that runs the generation, with the GIL taken
// for the call: rule(steps, state, logits) -> bool; state is a [T, d] view of
// the pass's state, logits a [vocab] view of the last row's next-token logits
// (None when needs_logits=False). The views are valid during the call only.
ExitCriterion python_rule(py::object fn, bool needs_logits) {
  // The rule's copies live in the options, the decoders and a stream's worker
  // thread; the last one to go releases the Python object under the GIL.
  std::shared_ptr<py::object> holder(new py::object(std::move(fn)), [](py::object* p) {
    py::gil_scoped_acquire g;
    delete p;
  });
  return ExitCriterion::custom(
      [holder](const ExitContext& c) {
        py::gil_scoped_acquire g;
        try {
          // Read-only views of the decode loop's buffers, valid during the call.
          py::array_t<float> st({(py::ssize_t)c.T, (py::ssize_t)c.d}, c.state, py::none());
          read_only(st);
          py::object lg = py::none();
          if (c.logits) {
            py::array_t<float> l({(py::ssize_t)c.vocab}, c.logits, py::none());
            read_only(l);
            lg = l;
          }
          py::object r = (*holder)(c.steps, st, lg);
          return r.cast<bool>();
        } catch (py::error_already_set& e) {
          throw Error(str("exit rule raised ", e.what()));
        } catch (const py::cast_error&) {
          throw Error("exit rule: return True (stop) or False (continue)");
        }
      },
      needs_logits);
}

ExitCriterion exit_from(Kw& kw) {
  py::object e = kw.raw("exit");
  const bool needs_logits = kw.get<bool>("exit_needs_logits", true);
  if (e.is_none()) return ExitCriterion{};
  if (py::isinstance<py::str>(e)) return ExitCriterion::parse(e.cast<std::string>());
  if (PyCallable_Check(e.ptr())) return python_rule(e, needs_logits);
  throw py::type_error("exit: expected a criterion name such as 'kl:5e-4' or a callable rule(steps, state, logits)");
}

GenerateOptions gen_options(const Loaded& b, Kw& kw) {
  const ModelConfig& c = b.model->config();
  GenerateOptions g;
  g.steps = check_range(kw.get<int>("steps", c.mean_recurrence), "steps", 0, 100000);
  g.exit = exit_from(kw);
  g.min_steps = check_range(kw.get<int>("min_steps", 0), "min_steps", 0, 100000);
  g.check_every = check_range(kw.get<int>("check_every", 1), "check_every", 1, 100000);
  g.no_exit_in_prefill = kw.get<bool>("no_exit_in_prefill", false);
  g.cache = kw.get<std::string>("cache", "full");
  g.continuous = kw.get<bool>("continuous", false);
  const std::string cf = kw.get<std::string>("continuous_from", "raw");
  if (cf != "raw" && cf != "latent") throw py::value_error("continuous_from must be 'raw' or 'latent', got '" + cf + "'");
  g.continuous_from = cf == "latent" ? ContinuousFrom::Latent : ContinuousFrom::Raw;
  g.init_scale = kw.get<float>("init_scale", 0.f);
  g.sampling = sampling_from(kw);
  g.seed = g.sampling.seed;
  g.max_new_tokens = check_range(kw.get<int>("max_tokens", 32), "max_tokens", 0, 1 << 24);
  g.stop_tokens = stops_from(b, kw);
  if (kw.has("stop")) {
    py::object s = kw.raw("stop");
    if (py::isinstance<py::str>(s)) g.stop_strings = {s.cast<std::string>()};
    else g.stop_strings = s.cast<std::vector<std::string>>();
    if (!g.stop_strings.empty()) {
      Tokenizer tok = need_tok(b, "stop strings");
      g.token_text = [tok](int id) { return tok.decode({id}, false, true); };
    }
  }
  g.soft_thoughts = check_range(kw.get<int>("soft_thoughts", 0), "soft_thoughts", 0, 1 << 20);
  g.soft_top_k = kw.get<int>("soft_top_k", 0);
  g.soft_temperature = kw.get<float>("soft_temperature", 1.f);
  g.record_checks = kw.get<bool>("record_checks", false);
  g.record_logits = kw.get<bool>("record_logits", false);
  g.validate(c);
  return g;
}

// A prompt: text (encoded with the model's tokenizer; chat=True wraps it as a
// user turn, or takes a list of messages) or token ids.
std::vector<int> prompt_of(const Loaded& b, py::handle p, bool chat, bool add_special, const std::string& system) {
  std::vector<int> ids;
  if (chat) {
    ids = encode_chat(need_tok(b, "chat"), to_messages(p, system), true);
  } else if (py::isinstance<py::str>(p)) {
    ids = need_tok(b, "a text prompt").encode(p.cast<std::string>(), add_special);
  } else {
    ids = to_ids(p, "prompt");
  }
  if (ids.empty()) throw py::value_error("the prompt holds no tokens");
  return ids;
}

// A batch: a list whose items are prompts themselves (strings or id lists).
bool is_batch(py::handle p, bool chat) {
  if (py::isinstance<py::str>(p) || py::isinstance<py::array>(p) || !py::isinstance<py::sequence>(p)) return false;
  py::sequence s = py::reinterpret_borrow<py::sequence>(p);
  if (py::len(s) == 0) return false;
  py::handle x = s[0];
  if (chat) return !py::isinstance<py::str>(x) && !py::isinstance<py::dict>(x) &&
                   !(py::isinstance<py::sequence>(x) && py::len(x) == 2 && py::isinstance<py::str>(py::reinterpret_borrow<py::sequence>(x)[0]));
  return py::isinstance<py::str>(x) || py::isinstance<py::sequence>(x) || py::isinstance<py::array>(x);
}

struct PromptArgs {
  bool chat = false, add_special = true;
  std::string system;
};
PromptArgs prompt_args(Kw& kw) {
  PromptArgs a;
  a.chat = kw.get<bool>("chat", false);
  a.add_special = kw.get<bool>("add_special", true);
  a.system = kw.get<std::string>("system", "");
  return a;
}

// ---------------------------------------------------------------------------
// Results.
struct PyGeneration {
  SequenceResult r;
  std::vector<int> prompt;
  std::string text;
  bool has_text = false;
};

PyGeneration make_generation(const Loaded& b, SequenceResult r, std::vector<int> prompt) {
  PyGeneration g;
  g.r = std::move(r);
  g.prompt = std::move(prompt);
  if (b.tok) {
    g.text = b.tok->decode(g.r.tokens, false, true);
    g.has_text = true;
  }
  return g;
}

struct PySpeculative {
  SpeculativeResult r;
  std::string text;
  int steps = 0;
};
struct PyParallel {
  DiffusionResult r;
  std::string text;
  int prompt_len = 0;
};

// One streamed token.
struct PyToken {
  int id = 0, steps = 0, seq = 0;
  bool thought = false;
  std::string text;  // what became printable with this token (id -1: the text left at the end)
};

// ---------------------------------------------------------------------------
// Streaming: the generation runs on a worker thread (GIL released); tokens
// come through a queue as the decode loop chooses them. Leaving the loop early
// (close() or garbage collection) stops the generation at its next token.
struct Cancelled {};

class Stream {
 public:
  using Job = std::function<void(const TokenCallback&)>;
  Stream(std::shared_ptr<Loaded> b, Job job, std::function<py::object()> result)
      : b_(std::move(b)), result_fn_(std::move(result)) {
    const int threads = kern::threads();
    worker_ = std::thread([this, job = std::move(job), threads] {
      omp_set_num_threads(threads);
      try {
        job([this](const TokenEvent& ev) { push(ev); });
        finish_text();
      } catch (const Cancelled&) {
      } catch (...) {
        std::lock_guard<std::mutex> l(mu_);
        error_ = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        done_ = true;
      }
      cv_.notify_all();
    });
  }
  ~Stream() { stop(); }

  PyToken next() {
    std::unique_lock<std::mutex> l(mu_, std::defer_lock);
    {
      py::gil_scoped_release nogil;
      l.lock();
      cv_.wait(l, [&] { return !q_.empty() || done_; });
    }
    if (!q_.empty()) {
      PyToken t = q_.front();
      q_.pop_front();
      return t;
    }
    l.unlock();
    join();
    if (error_) {
      auto e = error_;
      error_ = nullptr;
      std::rethrow_exception(e);
    }
    throw py::stop_iteration();
  }
  // The result (Generation, list of them, or the mode's result) once the
  // stream is exhausted; None before.
  py::object result() {
    std::lock_guard<std::mutex> l(mu_);
    if (!done_ || error_ || cancel_) return py::none();
    return result_fn_();
  }
  void stop() {
    cancel_ = true;
    join();
  }

 private:
  void push(const TokenEvent& ev) {
    if (cancel_) throw Cancelled{};
    PyToken t{ev.token, ev.steps, ev.seq, ev.thought, ""};
    if (b_->tok && !ev.thought) {
      auto it = text_.find(ev.seq);
      if (it == text_.end()) it = text_.emplace(ev.seq, TextStream(*b_->tok)).first;
      t.text = it->second.push(ev.token);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      q_.push_back(std::move(t));
    }
    cv_.notify_all();
  }
  void finish_text() {
    for (auto& [seq, ts] : text_) {
      std::string rest = ts.flush();
      if (rest.empty()) continue;
      std::lock_guard<std::mutex> l(mu_);
      q_.push_back(PyToken{-1, 0, seq, false, rest});
    }
  }
  void join() {
    if (!worker_.joinable()) return;
    py::gil_scoped_release nogil;  // a Python exit rule on the worker needs the GIL
    worker_.join();
  }

  std::shared_ptr<Loaded> b_;
  std::function<py::object()> result_fn_;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<PyToken> q_;
  std::map<int, TextStream> text_;
  bool done_ = false;
  std::atomic<bool> cancel_{false};
  std::exception_ptr error_;
};

// ---------------------------------------------------------------------------
// The latent trace: the state after every iteration of one forward pass.
struct PyTrace {
  std::vector<int> ids, positions;
  int T = 0, d = 0, V = 0, N = 0;
  float init_scale = 0.f;
  uint64_t seed = 0;
  std::vector<float> states, latents, initial, logits;  // [N,T,d] x2, [T,d], [N,P,V]
  std::vector<std::pair<std::string, std::vector<double>>> exit_values;
};

const std::vector<ExitKind> kTraceCriteria = {ExitKind::KL,         ExitKind::MinpKL, ExitKind::EntropyDiff,
                                              ExitKind::LatentDiff, ExitKind::Cosine, ExitKind::ArgmaxStability};

// The same computation as tasks::trace_latents (and so `huginn trace`), with
// the logits of the chosen positions and every exit criterion's value on the
// way (what a prefill pass of this input would see at each check).
void run_trace(const Model& m, PyTrace& tr) {
  const ModelConfig& c = m.config();
  const int T = tr.T, d = tr.d, V = tr.V, N = tr.N;
  m.check_tokens(tr.ids.data(), T, 0);
  int minpos = T - 1;
  for (int p : tr.positions) minpos = std::min(minpos, p);
  const int rows = T - minpos;  // logits of the last `rows` positions
  const int P = (int)tr.positions.size();
  tr.states.resize((size_t)N * T * d);
  tr.latents.resize((size_t)N * T * d);
  tr.initial.resize((size_t)T * d);
  tr.logits.resize((size_t)N * P * V);
  std::vector<float> lg((size_t)rows * V);
  std::vector<ExitTracker> trackers;
  std::vector<ExitCriterion> crits;
  for (ExitKind k : kTraceCriteria) {
    ExitCriterion cr;
    cr.kind = k;
    cr.threshold = ExitCriterion::default_threshold(k);
    crits.push_back(cr);
  }
  for (auto& cr : crits) trackers.emplace_back(cr, V, c.n_embd);
  tr.exit_values.clear();
  for (auto& cr : crits) tr.exit_values.push_back({ExitCriterion::name(cr.kind), std::vector<double>(N)});

  Workspace ws;
  std::vector<float> e((size_t)T * d), s((size_t)T * d);
  m.embed(tr.ids.data(), T, e.data());
  m.prelude(e.data(), T, 0, nullptr, ws);
  m.init_state(s.data(), T, tr.init_scale, tr.seed);
  std::memcpy(tr.initial.data(), s.data(), sizeof(float) * s.size());
  for (auto& t : trackers) t.reset(s.data(), T);
  for (int k = 0; k < N; ++k) {
    for (auto& t : trackers) t.before_iteration(s.data(), T);
    m.core_iteration(s.data(), e.data(), T, 0, nullptr, k, ws);
    std::memcpy(&tr.states[(size_t)k * T * d], s.data(), sizeof(float) * T * d);
    m.head(s.data(), T, 0, nullptr, &tr.latents[(size_t)k * T * d], lg.data(), rows, ws);
    for (int j = 0; j < P; ++j)
      std::memcpy(&tr.logits[((size_t)k * P + j) * V], &lg[(size_t)(tr.positions[j] - minpos) * V], sizeof(float) * V);
    const float* last = &lg[(size_t)(rows - 1) * V];
    for (size_t i = 0; i < trackers.size(); ++i) tr.exit_values[i].second[k] = trackers[i].value(last, s.data(), T);
  }
}

py::dict trajectory_dict(const tasks::Trajectory& t) {
  py::dict d;
  d["norm"] = py::array_t<double>(t.norm.size(), t.norm.data());
  d["dist_to_final"] = py::array_t<double>(t.dist_to_final.size(), t.dist_to_final.data());
  d["rel_change"] = py::array_t<double>(t.rel_change.size(), t.rel_change.data());
  d["settle_iteration"] = t.settle_iteration;
  d["period"] = t.period;
  d["behaviour"] = t.behaviour;
  d["summary"] = t.summary;
  d["pc1"] = py::array_t<double>(t.pc1.size(), t.pc1.data());
  d["pc2"] = py::array_t<double>(t.pc2.size(), t.pc2.data());
  d["explained"] = py::make_tuple(t.explained[0], t.explained[1]);
  return d;
}

// ---------------------------------------------------------------------------
// The Python-facing model.
struct PyTokenizer {
  std::shared_ptr<Loaded> b;  // keeps the model's bundle (and tokenizer) alive
  const Tokenizer& tok() const { return *b->tok; }
};

struct PyModel {
  std::shared_ptr<Loaded> b;
  explicit PyModel(const std::string& path) {
    py::gil_scoped_release nogil;
    b = load_model_bundle(path);
  }
  const Model& m() const { return *b->model; }
  const ModelConfig& cfg() const { return b->model->config(); }
  int steps_or_default(py::object steps) const {
    if (steps.is_none()) return cfg().mean_recurrence;
    return steps.cast<int>();
  }
};

// init="zero" (the zero initial state) or an integer seed (the reference's
// random initial state at init_scale, default 1).
void init_of(py::object init, float init_scale, float& scale, uint64_t& seed) {
  if (py::isinstance<py::str>(init)) {
    const std::string s = init.cast<std::string>();
    if (s != "zero") throw py::value_error("init must be 'zero' or an integer seed, got '" + s + "'");
    scale = 0.f;
    seed = 0;
    return;
  }
  if (!py::isinstance<py::int_>(init)) throw py::type_error("init must be 'zero' or an integer seed");
  const long long v = init.cast<long long>();
  if (v < 0) throw py::value_error("init: the seed must be >= 0");
  if (!(init_scale > 0.f)) throw py::value_error("init_scale must be > 0 with a seeded initial state");
  scale = init_scale;
  seed = (uint64_t)v;
}

py::object generate_impl(PyModel& self, py::object prompt, py::kwargs kwargs) {
  Kw kw("generate", kwargs);
  const PromptArgs pa = prompt_args(kw);
  const bool stream = kw.get<bool>("stream", false);
  GenerateOptions g = gen_options(*self.b, kw);
  kw.finish();
  const bool batch = is_batch(prompt, pa.chat);
  std::vector<std::vector<int>> prompts;
  if (batch) {
    for (py::handle p : py::reinterpret_borrow<py::sequence>(prompt))
      prompts.push_back(prompt_of(*self.b, p, pa.chat, pa.add_special, pa.system));
  } else {
    prompts.push_back(prompt_of(*self.b, prompt, pa.chat, pa.add_special, pa.system));
  }
  auto b = self.b;
  if (stream) {
    auto out = std::make_shared<std::vector<SequenceResult>>();
    auto job = [b, prompts, g, out](const TokenCallback& cb) { *out = generate(*b->model, prompts, g, cb); };
    auto result = [b, prompts, out, batch]() -> py::object {
      std::vector<PyGeneration> gs;
      for (size_t i = 0; i < out->size(); ++i) gs.push_back(make_generation(*b, (*out)[i], prompts[i]));
      if (batch) return py::cast(std::move(gs));
      return py::cast(std::move(gs[0]));
    };
    return py::cast(std::make_unique<Stream>(b, job, result));
  }
  std::vector<SequenceResult> rs;
  {
    py::gil_scoped_release nogil;
    rs = generate(*b->model, prompts, g);
  }
  std::vector<PyGeneration> gs;
  for (size_t i = 0; i < rs.size(); ++i) gs.push_back(make_generation(*b, std::move(rs[i]), prompts[i]));
  if (batch) return py::cast(std::move(gs));
  return py::cast(std::move(gs[0]));
}

py::object speculative_impl(PyModel& self, py::object prompt, py::kwargs kwargs) {
  Kw kw("speculative", kwargs);
  const PromptArgs pa = prompt_args(kw);
  const bool stream = kw.get<bool>("stream", false);
  SpeculativeOptions s;
  s.steps = check_range(kw.get<int>("steps", self.cfg().mean_recurrence), "steps", 0, 100000);
  s.draft_steps = check_range(kw.get<int>("draft", std::max(1, s.steps / 8)), "draft", 0, 100000);
  s.lookahead = check_range(kw.get<int>("lookahead", 8), "lookahead", 1, 100000);
  s.threshold = kw.get<double>("threshold", 1.0);
  s.max_new_tokens = check_range(kw.get<int>("max_tokens", 32), "max_tokens", 0, 1 << 24);
  s.cache = kw.get<std::string>("cache", "full");
  s.init_scale = kw.get<float>("init_scale", 0.f);
  s.sampling = sampling_from(kw);
  s.stop_tokens = stops_from(*self.b, kw);
  kw.finish();
  s.validate(self.cfg());
  const std::vector<int> ids = prompt_of(*self.b, prompt, pa.chat, pa.add_special, pa.system);
  auto b = self.b;
  auto wrap = [b, s](SpeculativeResult r) {
    PySpeculative p;
    p.r = std::move(r);
    p.steps = s.steps;
    if (b->tok) p.text = b->tok->decode(p.r.tokens, false, true);
    return p;
  };
  if (stream) {
    auto out = std::make_shared<SpeculativeResult>();
    auto job = [b, ids, s, out](const TokenCallback& cb) { *out = generate_speculative(*b->model, ids, s, cb); };
    return py::cast(std::make_unique<Stream>(b, job, [out, wrap]() { return py::cast(wrap(*out)); }));
  }
  SpeculativeResult r;
  {
    py::gil_scoped_release nogil;
    r = generate_speculative(*b->model, ids, s);
  }
  return py::cast(wrap(std::move(r)));
}

py::object parallel_impl(PyModel& self, py::object prompt, py::kwargs kwargs) {
  Kw kw("parallel", kwargs);
  const PromptArgs pa = prompt_args(kw);
  const bool stream = kw.get<bool>("stream", false);
  DiffusionOptions o;
  o.steps = check_range(kw.get<int>("steps", self.cfg().mean_recurrence), "steps", 0, 100000);
  o.inner_recurrence = check_range(kw.get<int>("inner", 4), "inner", 1, 100000);
  o.max_wavefront = check_range(kw.get<int>("wave", 128), "wave", 0, 1 << 20);
  o.exit_t = kw.get<double>("exit", 0.03);
  o.freeze = DiffusionOptions::parse_freeze(kw.get<std::string>("freeze", "latent-diff"));
  o.ema_embeds = kw.get<float>("ema", 0.1f);
  o.state_mixing = kw.get<float>("mix", 0.5f);
  o.continuous = kw.get<bool>("continuous", false);
  o.full_prefill = kw.get<bool>("prefill", true);
  o.max_passes = check_range(kw.get<int>("max_passes", 4096), "max_passes", 0, 1 << 30);
  o.max_new_tokens = check_range(kw.get<int>("max_tokens", 32), "max_tokens", 0, 1 << 24);
  o.cache = kw.get<std::string>("cache", "latest-m4-compress-s4");
  o.sampling = sampling_from(kw);
  o.stop_tokens = stops_from(*self.b, kw);
  kw.finish();
  o.validate(self.cfg());
  const std::vector<int> ids = prompt_of(*self.b, prompt, pa.chat, pa.add_special, pa.system);
  auto b = self.b;
  const int P = (int)ids.size();
  auto wrap = [b, P](DiffusionResult r) {
    PyParallel p;
    p.r = std::move(r);
    p.prompt_len = P;
    if (b->tok) p.text = b->tok->decode(p.r.tokens, false, true);
    return p;
  };
  if (stream) {
    auto out = std::make_shared<DiffusionResult>();
    auto job = [b, ids, o, out](const TokenCallback& cb) { *out = generate_diffusion(*b->model, ids, o, cb); };
    return py::cast(std::make_unique<Stream>(b, job, [out, wrap]() { return py::cast(wrap(*out)); }));
  }
  DiffusionResult r;
  {
    py::gil_scoped_release nogil;
    r = generate_diffusion(*b->model, ids, o);
  }
  return py::cast(wrap(std::move(r)));
}

// A conversation that keeps its KV cache between turns.
struct PySession {
  std::shared_ptr<Loaded> b;
  std::unique_ptr<Session> s;
  PromptArgs pa;
};

// ---------------------------------------------------------------------------
// Tasks.
std::vector<int> difficulties_of(py::handle h) {
  std::vector<int> out;
  if (py::isinstance<py::int_>(h)) return {h.cast<int>()};
  if (py::isinstance<py::str>(h)) {
    const std::string s = h.cast<std::string>();
    size_t i = 0;
    while (i <= s.size()) {
      size_t j = s.find(',', i);
      if (j == std::string::npos) j = s.size();
      const std::string item = s.substr(i, j - i);
      i = j + 1;
      const size_t dash = item.find('-');
      long long a = 0, c = 0;
      if (dash == std::string::npos) {
        if (!parse_int(item, a)) throw py::value_error("difficulty: '" + item + "' is not a number or a range A-B");
        c = a;
      } else if (!parse_int(item.substr(0, dash), a) || !parse_int(item.substr(dash + 1), c) || c < a) {
        throw py::value_error("difficulty: '" + item + "' is not a range A-B");
      }
      for (long long x = a; x <= c; ++x) out.push_back((int)x);
    }
    return out;
  }
  return py::cast<std::vector<int>>(h);
}

}  // namespace

PYBIND11_MODULE(huginn, mod) {
  mod.doc() =
      "huginn.cpp from Python: recurrent-depth language models (Huginn-0125 family) with per-token depth, "
      "every iteration's latent state as a NumPy array, and the engine's generation modes.";
  static py::exception<Error> exc(mod, "Error", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const Error& e) {
      exc(e.what());
    }
  });

  mod.def(
      "set_threads", [](int n) { kern::set_threads(n); }, py::arg("n"),
      "Threads for compute (0: all cores), as the CLI's -t.");
  mod.def("threads", [] { return kern::threads(); }, "Threads used for compute.");

  // ---- config ----
  py::class_<ModelConfig>(mod, "Config", "The model's config.json (read only).")
      .def_readonly("arch", &ModelConfig::arch)
      .def_readonly("name", &ModelConfig::name)
      .def_readonly("n_embd", &ModelConfig::n_embd)
      .def_readonly("n_heads", &ModelConfig::n_heads)
      .def_readonly("head_dim", &ModelConfig::head_dim)
      .def_readonly("intermediate_size", &ModelConfig::intermediate_size)
      .def_readonly("vocab_size", &ModelConfig::vocab_size)
      .def_readonly("block_size", &ModelConfig::block_size)
      .def_readonly("n_prelude", &ModelConfig::n_prelude)
      .def_readonly("n_core", &ModelConfig::n_core)
      .def_readonly("n_coda", &ModelConfig::n_coda)
      .def_readonly("mean_recurrence", &ModelConfig::mean_recurrence)
      .def_readonly("mean_backprop_depth", &ModelConfig::mean_backprop_depth)
      .def_readonly("norm_eps", &ModelConfig::norm_eps)
      .def_readonly("rope_base", &ModelConfig::rope_base)
      .def_readonly("tie_embeddings", &ModelConfig::tie_embeddings)
      .def_property_readonly("params", &ModelConfig::params_total)
      .def("to_dict",
           [](const ModelConfig& c) { return py::module_::import("json").attr("loads")(config_to_json(c).dump()); })
      .def("__repr__", [](const ModelConfig& c) {
        return str("Config(", c.name, ": d=", c.n_embd, ", heads=", c.n_heads, ", layers ", c.n_prelude, "/",
                   c.n_core, "/", c.n_coda, ", vocab=", c.vocab_size, ", context=", c.block_size,
                   ", mean_recurrence=", c.mean_recurrence, ")");
      });

  // ---- tokenizer ----
  py::class_<PyTokenizer>(mod, "Tokenizer", "The model's tokenizer.json (Hugging Face BPE, exact parity).")
      .def(
          "encode",
          [](const PyTokenizer& t, const std::string& text, bool add_special) {
            py::gil_scoped_release nogil;
            return t.tok().encode(text, add_special);
          },
          py::arg("text"), py::arg("add_special") = true,
          "Text to ids; add_special runs the post-processor (e.g. a leading BOS), as transformers and the CLI's "
          "-p do.")
      .def(
          "decode",
          [](const PyTokenizer& t, py::object ids, bool skip_special) {
            return t.tok().decode(to_ids(ids), skip_special);
          },
          py::arg("ids"), py::arg("skip_special") = false)
      .def(
          "chat",
          [](const PyTokenizer& t, py::object messages, bool add_generation_prompt, const std::string& system) {
            return encode_chat(t.tok(), to_messages(messages, system), add_generation_prompt);
          },
          py::arg("messages"), py::arg("add_generation_prompt") = true, py::arg("system") = "",
          "Huginn's chat format, encoded: messages is a string (one user turn) or a list of {'role', 'content'} "
          "dicts / (role, content) pairs.")
      .def(
          "format_chat",
          [](const PyTokenizer& t, py::object messages, bool add_generation_prompt, const std::string& system) {
            return format_chat(to_messages(messages, system), add_generation_prompt);
          },
          py::arg("messages"), py::arg("add_generation_prompt") = true, py::arg("system") = "",
          "The chat format's text (what chat() encodes).")
      .def("token_to_id", [](const PyTokenizer& t, const std::string& s) {
        const int id = t.tok().token_to_id(s);
        return id < 0 ? py::object(py::none()) : py::object(py::int_(id));
      })
      .def("id_to_token", [](const PyTokenizer& t, int id) { return t.tok().id_to_token(id); })
      .def("is_special", [](const PyTokenizer& t, int id) { return t.tok().is_special(id); })
      .def_property_readonly("vocab_size", [](const PyTokenizer& t) { return t.tok().vocab_size(); })
      .def("__len__", [](const PyTokenizer& t) { return t.tok().vocab_size(); });

  // ---- results ----
  py::class_<PyToken>(mod, "Token", "One streamed token: its id, the iterations that produced it, its text.")
      .def_readonly("id", &PyToken::id)
      .def_readonly("steps", &PyToken::steps)
      .def_readonly("seq", &PyToken::seq)
      .def_readonly("thought", &PyToken::thought)
      .def_readonly("text", &PyToken::text)
      .def("__iter__", [](const PyToken& t) { return py::iter(py::make_tuple(t.id, t.steps)); })
      .def("__repr__", [](const PyToken& t) {
        return str("Token(id=", t.id, ", steps=", t.steps, t.seq ? str(", seq=", t.seq) : "", t.thought ? ", thought" : "",
                   ", text=", std::string(py::repr(py::str(t.text))), ")");
      });

  py::class_<PyGeneration>(mod, "Generation", "The result of generate() for one prompt.")
      .def_property_readonly("tokens", [](const PyGeneration& g) { return g.r.tokens; })
      .def_property_readonly("steps", [](const PyGeneration& g) { return g.r.steps; },
                             "iterations that produced each token (index 0: the prompt pass)")
      .def_property_readonly("prompt", [](const PyGeneration& g) { return g.prompt; })
      .def_property_readonly("text", [](const PyGeneration& g) { return g.has_text ? py::object(py::str(g.text)) : py::object(py::none()); })
      .def_property_readonly("thought_tokens", [](const PyGeneration& g) { return g.r.thought_tokens; })
      .def_property_readonly("thought_steps", [](const PyGeneration& g) { return g.r.thought_steps; })
      .def_property_readonly("stop_reason", [](const PyGeneration& g) { return g.r.stop_reason; })
      .def_property_readonly("kv_bytes", [](const PyGeneration& g) { return g.r.kv_bytes; })
      .def_property_readonly("core_iterations", [](const PyGeneration& g) { return g.r.core_iterations; })
      .def_property_readonly(
          "checks",
          [](const PyGeneration& g) {
            py::list passes;
            for (auto& pass : g.r.checks) {
              py::list l;
              for (auto& c : pass) l.append(py::make_tuple(c.steps, c.value, c.exited));
              passes.append(l);
            }
            return passes;
          },
          "with record_checks: per pass, the (iterations, value, exited) of every criterion check")
      .def_property_readonly(
          "step_logits",
          [](py::object self) -> py::object {
            auto& g = self.cast<PyGeneration&>();
            if (g.r.step_logits.empty()) return py::none();
            const size_t V = g.r.step_logits.size() / std::max<size_t>(1, g.r.tokens.size());
            return view(g.r.step_logits.data(), {(py::ssize_t)(g.r.step_logits.size() / V), (py::ssize_t)V}, self);
          },
          "with record_logits: the logits each token was chosen from, [tokens, vocab] (a view)")
      .def_property_readonly("mean_steps",
                             [](const PyGeneration& g) {
                               double s = 0;
                               for (int x : g.r.steps) s += x;
                               return g.r.steps.empty() ? 0.0 : s / g.r.steps.size();
                             })
      .def("__repr__", [](const PyGeneration& g) {
        return str("Generation(", g.r.tokens.size(), " tokens, stop: ", g.r.stop_reason,
                   g.has_text ? ", text=" + std::string(py::repr(py::str(g.text))) : "", ")");
      });

  py::class_<PySpeculative>(mod, "SpeculativeResult")
      .def_property_readonly("tokens", [](const PySpeculative& s) { return s.r.tokens; })
      .def_property_readonly("text", [](const PySpeculative& s) { return s.text; })
      .def_property_readonly("steps", [](const PySpeculative& s) { return std::vector<int>(s.r.tokens.size(), s.steps); },
                             "the verifier's depth for every token")
      .def_property_readonly("forward_trace", [](const PySpeculative& s) { return s.r.forward_trace; },
                             "[input tokens, first position, iterations] of every forward")
      .def_property_readonly("rounds", [](const PySpeculative& s) { return s.r.rounds; })
      .def_property_readonly("drafted", [](const PySpeculative& s) { return s.r.drafted; })
      .def_property_readonly("accepted", [](const PySpeculative& s) { return s.r.accepted; })
      .def_property_readonly("acceptance_rate", [](const PySpeculative& s) { return s.r.acceptance_rate(); })
      .def_property_readonly("core_iterations", [](const PySpeculative& s) { return s.r.core_iterations; })
      .def_property_readonly("kv_bytes", [](const PySpeculative& s) { return s.r.kv_bytes; })
      .def_property_readonly("stop_reason", [](const PySpeculative& s) { return s.r.stop_reason; })
      .def("__repr__", [](const PySpeculative& s) {
        return str("SpeculativeResult(", s.r.tokens.size(), " tokens, acceptance ", s.r.accepted, "/", s.r.drafted,
                   " over ", s.r.rounds, " rounds)");
      });

  py::class_<PyParallel>(mod, "ParallelResult")
      .def_property_readonly("tokens", [](const PyParallel& p) { return p.r.tokens; })
      .def_property_readonly("sequence", [](const PyParallel& p) { return p.r.sequence; })
      .def_property_readonly("text", [](const PyParallel& p) { return p.text; })
      .def_property_readonly(
          "steps",
          [](const PyParallel& p) {
            auto& rp = p.r.recurrence_per_position;
            const size_t P = std::min<size_t>(p.prompt_len, rp.size());
            return std::vector<int>(rp.begin() + P, rp.end());
          },
          "iterations every generated position received")
      .def_property_readonly("recurrence_per_position", [](const PyParallel& p) { return p.r.recurrence_per_position; })
      .def_property_readonly("stable_per_position", [](const PyParallel& p) { return p.r.stable_per_position; })
      .def_property_readonly("passes", [](const PyParallel& p) { return p.r.passes; })
      .def_property_readonly("core_forward_passes", [](const PyParallel& p) { return p.r.core_forward_passes; })
      .def_property_readonly("tokens_forward", [](const PyParallel& p) { return p.r.tokens_forward; })
      .def_property_readonly("cache_clears", [](const PyParallel& p) { return p.r.cache_clears; })
      .def_property_readonly("standing_waves", [](const PyParallel& p) { return p.r.standing_waves; })
      .def_property_readonly("pass_trace", [](const PyParallel& p) { return p.r.pass_trace; })
      .def_property_readonly("core_iterations", [](const PyParallel& p) { return p.r.core_iterations; })
      .def_property_readonly("kv_bytes", [](const PyParallel& p) { return p.r.kv_bytes; })
      .def("__repr__", [](const PyParallel& p) {
        return str("ParallelResult(", p.r.tokens.size(), " tokens, ", p.r.passes, " passes)");
      });

  py::class_<Stream>(mod, "Stream",
                     "Tokens as the engine chooses them (generate(..., stream=True)); .result once exhausted.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", &Stream::next)
      .def_property_readonly("result", &Stream::result)
      .def("close", &Stream::stop, "Stop the generation (at its next token).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](Stream& s, py::args) { s.stop(); });

  py::class_<PyTrace>(mod, "Trace", "Every iteration's state of one forward pass (Model.trace).")
      .def_property_readonly("ids", [](const PyTrace& t) { return t.ids; })
      .def_property_readonly("steps", [](const PyTrace& t) { return t.N; })
      .def_property_readonly("positions", [](const PyTrace& t) { return t.positions; })
      .def_property_readonly(
          "latents", [](py::object self) { auto& t = self.cast<PyTrace&>(); return view(t.latents.data(), {t.N, t.T, t.d}, self); },
          "[iterations, tokens, d]: ln_f of the state after each iteration (what the coda reads); a view")
      .def_property_readonly(
          "states", [](py::object self) { auto& t = self.cast<PyTrace&>(); return view(t.states.data(), {t.N, t.T, t.d}, self); },
          "[iterations, tokens, d]: the raw state after each iteration; a view")
      .def_property_readonly(
          "initial_state", [](py::object self) { auto& t = self.cast<PyTrace&>(); return view(t.initial.data(), {t.T, t.d}, self); },
          "[tokens, d]: the state before the first iteration")
      .def_property_readonly(
          "logits",
          [](py::object self) {
            auto& t = self.cast<PyTrace&>();
            return view(t.logits.data(), {t.N, (py::ssize_t)t.positions.size(), t.V}, self);
          },
          "[iterations, len(positions), vocab]: next-token logits of the chosen positions after each iteration")
      .def_property_readonly(
          "exit_values",
          [](const PyTrace& t) {
            py::dict d;
            for (auto& [name, v] : t.exit_values) d[py::str(name)] = py::array_t<double>(v.size(), v.data());
            return d;
          },
          "criterion name -> [iterations] array: each exit criterion's value at every iteration, as a prefill "
          "pass of this input checks it (kl against the previous iteration's distribution of the last position, "
          "latent-diff/cosine over every position, ...)")
      .def(
          "analyze",
          [](const PyTrace& t, int position, double tol) {
            const int pos = position < 0 ? t.T + position : position;
            if (pos < 0 || pos >= t.T) throw py::value_error(str("position ", position, " is outside the ", t.T, " positions"));
            auto tr = tasks::analyze_trajectory(&t.states[(size_t)pos * t.d], t.N, t.d, (size_t)t.T * t.d,
                                                &t.initial[(size_t)pos * t.d], tol);
            return trajectory_dict(tr);
          },
          py::arg("position") = -1, py::arg("tol") = 1e-3,
          "The trajectory of one position as `huginn trace` analyses it: norms, distance to the final state, "
          "relative change, settling, PCA, behaviour (fixed point, orbit, slider).")
      .def("__repr__", [](const PyTrace& t) { return str("Trace(", t.N, " iterations x ", t.T, " tokens x d=", t.d, ")"); });

  py::class_<PySession>(mod, "Session", "A conversation that keeps its KV cache between turns (Model.session).")
      .def(
          "turn",
          [](PySession& s, py::object prompt) {
            auto ids = prompt_of(*s.b, prompt, s.pa.chat, s.pa.add_special, s.pa.system);
            SequenceResult r;
            {
              py::gil_scoped_release nogil;
              r = s.s->turn(ids);
            }
            return make_generation(*s.b, std::move(r), ids);
          },
          py::arg("prompt"), "Feeds this turn's tokens (text or ids), then generates.")
      .def_property_readonly("history", [](const PySession& s) { return s.s->history(); })
      .def_property_readonly("length", [](const PySession& s) { return s.s->length(); })
      .def("reset", [](PySession& s) { s.s->reset(); });

  // ---- the model ----
  py::class_<PyModel>(mod, "Model",
                      "A recurrent-depth model loaded from a Hugging Face directory (config.json, safetensors, "
                      "tokenizer.json, generation_config.json).")
      .def(py::init<const std::string&>(), py::arg("path"))
      .def_property_readonly("path", [](const PyModel& m) { return m.b->path; })
      .def_property_readonly("config", [](py::object self) { return py::cast(&self.cast<PyModel&>().cfg(), py::return_value_policy::reference_internal, self); })
      .def_property_readonly("tokenizer",
                             [](const PyModel& m) -> py::object {
                               if (!m.b->tok) return py::none();
                               return py::cast(PyTokenizer{m.b});
                             })
      .def_property_readonly("stop_ids", [](const PyModel& m) { return m.b->stops; },
                             "the ids generation stops on by default")
      .def_property_readonly("generation_config",
                             [](const PyModel& m) {
                               const GenerationConfig& g = m.b->gen;
                               py::dict d;
                               d["bos_token_id"] = g.bos_token_id;
                               d["eos_token_ids"] = g.eos_token_ids;
                               d["pad_token_id"] = g.pad_token_id;
                               d["do_sample"] = g.do_sample;
                               d["temperature"] = g.temperature;
                               d["top_p"] = g.top_p;
                               d["top_k"] = g.top_k;
                               d["min_p"] = g.min_p;
                               d["max_new_tokens"] = g.max_new_tokens;
                               d["from_file"] = g.from_file;
                               return d;
                             })
      .def(
          "forward",
          [](PyModel& self, py::object ids_obj, py::object steps_obj, py::object init, float init_scale,
             bool latents) -> py::object {
            std::vector<int> ids = to_ids(ids_obj);
            if (ids.empty()) throw py::value_error("forward: the input holds no tokens");
            const int steps = check_range(self.steps_or_default(steps_obj), "steps", 0, 100000);
            float scale = 0.f;
            uint64_t seed = 0;
            init_of(init, init_scale, scale, seed);
            const int T = (int)ids.size(), V = self.cfg().vocab_size, d = self.cfg().n_embd;
            auto* r = new Model::ForwardResult();
            py::capsule owner = own(r);
            {
              py::gil_scoped_release nogil;
              self.m().check_tokens(ids.data(), T, 0);
              Workspace ws;
              self.m().forward(ids.data(), T, steps, *r, ws, nullptr, nullptr, scale, seed);
            }
            py::array lg = view(r->logits.data(), {T, V}, owner);
            if (!latents) return lg;
            return py::make_tuple(lg, view(r->latents.data(), {T, d}, owner));
          },
          py::arg("ids"), py::arg("steps") = py::none(), py::arg("init") = "zero", py::arg("init_scale") = 1.0f,
          py::arg("latents") = false,
          "One forward pass at `steps` iterations (default: mean_recurrence): logits [tokens, vocab]; with "
          "latents=True also ln_f of the final state [tokens, d]. init='zero' or an integer seed (random initial "
          "state at init_scale). The same computation as `huginn forward`.")
      .def(
          "trace",
          [](PyModel& self, py::object ids_obj, py::object steps_obj, py::object positions, py::object init,
             float init_scale) {
            auto t = std::make_unique<PyTrace>();
            t->ids = to_ids(ids_obj);
            if (t->ids.empty()) throw py::value_error("trace: the input holds no tokens");
            t->N = check_range(self.steps_or_default(steps_obj), "steps", 1, 4096);
            t->T = (int)t->ids.size();
            t->d = self.cfg().n_embd;
            t->V = self.cfg().vocab_size;
            init_of(init, init_scale, t->init_scale, t->seed);
            std::vector<int> pos = positions.is_none() ? std::vector<int>{-1}
                                   : py::isinstance<py::int_>(positions) ? std::vector<int>{positions.cast<int>()}
                                                                         : positions.cast<std::vector<int>>();
            if (pos.empty()) throw py::value_error("trace: positions is empty");
            for (int p : pos) {
              const int q = p < 0 ? t->T + p : p;
              if (q < 0 || q >= t->T) throw py::value_error(str("trace: position ", p, " is outside the ", t->T, " input positions"));
              t->positions.push_back(q);
            }
            {
              py::gil_scoped_release nogil;
              run_trace(self.m(), *t);
            }
            return t;
          },
          py::arg("ids"), py::arg("steps") = py::none(), py::arg("positions") = py::none(), py::arg("init") = "zero",
          py::arg("init_scale") = 1.0f,
          "Every iteration's state of one forward pass (no cache), as `huginn trace`: .latents/.states "
          "[iterations, tokens, d], .logits [iterations, positions, vocab] of the chosen positions (default: "
          "the last), .exit_values of every criterion, .analyze().")
      .def("generate", &generate_impl, py::arg("prompt"),
           "generate(prompt, *, steps=mean_recurrence, exit='none'|'kl:5e-4'|callable, min_steps=0, check_every=1, "
           "no_exit_in_prefill=False, cache='full', continuous=False, continuous_from='raw', max_tokens=32, "
           "temperature=0, top_k=0, top_p=1, min_p=0, repetition_penalty=1, seed=0, init_scale=0, stop=None, "
           "stop_tokens=None, default_stops=True, soft_thoughts=0, soft_top_k=0, soft_temperature=1, "
           "record_checks=False, record_logits=False, chat=False, system='', add_special=True, "
           "exit_needs_logits=True, stream=False)\n\n"
           "prompt: text (the model's tokenizer; chat=True: a user turn or a list of messages), token ids, or a "
           "list of prompts (a batch: each sequence exits on its own). Returns a Generation (a list for a batch), "
           "or with stream=True a Stream of Token(id, steps, text) as they are chosen.\n"
           "exit may be a Python callable rule(steps, state, logits) -> bool (True stops), called by the C++ "
           "decode loop at every check with the GIL held: state is the pass's [T, d] state, logits the last "
           "row's next-token logits (None with exit_needs_logits=False, which spares the coda+head per check).")
      .def("speculative", &speculative_impl, py::arg("prompt"),
           "speculative(prompt, *, steps, draft=steps//8, lookahead=8, threshold=1, max_tokens=32, cache='full', "
           "init_scale=0, sampling options, stop_tokens, default_stops, stream=False): self-speculative decoding "
           "(drafts at `draft` iterations, verified at `steps`).")
      .def("parallel", &parallel_impl, py::arg("prompt"),
           "parallel(prompt, *, steps, inner=4, wave=128, exit=0.03, freeze='latent-diff'|'fixed'|'token-stability', "
           "ema=0.1, mix=0.5, continuous=False, prefill=True, max_passes=4096, max_tokens=32, "
           "cache='latest-m4-compress-s4', stream=False): the parallel (diffusion-style) sampler.")
      .def(
          "session",
          [](PyModel& self, py::kwargs kwargs) {
            Kw kw("session", kwargs);
            PySession s;
            s.b = self.b;
            s.pa = prompt_args(kw);
            GenerateOptions g = gen_options(*self.b, kw);
            kw.finish();
            s.s = std::make_unique<Session>(self.m(), g);
            return s;
          },
          "A conversation keeping its KV cache between turns; takes generate()'s options.")
      .def("__repr__", [](const PyModel& m) {
        const ModelConfig& c = m.cfg();
        return str("huginn.Model('", m.b->path, "', d=", c.n_embd, ", vocab=", c.vocab_size, ", ",
                   c.params_total(), " parameters)");
      });

  // ---- tasks ----
  py::module_ tm = mod.def_submodule("tasks", "The built-in reasoning tasks and their evaluation.");
  tm.def("names", &tasks::task_names);
  tm.def(
      "describe",
      [](const std::string& name) {
        const tasks::Task& t = tasks::get_task(name);
        py::dict d;
        d["name"] = t.name();
        d["description"] = t.description();
        d["min_difficulty"] = t.min_difficulty();
        d["max_difficulty"] = t.max_difficulty();
        return d;
      },
      py::arg("task"));
  tm.def(
      "instances",
      [](const std::string& name, int difficulty, int n, uint64_t seed) {
        const tasks::Task& t = tasks::get_task(name);
        t.check_difficulty(difficulty);
        py::list out;
        for (auto& in : tasks::test_instances(t, difficulty, n, seed))
          out.append(py::make_tuple(in.prompt, in.answer));
        return out;
      },
      py::arg("task"), py::arg("difficulty"), py::arg("n") = 10, py::arg("seed") = 0,
      "The first n distinct test instances (prompt, answer), what evaluate() runs on.");
  tm.def(
      "evaluate",
      [](PyModel& m, const std::string& name, py::object difficulty, py::object steps, int n, uint64_t seed,
         const std::string& exit, int min_steps, const std::string& cache, float init_scale) {
        const tasks::Task& task = tasks::get_task(name);
        std::vector<int> diffs;
        if (difficulty.is_none()) {
          if (!tasks::has_task_manifest(m.b->path))
            throw py::value_error("evaluate: give difficulty= (" + m.b->path + " has no tasks.json)");
          for (auto& r : tasks::read_task_manifest(m.b->path).tasks)
            if (r.task == name)
              for (int d = r.min_difficulty; d <= r.max_difficulty; ++d) diffs.push_back(d);
          if (diffs.empty()) throw py::value_error("evaluate: the model was not trained on '" + name + "'; give difficulty=");
        } else {
          diffs = difficulties_of(difficulty);
        }
        if (diffs.empty()) throw py::value_error("evaluate: no difficulties");
        for (int d : diffs) task.check_difficulty(d);
        std::vector<int> st = steps.is_none() ? std::vector<int>{m.cfg().mean_recurrence}
                              : py::isinstance<py::int_>(steps) ? std::vector<int>{steps.cast<int>()}
                                                                : steps.cast<std::vector<int>>();
        if (st.empty()) throw py::value_error("evaluate: steps is empty");
        if (n < 1) throw py::value_error(str("evaluate: n must be >= 1, got ", n));
        const ExitCriterion c = DecodeSpec::parse_exit(exit);
        if (c.kind != ExitKind::None && !(c.threshold > 0))
          throw py::value_error("evaluate: the exit threshold must be > 0");
        tasks::check_char_tokenizer(m.b->path);
        std::vector<tasks::EvalSetting> settings;
        for (int s : st) settings.push_back({s, c});
        tasks::DecodeOptions base;
        base.cache = cache;
        base.init_scale = init_scale;
        base.min_steps = min_steps;
        std::vector<tasks::EvalResult> rs;
        {
          py::gil_scoped_release nogil;
          rs = tasks::evaluate(m.m(), task, diffs, settings, n, seed, base);
        }
        py::list out;
        for (auto& r : rs) {
          py::dict d;
          d["task"] = r.task;
          d["difficulty"] = r.difficulty;
          d["steps"] = r.setting.steps;
          d["exit"] = r.setting.exit.kind == ExitKind::None ? std::string("none") : r.setting.exit.str();
          d["accuracy"] = r.accuracy();
          d["correct"] = r.correct;
          d["n"] = r.n;
          d["distinct"] = r.distinct;
          d["mean_steps"] = r.mean_steps;
          d["mean_first_token_steps"] = r.mean_first_steps;
          d["wall_s"] = r.wall_s;
          d["tokens_per_s"] = r.wall_s > 0 ? (double)r.generated_tokens / r.wall_s : 0.0;
          out.append(d);
        }
        return out;
      },
      py::arg("model"), py::arg("task"), py::arg("difficulty") = py::none(), py::arg("steps") = py::none(),
      py::arg("n") = 100, py::arg("seed") = 0, py::arg("exit") = "none", py::arg("min_steps") = 0,
      py::arg("cache") = "", py::arg("init_scale") = 0.f,
      "Accuracy on fresh test instances, as `huginn eval`: one dict per (difficulty, steps). difficulty: an "
      "int, a list, or '8-48' / '8,16'; default: the model's trained range (tasks.json).");
}
