#include "huginn/kv_cache.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "huginn/common.h"
#include "tensor/kernels.h"

namespace huginn {

CacheStrategy CacheStrategy::parse(const std::string& s) {
  CacheStrategy c;
  c.name = s;
  auto unknown = [&] {
    fail("unknown cache strategy '", s,
         "' (use full, skip, latest-m4, available-m4, always-last-m4, compress-sN, compress-rN, last-loop or "
         "combinations such as latest-m4-compress-s4; any of them with -f16 to store entries as f16, e.g. full-f16)");
  };
  if (!s.empty() && (s.back() == '-' || s.find("--") != std::string::npos)) unknown();  // e.g. "full-"
  std::string rest = s;
  // storage type: a "-f16" suffix, or "f16" alone (full)
  if (rest == "f16") {
    c.kv_type = DType::F16;
    rest = "full";
  } else if (rest.size() > 4 && rest.compare(rest.size() - 4, 4, "-f16") == 0) {
    c.kv_type = DType::F16;
    rest.resize(rest.size() - 4);
  }
  auto eat = [&](const std::string& p) {
    if (rest.rfind(p, 0) == 0) {
      rest = rest.substr(p.size());
      if (!rest.empty() && rest[0] == '-') rest = rest.substr(1);
      return true;
    }
    return false;
  };
  if (eat("full")) c.lookup = CacheLookup::Full;
  else if (eat("latest-m4")) c.lookup = CacheLookup::LatestM4;
  else if (eat("available-m4")) c.lookup = CacheLookup::AvailableM4;
  else if (eat("always-last-m4")) c.lookup = CacheLookup::AlwaysLastM4;
  else if (eat("skip")) c.lookup = CacheLookup::Skip;
  if (rest == "last-loop") {  // every iteration shares one slot per core layer: the last loop's K/V remain
    c.compress = 's';
    c.compress_n = 0;  // resolved to the number of core layers by the cache
    rest.clear();
  }
  if (rest.rfind("compress-", 0) == 0 && rest.size() > 10 && (rest[9] == 's' || rest[9] == 'r')) {
    c.compress = rest[9];
    std::string num = rest.substr(10);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos)
      fail("cache strategy '", s, "': compress-", c.compress, " needs a positive number, e.g. compress-s4");
    if (num.size() > 4) fail("cache strategy '", s, "': the compression factor must be at most 9999");
    c.compress_n = std::stoi(num);
    if (c.compress_n <= 0) fail("cache strategy '", s, "': the compression factor must be positive");
    rest.clear();
  }
  if (!rest.empty()) unknown();
  return c;
}

int CacheStrategy::core_slots(int n_core, int iterations) const {
  int steps = n_core * iterations;
  if (compress == 's') return std::min(steps, compress_n > 0 ? compress_n : n_core);
  if (compress == 'r') return (steps + compress_n - 1) / compress_n;
  return steps;
}

KVCache::KVCache(int n_prelude, int n_core, int n_coda, int width, int capacity, CacheStrategy strategy, int head_dim)
    : P_(n_prelude),
      R_(n_core),
      C_(n_coda),
      width_(width),
      capacity_(capacity),
      head_dim_(head_dim),
      heads_(head_dim > 0 ? width / head_dim : 0),
      entry_bytes_(dtype_size(strategy.kv_type)),
      head_stride_(((size_t)std::max(capacity, 0) * head_dim_ * entry_bytes_ + 63) / 64 * 64 / entry_bytes_),
      strategy_(std::move(strategy)),
      top_(capacity > 0 ? capacity : 0, -1) {
  if (strategy_.kv_type != DType::F32 && strategy_.kv_type != DType::F16)
    fail("KV cache: entries are stored as F32 or F16, not ", dtype_name(strategy_.kv_type));
  if (width <= 0 || head_dim_ <= 0 || width % head_dim_ != 0)
    fail("KV cache: width ", width, " is not a whole number of heads of ", head_dim_);
  if (strategy_.compress == 's' && strategy_.compress_n == 0) strategy_.compress_n = R_ > 0 ? R_ : 1;  // last-loop
}

int KVCache::stored_step(int step) const {
  if (step < P_ || strategy_.compress == 0) return step;
  if (strategy_.compress == 's') return (step - P_) % strategy_.compress_n + P_;
  return (step - P_) / strategy_.compress_n + P_;
}

void KVCache::FreeAligned::operator()(unsigned char* p) const { std::free(p); }

KVCache::Slot* KVCache::slot(int stored) {
  size_t i = (size_t)(stored + C_);
  if (i >= slots_.size()) slots_.resize(i + 1);
  Slot& s = slots_[i];
  if (!s.used) {
    s.used = true;
    // Uninitialised: the pages of a large slot are committed only as
    // positions are written (entries are never read before they are written).
    const size_t bytes = (size_t)heads_ * head_stride_ * entry_bytes_;  // whole lines (head_stride_)
    auto alloc = [&] {
      void* p = std::aligned_alloc(64, bytes);
      if (!p) fail("KV cache: out of memory (", bytes, " bytes for one layer's keys or values)");
      return static_cast<unsigned char*>(p);
    };
    s.k.reset(alloc());
    s.v.reset(alloc());
    s.present.assign(capacity_, 0);
  }
  return &s;
}
const KVCache::Slot* KVCache::slot(int stored) const {
  size_t i = (size_t)(stored + C_);
  if (stored + C_ < 0 || i >= slots_.size() || !slots_[i].used) return nullptr;
  return &slots_[i];
}

