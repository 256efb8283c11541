// The Ouro (LoopLM) fixture cases (tests/data/golden/ouro, format in its
// README.md): cases.json groups its cases by kind ("forward", "early_exit",
// "weighted_exit", "exit_rule", "generate", "loss", "debug"); each handler
// below checks one case against the original modeling code's tensors, with
// the fixture's tolerances (|d| <= atol + rtol * max|ref| for float tensors,
// 1e-5 for probabilities, exact for ids and exit steps).
//
// Besides the original's semantics (every loop computed, per-token exit
// decisions), the early-exit cases also run the engine's stopping exit
// (--exit gate:THRESHOLD): the pass must stop at the fixture's exit step.
#include <algorithm>
#include <map>
#include <cmath>
#include <cstring>

#include "golden.h"
#include "huginn/exit_criteria.h"
#include "huginn/generate.h"

namespace huginn::cli::golden {
namespace {

struct OuroTol {
  double atol = 1e-4, rtol = 1e-4, patol = 1e-5;
};
OuroTol tol_of(const json& top) {
  OuroTol t;
  if (top.contains("tolerances")) {
    const json& j = top["tolerances"];
    if (j.contains("float32_reimplementation")) {
      t.atol = j["float32_reimplementation"].value("atol", t.atol);
      t.rtol = j["float32_reimplementation"].value("rtol", t.rtol);
    }
    if (j.contains("probabilities")) t.patol = j["probabilities"].value("atol", t.patol);
  }
  return t;
}

// Float tensors: |d| <= atol + rtol * max|ref| (the fixture's rule).
std::string cmp(const std::string& what, const std::vector<float>& got, const TensorView& exp, double atol,
                double rtol) {
  if ((size_t)exp.numel() != got.size())
    return str(what, ": ", got.size(), " values, expected ", exp.numel(), " ", exp.shape_str());
  std::vector<float> e = exp.to_f32();
  double mx = 0;
  for (float v : e) mx = std::max(mx, std::fabs((double)v));
  const double lim = atol + rtol * mx;
  double worst = 0;
  size_t wi = 0, bad = 0;
  for (size_t i = 0; i < e.size(); ++i) {
    const double d = std::fabs((double)got[i] - e[i]);
    if (!(d <= lim)) ++bad;
    if (!(d <= worst)) {
      worst = d;
      wi = i;
    }
  }
  if (!bad) return "";
  return str(what, ": ", bad, " of ", e.size(), " values off (limit ", lim, "), worst at ", wi, ": ", got[wi], " vs ",
             e[wi]);
}

// Integer tensors (I64): exact.
std::string cmp_ids(const std::string& what, const std::vector<int>& got, const TensorView& exp) {
  if ((size_t)exp.numel() != got.size()) return str(what, ": ", got.size(), " values, expected ", exp.numel());
  if (exp.dtype != DType::I64) return str(what, ": expected tensor is not I64");
  const int64_t* e = reinterpret_cast<const int64_t*>(exp.data);
  for (size_t i = 0; i < got.size(); ++i)
    if (got[i] != e[i]) {
      std::string g, w;
      for (size_t j = 0; j < got.size(); ++j) {
        g += std::to_string(got[j]) + " ";
        w += std::to_string(e[j]) + " ";
      }
      return str(what, " differ: got [", g, "] expected [", w, "]");
    }
  return "";
}

std::vector<int> ids_from(const TensorView& t) {
  std::vector<int> v;
  const int64_t* p = reinterpret_cast<const int64_t*>(t.data);
  for (int64_t i = 0; i < t.numel(); ++i) v.push_back((int)p[i]);
  return v;
}

void add(std::string& err, const std::string& e) {
  if (!e.empty()) err += (err.empty() ? "" : "; ") + e;
}

// Every loop of one call: hidden [T,S,H], gate logits [T,S], step logits
// [T,S,V] (S rows, `logit_rows` last rows of logits per step).
struct Loops {
  int T = 0, S = 0;
  std::vector<float> hidden, gates, logits;
};
Loops run_loops(const Model& m, const std::vector<int>& ids, int T, KVCache* cache = nullptr,
                const TraceFn* trace = nullptr, int logit_rows = -1) {
  const ModelConfig& c = m.config();
  const int S = (int)ids.size(), H = c.n_embd, V = c.vocab_size;
  if (logit_rows < 0) logit_rows = S;
  const int pos0 = cache ? cache->length() : 0;
  m.check_tokens(ids.data(), S, pos0);
  Workspace ws;
  std::vector<float> e((size_t)S * H), s((size_t)S * H), lg((size_t)logit_rows * V), g(S);
  m.embed(ids.data(), S, e.data());
  if (trace) (*trace)("embed", e.data(), S, H);
  m.prelude(e.data(), S, pos0, cache, ws, trace);
  m.init_state(s.data(), S, 0.f, 0, e.data());
  Loops r;
  r.T = T;
  r.S = S;
  for (int t = 0; t < T; ++t) {
    m.core_iteration(s.data(), e.data(), S, pos0, cache, t, ws, trace);
    r.hidden.insert(r.hidden.end(), s.begin(), s.end());
    m.exit_gate(s.data(), S, g.data());
    r.gates.insert(r.gates.end(), g.begin(), g.end());
    m.head(s.data(), S, pos0, cache, nullptr, lg.data(), logit_rows, ws);
    r.logits.insert(r.logits.end(), lg.begin(), lg.end());
  }
  return r;
}

// Column s of a [T, S] step-major tensor.
std::vector<float> column(const std::vector<float>& v, int T, int S, int s) {
  std::vector<float> c(T);
  for (int t = 0; t < T; ++t) c[t] = v[(size_t)t * S + s];
  return c;
}

// pdf and cdf [T, S] of gate logits [T, S], per token.
void distributions(const std::vector<float>& gates, int T, int S, std::vector<float>& pdf, std::vector<float>& cdf) {
  pdf.assign((size_t)T * S, 0.f);
  cdf.assign((size_t)T * S, 0.f);
  std::vector<float> p(T), q(T);
  for (int s = 0; s < S; ++s) {
    auto g = column(gates, T, S, s);
    gate_exit_distribution(g.data(), T, p.data(), q.data());
    for (int t = 0; t < T; ++t) {
      pdf[(size_t)t * S + s] = p[t];
      cdf[(size_t)t * S + s] = q[t];
    }
  }
}

std::vector<int> exit_steps(const std::vector<float>& cdf, int T, int S, double thr) {
  std::vector<int> out(S);
  for (int s = 0; s < S; ++s) {
    auto c = column(cdf, T, S, s);
    out[s] = gate_exit_step(c.data(), T, thr);
  }
  return out;
}

// logits[s] = step_logits[steps[s], s]
std::vector<float> gather(const Loops& r, const std::vector<int>& steps, int V) {
  std::vector<float> out((size_t)r.S * V);
  for (int s = 0; s < r.S; ++s)
    std::memcpy(out.data() + (size_t)s * V, r.logits.data() + ((size_t)steps[s] * r.S + s) * V, sizeof(float) * V);
  return out;
}

std::vector<float> weighted(const Loops& r, const std::vector<float>& pdf, int V) {
  std::vector<float> out((size_t)r.S * V, 0.f);
  for (int t = 0; t < r.T; ++t)
    for (int s = 0; s < r.S; ++s) {
      const float w = pdf[(size_t)t * r.S + s];
      const float* l = r.logits.data() + ((size_t)t * r.S + s) * V;
      float* o = out.data() + (size_t)s * V;
      for (int v = 0; v < V; ++v) o[v] += w * l[v];
    }
  return out;
}

std::vector<int> prompt(const Ctx& cx, const json& cs) {
  return ids_from(cx.expected.get("prompt/" + cs["prompt"].get<std::string>()));
}

std::string run_forward(const Ctx& cx, const json& cs) {
  const Model& m = cx.model;
  const OuroTol tl = tol_of(cx.top);
  const int V = m.config().vocab_size, T = cs["T"].get<int>();
  const std::string k = cs["prefix"].get<std::string>();
  Loops r = run_loops(m, prompt(cx, cs), T);
  std::vector<float> pdf, cdf;
  distributions(r.gates, T, r.S, pdf, cdf);
  const double thr = m.config().exit_threshold >= 0 ? m.config().exit_threshold : 1.0;
  auto steps = exit_steps(cdf, T, r.S, thr);
  std::string err;
  add(err, cmp("hidden", r.hidden, cx.expected.get(k + "/hidden"), tl.atol, tl.rtol));
  add(err, cmp("gate_logits", r.gates, cx.expected.get(k + "/gate_logits"), tl.atol, tl.rtol));
  add(err, cmp("exit_pdf", pdf, cx.expected.get(k + "/exit_pdf"), tl.patol, 0));
  add(err, cmp("step_logits", r.logits, cx.expected.get(k + "/step_logits"), tl.atol, tl.rtol));
  add(err, cmp_ids("exit_step_default", steps, cx.expected.get(k + "/exit_step_default")));
  add(err, cmp("logits", gather(r, steps, V), cx.expected.get(k + "/logits"), tl.atol, tl.rtol));
  return err;
}

// The engine's stopping exit on the prefix ending at each position: the pass
// must stop after exit_step + 1 loops, with that loop's logits.
std::string stopping_exit(const Model& m, const std::vector<int>& ids, int T, double thr,
                          const std::vector<int>& want_steps, const std::vector<float>& want_logits, const OuroTol& tl) {
  const int V = m.config().vocab_size;
  const ExitCriterion ex = ExitCriterion::parse(str("gate:", thr));
  std::string err;
  for (size_t k = 0; k < ids.size(); ++k) {
    // The prompt pass of one generated token through the engine's decode loop.
    GenerateOptions g;
    g.steps = T;
    g.exit = ex;
    g.max_new_tokens = 1;
    g.record_logits = true;
    g.stop_tokens.clear();
    const SequenceResult r = generate(m, std::vector<int>(ids.begin(), ids.begin() + (long)k + 1), g);
    if (r.steps.empty() || r.steps[0] != want_steps[k] + 1) {
      add(err, str("--exit gate:", thr, " at position ", k, " ran ", r.steps.empty() ? 0 : r.steps[0],
                   " loops, the gate's exit step is ", want_steps[k], " (", want_steps[k] + 1, " loops)"));
      continue;
    }
    std::vector<float> got(r.step_logits.begin(), r.step_logits.begin() + V);
    TensorView tv{"", DType::F32, {V}, reinterpret_cast<const uint8_t*>(want_logits.data() + k * V), (size_t)V * 4, ""};
    add(err, cmp(str("stopping-exit logits at position ", k), got, tv, tl.atol, tl.rtol));
  }
  return err;
}

std::string run_early_exit(const Ctx& cx, const json& cs) {
  const Model& m = cx.model;
  const OuroTol tl = tol_of(cx.top);
  const int V = m.config().vocab_size, T = cs["T"].get<int>();
  const double thr = cs["threshold"].get<double>();
  const std::string k = cs["prefix"].get<std::string>();
  const auto ids = prompt(cx, cs);
  Loops r = run_loops(m, ids, T);
  std::vector<float> pdf, cdf;
  distributions(r.gates, T, r.S, pdf, cdf);
  auto steps = exit_steps(cdf, T, r.S, thr);
  std::string err;
  add(err, cmp_ids("exit_step", steps, cx.expected.get(k + "/exit_step")));
  add(err, cmp("logits", gather(r, steps, V), cx.expected.get(k + "/logits"), tl.atol, tl.rtol));
  if (!err.empty()) return err;
  // The engine stops computing at the gate's step (per position: the prefix's last row).
  const std::vector<float> want = cx.expected.get(k + "/logits").to_f32();
  return stopping_exit(m, ids, T, thr, ids_from(cx.expected.get(k + "/exit_step")), want, tl);
}

std::string run_weighted(const Ctx& cx, const json& cs) {
  const Model& m = cx.model;
  const OuroTol tl = tol_of(cx.top);
  const int T = cs["T"].get<int>();
  Loops r = run_loops(m, prompt(cx, cs), T);
  std::vector<float> pdf, cdf;
  distributions(r.gates, T, r.S, pdf, cdf);
  return cmp("logits", weighted(r, pdf, m.config().vocab_size),
             cx.expected.get(cs["prefix"].get<std::string>() + "/logits"), tl.atol, tl.rtol);
}

std::string run_exit_rule(const Ctx& cx, const json& cs) {
  const Model& m = cx.model;
  const OuroTol tl = tol_of(cx.top);
  const int V = m.config().vocab_size, T = cs["T"].get<int>();
  const std::string k = cs["prefix"].get<std::string>();
  const TensorView& gv = cx.expected.get(k + "/gate_logits");
  const std::vector<float> gates = gv.to_f32();
  const int S = (int)gv.shape.at(1);
  // The prescribed rows of cases.json are the stored gate logits.
  for (int s = 0; s < S; ++s)
    for (int t = 0; t < T; ++t)
      if (gates[(size_t)t * S + s] != cs["gate_logits_rows"][s][t].get<float>())
        return str("gate_logits column ", s, " differs from cases.json");
  std::vector<float> pdf, cdf;
  distributions(gates, T, S, pdf, cdf);
  std::string err;
  add(err, cmp("exit_pdf", pdf, cx.expected.get(k + "/exit_pdf"), tl.patol, 0));
  add(err, cmp("exit_cdf", cdf, cx.expected.get(k + "/exit_cdf"), tl.patol, 0));
  Loops r = run_loops(m, ids_from(cx.expected.get(k + "/input_ids")), T);
  for (const json& th : cs["thresholds"]) {
    const double thr = th.get<double>();
    std::string name = th.dump();
    if (name.find('.') == std::string::npos) name += ".0";
    auto steps = exit_steps(cdf, T, S, thr);
    add(err, cmp_ids("thr" + name + "/exit_step", steps, cx.expected.get(k + "/thr" + name + "/exit_step")));
    add(err, cmp("thr" + name + "/logits", gather(r, steps, V), cx.expected.get(k + "/thr" + name + "/logits"),
                 tl.atol, tl.rtol));
    // The tracker the decode loop runs must decide as the distribution does.
    for (int s = 0; s < S; ++s) {
      ExitTracker tr(ExitCriterion::parse(str("gate:", thr)), V, m.config().n_embd);
      tr.reset(nullptr, 1);
      int got = T - 1;
      for (int t = 0; t < T - 1; ++t) {
        tr.observe_gate(gates[(size_t)t * S + s]);
        if (tr.exits(tr.value(nullptr, nullptr, 1))) {
          got = t;
          break;
        }
      }
      if (got != steps[s]) add(err, str("exit tracker at thr ", name, " column ", s, ": step ", got, " vs ", steps[s]));
    }
  }
  return err;
}

std::string run_generate(const Ctx& cx, const json& cs) {
  const Model& m = cx.model;
  const ModelConfig& c = m.config();
  const OuroTol tl = tol_of(cx.top);
  const int V = c.vocab_size, T = cs["T"].get<int>(), n = cs["max_new_tokens"].get<int>();
  const std::string k = cs["prefix"].get<std::string>();
  const auto ids = prompt(cx, cs);
  const int S = (int)ids.size();
  const double thr = c.exit_threshold >= 0 ? c.exit_threshold : 1.0;
  // The original's loop: prefill, then one token per call, every loop computed,
  // the default exit path, its per-(loop, layer) cache.
  KVCache cache = m.make_cache(S + n, CacheStrategy::parse("full"));
  std::vector<int> toks, steps_last, feed = ids;
  std::vector<float> last, step_last, gate_last, pdf_last;
  const json& calls = cs["calls"];
  for (int call = 0; call < n; ++call) {
    if (call < (int)calls.size()) {
      if (ids_of(calls[call]["input_ids"]) != feed) return str("call ", call, ": input ids differ from cases.json");
      if (calls[call]["cache_position"][0].get<int>() != cache.length())
        return str("call ", call, ": cache position differs from cases.json");
    }
    Loops r = run_loops(m, feed, T, &cache, nullptr, 1);
    auto g = column(r.gates, T, r.S, r.S - 1);
    std::vector<float> p(T), q(T);
    gate_exit_distribution(g.data(), T, p.data(), q.data());
    const int s = gate_exit_step(q.data(), T, thr);
    const float* lg = r.logits.data() + (size_t)s * V;
    const int tok = (int)(std::max_element(lg, lg + V) - lg);
    toks.push_back(tok);
    steps_last.push_back(s);
    last.insert(last.end(), lg, lg + V);
    step_last.insert(step_last.end(), r.logits.begin(), r.logits.end());
    gate_last.insert(gate_last.end(), g.begin(), g.end());
    pdf_last.insert(pdf_last.end(), p.begin(), p.end());
    feed = {tok};
  }
  std::string err;
  add(err, cmp_ids("tokens", toks, cx.expected.get(k + "/tokens")));
  add(err, cmp("logits_last", last, cx.expected.get(k + "/logits_last"), tl.atol, tl.rtol));
  add(err, cmp("step_logits_last", step_last, cx.expected.get(k + "/step_logits_last"), tl.atol, tl.rtol));
  add(err, cmp("gate_logits_last", gate_last, cx.expected.get(k + "/gate_logits_last"), tl.atol, tl.rtol));
  add(err, cmp("exit_pdf_last", pdf_last, cx.expected.get(k + "/exit_pdf_last"), tl.patol, 0));
  add(err, cmp_ids("exit_step_last", steps_last, cx.expected.get(k + "/exit_step_last")));
  // The cache: [T, L, nkv, positions, d] from slot t*L + l.
  const int L = c.n_core, nkv = c.kv_heads(), hd = c.head_dim, P = cache.length();
  std::vector<float> kc((size_t)T * L * nkv * P * hd), vc(kc.size());
  std::vector<const void*> kp(P), vp(P);
  if (cache.kv_type() != DType::F32) return "the cache check needs an F32 cache";
  for (int t = 0; t < T; ++t)
    for (int l = 0; l < L; ++l) {
      if (cache.lookup(t * L + l, kp.data(), vp.data()) != P) return str("cache slot ", t * L + l, " is incomplete");
      for (int h = 0; h < nkv; ++h)
        for (int p = 0; p < P; ++p)
          for (int i = 0; i < hd; ++i) {
            const size_t o = ((((size_t)t * L + l) * nkv + h) * P + p) * hd + i;
            kc[o] = static_cast<const float*>(kp[p])[h * cache.head_stride() + i];
            vc[o] = static_cast<const float*>(vp[p])[h * cache.head_stride() + i];
          }
    }
  add(err, cmp("kv_cache_k", kc, cx.expected.get(k + "/kv_cache_k"), tl.atol, tl.rtol));
  add(err, cmp("kv_cache_v", vc, cx.expected.get(k + "/kv_cache_v"), tl.atol, tl.rtol));
  if (!err.empty()) return err;
  // The library's generate (the one decode loop) with the gate exit at the
  // config's threshold gives the same tokens.
  GenerateOptions o;
  o.steps = T;
  o.exit = ExitCriterion::parse(str("gate:", thr));
  o.max_new_tokens = n;
  o.stop_tokens.clear();
  SequenceResult res = generate(m, ids, o);
  add(err, cmp_ids("generate() tokens", res.tokens, cx.expected.get(k + "/tokens")));
  return err;
}

std::string run_loss(const Ctx& cx, const json& cs) {
  const Model& m = cx.model;
  const OuroTol tl = tol_of(cx.top);
  const int V = m.config().vocab_size, T = cs["T"].get<int>();
  const std::string k = cs["prefix"].get<std::string>();
  const auto ids = prompt(cx, cs);
  Loops r = run_loops(m, ids, T);
  std::vector<float> pdf, cdf;
  distributions(r.gates, T, r.S, pdf, cdf);
  const std::vector<float> z = weighted(r, pdf, V);
  std::string err;
  add(err, cmp("logits", z, cx.expected.get(k + "/logits"), tl.atol, tl.rtol));
  double loss = 0;
  for (int i = 0; i + 1 < r.S; ++i) {
    const float* l = z.data() + (size_t)i * V;
    double mx = l[0], se = 0;
    for (int v = 0; v < V; ++v) mx = std::max(mx, (double)l[v]);
    for (int v = 0; v < V; ++v) se += std::exp((double)l[v] - mx);
    loss += std::log(se) + mx - l[ids[i + 1]];
  }
  loss /= (r.S - 1);
  const double want = cx.expected.get(k + "/loss").to_f32()[0];
  if (!(std::fabs(loss - want) <= 1e-5 * std::fabs(want))) add(err, str("loss ", loss, " vs ", want));
  return err;
}

std::string run_debug(const Ctx& cx, const json& cs) {
  const Model& m = cx.model;
  const ModelConfig& c = m.config();
  const OuroTol tl = tol_of(cx.top);
  const int T = cs["T"].get<int>(), L = c.n_core, H = c.n_embd, hd = c.head_dim;
  const std::string k = cs["prefix"].get<std::string>();
  const auto ids = prompt(cx, cs);
  const int S = (int)ids.size();
  std::map<std::string, std::vector<float>> tr;
  TraceFn trace = [&](const std::string& name, const float* data, int rows, int cols) {
    tr[name].assign(data, data + (size_t)rows * cols);
  };
  run_loops(m, ids, T, nullptr, &trace);
  std::string err;
  add(err, cmp("embed", tr["embed"], cx.expected.get(k + "/embed"), tl.atol, tl.rtol));
  for (const char* part : {"attn_out", "mlp_out", "layer_out"}) {
    std::vector<float> all;
    for (int t = 0; t < T; ++t)
      for (int l = 0; l < L; ++l) {
        auto it = tr.find(str("step", t, "_layer", l, "_", part));
        if (it == tr.end() || it->second.size() != (size_t)S * H) return str("no intermediate ", part);
        all.insert(all.end(), it->second.begin(), it->second.end());
      }
    add(err, cmp(part, all, cx.expected.get(k + "/" + part), tl.atol, tl.rtol));
  }
  // RoPE: emb = [angles, angles] per position, from the model's tables.
  const int half = hd / 2;
  std::vector<float> cs_((size_t)S * hd), sn((size_t)S * hd), inv(half);
  for (int p = 0; p < S; ++p)
    for (int i = 0; i < hd; ++i) {
      cs_[(size_t)p * hd + i] = m.rope_cos()[(size_t)p * half + i % half];
      sn[(size_t)p * hd + i] = m.rope_sin()[(size_t)p * half + i % half];
    }
  add(err, cmp("rope_cos", cs_, cx.expected.get(k + "/rope_cos"), tl.atol, tl.rtol));
  add(err, cmp("rope_sin", sn, cx.expected.get(k + "/rope_sin"), tl.atol, tl.rtol));
  // The inverse frequencies are the angles at position 1.
  for (int i = 0; i < half; ++i) inv[i] = std::atan2(m.rope_sin()[half + i], m.rope_cos()[half + i]);
  add(err, cmp("rope_inv_freq", inv, cx.expected.get("debug/rope_inv_freq"), tl.atol, tl.rtol));
  return err;
}

RegisterHandler r1("ouro/forward", run_forward);
RegisterHandler r2("ouro/early_exit", run_early_exit);
RegisterHandler r3("ouro/weighted_exit", run_weighted);
RegisterHandler r4("ouro/exit_rule", run_exit_rule);
RegisterHandler r5("ouro/generate", run_generate);
RegisterHandler r6("ouro/loss", run_loss);
RegisterHandler r7("ouro/debug", run_debug);

}  // namespace
}  // namespace huginn::cli::golden
