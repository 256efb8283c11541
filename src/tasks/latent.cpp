// The latent trajectory of a forward pass and its analysis: norms, distance
// to the final state, convergence, PCA, and the paper's three behaviours
// (fixed points, orbits, sliders).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "huginn/common.h"
#include "huginn/model.h"
#include "huginn/tasks.h"
#include "tasks/parallel.h"

namespace huginn::tasks {

LatentTrace trace_latents(const Model& m, const std::vector<int>& ids, int steps, float init_scale, uint64_t seed) {
  const ModelConfig& c = m.config();
  if (ids.empty()) fail("trace: empty input");
  if (steps < 1) fail("trace: the number of iterations must be >= 1, got ", steps);
  const int T = (int)ids.size(), d = c.n_embd, V = c.vocab_size;
  m.check_tokens(ids.data(), T, 0);
  LatentTrace tr;
  tr.T = T, tr.d = d, tr.steps = steps, tr.vocab = V;
  tr.states.resize((size_t)steps * T * d);
  tr.latents.resize((size_t)steps * T * d);
  tr.logits.resize((size_t)steps * V);
  Workspace ws;
  std::vector<float> e((size_t)T * d), s((size_t)T * d);
  m.embed(ids.data(), T, e.data());
  m.prelude(e.data(), T, 0, nullptr, ws);
  m.init_state(s.data(), T, init_scale, seed, e.data());
  for (int k = 0; k < steps; ++k) {
    m.core_iteration(s.data(), e.data(), T, 0, nullptr, k, ws);
    std::memcpy(&tr.states[(size_t)k * T * d], s.data(), sizeof(float) * T * d);
    m.head(s.data(), T, 0, nullptr, &tr.latents[(size_t)k * T * d], &tr.logits[(size_t)k * V], 1, ws);
  }
  return tr;
}

namespace {

// Eigen-decomposition of a symmetric n x n matrix (cyclic Jacobi); returns
// eigenvalues and column eigenvectors, sorted by decreasing eigenvalue.
void jacobi_eigen(std::vector<double> A, int n, std::vector<double>& vals, std::vector<double>& vecs) {
  vecs.assign((size_t)n * n, 0.0);
  for (int i = 0; i < n; ++i) vecs[(size_t)i * n + i] = 1;
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0, total = 0;
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < n; ++j) {
        total += A[(size_t)i * n + j] * A[(size_t)i * n + j];
        if (i != j) off += A[(size_t)i * n + j] * A[(size_t)i * n + j];
      }
    if (off <= 1e-22 * total || total == 0) break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = A[(size_t)p * n + q];
        if (std::fabs(apq) < 1e-300) continue;
        const double app = A[(size_t)p * n + p], aqq = A[(size_t)q * n + q];
        const double theta = (aqq - app) / (2 * apq);
        const double t = (theta >= 0 ? 1 : -1) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; ++k) {  // rotate columns p, q
          const double akp = A[(size_t)k * n + p], akq = A[(size_t)k * n + q];
          A[(size_t)k * n + p] = c * akp - s * akq;
          A[(size_t)k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) {  // rotate rows p, q
          const double apk = A[(size_t)p * n + k], aqk = A[(size_t)q * n + k];
          A[(size_t)p * n + k] = c * apk - s * aqk;
          A[(size_t)q * n + k] = s * apk + c * aqk;
        }
        for (int k = 0; k < n; ++k) {
          const double vkp = vecs[(size_t)k * n + p], vkq = vecs[(size_t)k * n + q];
          vecs[(size_t)k * n + p] = c * vkp - s * vkq;
          vecs[(size_t)k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](int a, int b) { return A[(size_t)a * n + a] > A[(size_t)b * n + b]; });
  vals.resize(n);
  std::vector<double> sorted((size_t)n * n);
  for (int j = 0; j < n; ++j) {
    vals[j] = A[(size_t)order[j] * n + order[j]];
    for (int k = 0; k < n; ++k) sorted[(size_t)k * n + j] = vecs[(size_t)k * n + order[j]];
  }
  vecs = sorted;
}

double dist(const float* a, const float* b, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
  return std::sqrt(s);
}

// ||s_k - s_{k-1}|| / ||s_k|| for iterations k = 1..steps (s_0 = initial, or
// zeros when null), the states `stride` floats apart.
std::vector<double> relative_changes(const float* states, int steps, int d, size_t stride, const float* initial) {
  std::vector<float> zeros(d, 0.f);
  if (!initial) initial = zeros.data();
  std::vector<double> rel(steps);
  for (int k = 0; k < steps; ++k) {
    const float* s = states + (size_t)k * stride;
    rel[k] = dist(s, k ? s - stride : initial, d) / std::max(dist(s, zeros.data(), d), 1e-30);
  }
  return rel;
}

// The first iteration from which every relative change stays below tol, or
// -1 when even the last one does not.
int settle_iteration(const std::vector<double>& rel, double tol) {
  int settled = -1;
  for (int k = (int)rel.size() - 1; k >= 0 && rel[k] < tol; --k) settled = k + 1;
  return settled;
}

}  // namespace