void KVCache::write(int step, int T, const float* k, const float* v, int ld) {
  if (step == 0) {
    if (seen_ + T > capacity_) fail("KV cache full: ", seen_ + T, " positions exceed its capacity of ", capacity_);
    seen_ += T;
  }
  if (T > seen_) fail("KV cache: write of ", T, " positions at step ", step, " before step 0 wrote them");
  Slot* s = slot(stored_step(step));
  const int p0 = seen_ - T;
  for (int t = 0; t < T; ++t) {
    const int p = p0 + t;
    for (int h = 0; h < heads_; ++h) {
      const size_t at = (h * head_stride_ + (size_t)p * head_dim_) * entry_bytes_;
      const float *kh = k + (size_t)t * ld + h * head_dim_, *vh = v + (size_t)t * ld + h * head_dim_;
      if (strategy_.kv_type == DType::F16) {
        kern::to_f16(kh, reinterpret_cast<uint16_t*>(&s->k[at]), head_dim_);
        kern::to_f16(vh, reinterpret_cast<uint16_t*>(&s->v[at]), head_dim_);
      } else {
        std::memcpy(&s->k[at], kh, sizeof(float) * head_dim_);
        std::memcpy(&s->v[at], vh, sizeof(float) * head_dim_);
      }
    }
    if (!s->present[p]) {
      s->present[p] = 1;
      ++s->count;
    }
    if (stored_step(step) >= P_ && stored_step(step) > top_[p]) top_[p] = stored_step(step);
  }
}

// The most recent stored step of the same core layer that position `pos`
// holds: up to `stored` (latest-m4) or over all iterations (always-last-m4).
int KVCache::latest_same_layer(int stored, int pos, bool any_iteration) const {
  const int layer = (stored - P_) % R_;
  // Positions compute their core steps contiguously from the first iteration,
  // so the answer is usually the same layer in the position's last iteration
  // (O(1)); the scan below covers anything else.
  {
    const int hi = any_iteration ? top_[pos] : std::min(stored, top_[pos]);
    if (hi >= P_) {
      const int s = hi - (((hi - P_ - layer) % R_) + R_) % R_;
      const Slot* sl = s >= P_ ? slot(s) : nullptr;
      if (sl && sl->present[pos]) return s;
    }
  }
  const int hi = any_iteration ? (int)slots_.size() - 1 - C_ : stored;
  for (int s = hi; s >= P_; --s) {
    if ((s - P_) % R_ != layer) continue;
    const Slot* sl = slot(s);
    if (sl && sl->present[pos]) return s;
  }
  fail("KV cache: position ", pos, " has no entry for any iteration of core layer ", layer,
       " (lookup strategy '", strategy_.name, "')");
}

int KVCache::lookup(int step, const void** keys, const void** vals) const {
  const int stored = stored_step(step);
  const Slot* s = slot(stored);
  if (!s) fail("KV cache: lookup of step ", step, " that was never written");
  int n = 0;
  auto take = [&](const Slot* sl, int p) {
    keys[n] = &sl->k[(size_t)p * head_dim_ * entry_bytes_];
    vals[n] = &sl->v[(size_t)p * head_dim_ * entry_bytes_];
    ++n;
  };
  const CacheLookup lk = strategy_.lookup;
  if (s->count == seen_ || lk == CacheLookup::Full || lk == CacheLookup::Skip) {
    for (int p = 0; p < seen_; ++p)
      if (s->present[p]) take(s, p);
    return n;
  }
  for (int p = 0; p < seen_; ++p) {
    if (stored < P_) {  // prelude or coda step: own entry, else prelude step 0 (as the reference)
      const Slot* sl = s->present[p] ? s : slot(0);
      take(sl, p);
      continue;
    }
    const bool any = lk == CacheLookup::AlwaysLastM4;
    take(slot(latest_same_layer(stored, p, any)), p);
  }
  return n;
}

void KVCache::drop_last(int n) {
  if (n < 0 || n > seen_) fail("KV cache: cannot drop ", n, " of ", seen_, " positions");
  const int old = seen_;
  seen_ -= n;
  for (int p = seen_; p < old; ++p) top_[p] = -1;
  for (auto& s : slots_) {
    if (!s.used) continue;
    for (int p = seen_; p < old; ++p)
      if (s.present[p]) {
        s.present[p] = 0;
        --s.count;
      }
  }
}

void KVCache::clear() { drop_last(seen_); }

size_t KVCache::bytes_held() const {
  size_t n = 0;
  for (auto& s : slots_)
    if (s.used) n += (size_t)s.count * strategy_.position_bytes(width_);
  return n;
}
size_t KVCache::bytes_allocated() const {
  size_t n = 0;
  for (auto& s : slots_)
    if (s.used) n += (size_t)heads_ * head_stride_ * 2 * entry_bytes_;
  return n;
}

}  // namespace huginn