Trajectory analyze_trajectory(const float* states, int steps, int d, size_t stride, const float* initial,
                              double settle_tol) {
  if (steps < 1 || d < 1) fail("analyze_trajectory: empty trajectory");
  Trajectory tr;
  std::vector<float> zeros(d, 0.f);
  if (!initial) initial = zeros.data();
  auto row = [&](int k) { return states + (size_t)k * stride; };  // k = 0..steps-1 is iteration k+1
  const float* last = row(steps - 1);
  for (int k = 0; k < steps; ++k) {
    tr.norm.push_back(dist(row(k), zeros.data(), d));
    tr.dist_to_final.push_back(dist(row(k), last, d));
  }
  tr.rel_change = relative_changes(states, steps, d, stride, initial);
  tr.settle_iteration = settle_iteration(tr.rel_change, settle_tol);

  // PCA over iterations: eigenvectors of the Gram matrix of the centred states.
  const int n = steps;
  std::vector<double> mean(d, 0.0);
  for (int k = 0; k < n; ++k)
    for (int i = 0; i < d; ++i) mean[i] += row(k)[i];
  for (auto& v : mean) v /= n;
  std::vector<double> G((size_t)n * n, 0.0);
  for (int a = 0; a < n; ++a)
    for (int b = a; b < n; ++b) {
      double s = 0;
      for (int i = 0; i < d; ++i) s += (row(a)[i] - mean[i]) * (row(b)[i] - mean[i]);
      G[(size_t)a * n + b] = G[(size_t)b * n + a] = s;
    }
  std::vector<double> vals, vecs;
  jacobi_eigen(G, n, vals, vecs);
  double total = 0;
  for (double v : vals) total += std::max(v, 0.0);
  tr.pc1.assign(n, 0.0);
  tr.pc2.assign(n, 0.0);
  for (int c = 0; c < 2 && c < n; ++c) {
    const double lam = std::max(vals[c], 0.0);
    tr.explained[c] = total > 0 ? lam / total : 0;
    auto& pc = c == 0 ? tr.pc1 : tr.pc2;
    for (int k = 0; k < n; ++k) pc[k] = vecs[(size_t)k * n + c] * std::sqrt(lam);
  }

  // Behaviour.
  const double last_change = tr.rel_change.back();
  if (tr.settle_iteration > 0) {
    tr.behaviour = "fixed point";
    tr.summary = str("fixed point: the state settles (relative change < ", settle_tol, ") from iteration ",
                     tr.settle_iteration, " of ", steps);
    return tr;
  }
  // Orbit: the state keeps moving but returns close to where it was p iterations ago.
  const double nlast = std::max(tr.norm.back(), 1e-30);
  for (int p = 2; p <= std::min(32, steps / 3); ++p) {
    bool ok = true;
    for (int k = steps - 1; k >= steps - p && ok; --k)
      if (dist(row(k), row(k - p), d) / nlast > 0.25 * last_change) ok = false;
    if (ok) {
      tr.behaviour = "orbit";
      tr.period = p;
      tr.summary = str("orbit: the state keeps moving (relative change ", last_change,
                       " per iteration) but returns to the same place every ", p, " iterations");
      return tr;
    }
  }
  // Slider: steady drift along one direction.
  bool monotone = n >= 4;
  if (monotone) {
    const int h = n / 2;
    const double dir = tr.pc1[n - 1] - tr.pc1[h];
    for (int k = h + 1; k < n; ++k)
      if ((tr.pc1[k] - tr.pc1[k - 1]) * dir < 0) monotone = false;
  }
  if (monotone && tr.explained[0] > 0.8) {
    tr.behaviour = "slider";
    tr.summary = str("slider: the state drifts steadily along one direction (first component ",
                     (int)std::lround(100 * tr.explained[0]), "% of the variance, relative change ", last_change,
                     " per iteration)");
    return tr;
  }
  tr.behaviour = "unsettled";
  tr.summary = str("unsettled: no fixed point within ", steps, " iterations (relative change ", last_change,
                   " at the end)");
  return tr;
}

std::vector<ConvergenceResult> convergence(const Model& m, const Task& task, const std::vector<int>& difficulties,
                                           int n, uint64_t seed, int max_steps, double tol,
                                           const EvalProgress& progress) {
  if (n < 1) fail("convergence: the number of instances must be >= 1, got ", n);
  if (max_steps < 2) fail("convergence: at least 2 iterations are needed, got ", max_steps);
  if (!(tol > 0)) fail("convergence: the tolerance must be > 0");
  for (int d : difficulties) task.check_difficulty(d);
  const int64_t total = (int64_t)difficulties.size() * n;
  int64_t done = 0;  // counted under for_each_instance's lock
  std::vector<ConvergenceResult> out;
  for (int d : difficulties) {
    const std::vector<Instance> inst = test_instances(task, d, n, seed);
    std::vector<int> settle(n), answer_settle(n);
    for_each_instance(
        n,
        [&](int i) {
          const LatentTrace lt = trace_latents(m, prompt_ids(inst[i]), max_steps);
          // The last prompt position (zero initial state), as analyze_trajectory follows it.
          const std::vector<double> rel = relative_changes(lt.states.data() + (size_t)(lt.T - 1) * lt.d,
                                                           max_steps, lt.d, (size_t)lt.T * lt.d, nullptr);
          settle[i] = settle_iteration(rel, tol);
          auto argmax = [&](int k) {
            const float* l = &lt.logits[(size_t)k * lt.vocab];
            return (int)(std::max_element(l, l + lt.vocab) - l);
          };
          const int final_tok = argmax(max_steps - 1);
          int a = max_steps;
          for (int k = max_steps - 1; k >= 0 && argmax(k) == final_tok; --k) a = k + 1;
          answer_settle[i] = a;
        },
        [&] {
          ++done;
          if (progress) progress(done, total);
        });
    ConvergenceResult r;
    r.task = task.name();
    r.difficulty = d;
    r.n = n;
    r.max_steps = max_steps;
    r.tol = tol;
    std::vector<int> sorted;
    double sum = 0, asum = 0;
    for (int i = 0; i < n; ++i) {
      const int k = settle[i] < 0 ? max_steps : settle[i];
      if (settle[i] < 0) ++r.unsettled;
      sorted.push_back(k);
      sum += k;
      asum += answer_settle[i];
    }
    std::sort(sorted.begin(), sorted.end());
    r.mean_settle = sum / n;
    r.median_settle = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    r.mean_answer_settle = asum / n;
    out.push_back(r);
  }
  return out;
}

}  // namespace huginn::tasks
