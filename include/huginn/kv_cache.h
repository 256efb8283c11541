// KV cache with the reference's per-layer-application slots (HuginnDynamicCache).
//
// Every layer application writes K/V under a *step*: prelude layer j -> j,
// core layer l of iteration t -> P + t*R + l, coda layer j -> -1-j. A strategy
// name such as "latest-m4-compress-s4" combines a lookup (what to read when a
// position lacks the step, because it exited early) and a compression (which
// steps share storage, making memory independent of the depth).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "huginn/safetensors.h"  // DType

namespace huginn {

enum class CacheLookup { Full, LatestM4, AvailableM4, AlwaysLastM4, Skip };

struct CacheStrategy {
  CacheLookup lookup = CacheLookup::Full;
  char compress = 0;   // 0 (none), 's' (modulo: slot (s-P) mod N + P) or 'r' (slot (s-P) div N + P)
  int compress_n = 0;  // N
  // How entries are stored: F32, or F16 (a "-f16" suffix, or "f16" alone for
  // full-f16): half the memory and half the bytes attention reads, each entry
  // rounded to the nearest half (attention still computes in f32).
  DType kv_type = DType::F32;
  std::string name = "full";

  // Parses "full", "skip", "latest-m4", "available-m4", "always-last-m4",
  // "compress-sN", "compress-rN", "last-loop" (compress-s by the number of
  // core layers: every iteration overwrites one slot per layer, so only the
  // last loop's K/V are kept; Ouro's paper's setting) and combinations such
  // as "latest-m4-compress-s4"; any of them with "-f16" (entries stored as
  // f16), and "f16" alone (full-f16).
  static CacheStrategy parse(const std::string& s);
  // Bytes one position's K and V take in one slot of `width` entries each.
  size_t position_bytes(int width) const { return (size_t)width * 2 * dtype_size(kv_type); }
  // Number of core slots a run of `iterations` iterations holds per position.
  int core_slots(int n_core, int iterations) const;
};

class KVCache {
 public:
  // width: floats per position (kv heads x head_dim). Model::make_cache makes
  // one with the model's layout. `capacity` is the largest number of positions the cache will hold;
  // storage for a slot is reserved on its first write (memory is committed as
  // positions are written) and reused afterwards.
  //
  // A slot stores each head's entries together, position after position
  // ([head][position][head_dim]): one query head's attention then reads its
  // keys and values as one sequential stream instead of head_dim-float pieces
  // a whole row apart. measured (bench_generate --batch-only -t 2 --gen 32
  // --batch-sizes 1,8 --batch-depths 8, standard config): batch 8 after
  // 512-token prompts 142-145 -> 174-181 tokens/s, after 960-token prompts
  // 96-97 -> 128-129, after 16-token prompts 359-398 -> 398-407.
  KVCache(int n_prelude, int n_core, int n_coda, int width, int capacity, CacheStrategy strategy, int head_dim);

  int length() const { return seen_; }
  int capacity() const { return capacity_; }
  int width() const { return width_; }
  int head_dim() const { return head_dim_; }
  // How entries are stored (F32 or F16; the strategy's kv_type).
  DType kv_type() const { return strategy_.kv_type; }
  // Entries from a position's entry of one head to its entry of the next head:
  // lookup's pointers are head 0's; head h of that position is h x this on.
  size_t head_stride() const { return head_stride_; }
  const CacheStrategy& strategy() const { return strategy_; }

  // Stores rows for the last T positions (writing step 0 first appends T
  // positions, as the reference does). k/v rows are `width` floats, `ld` apart.
  void write(int step, int T, const float* k, const float* v, int ld);
  // Gathers, for the attention of `step`, one K and one V pointer per key (to
  // its head 0 entry, of kv_type() elements; see head_stride), in position
  // order, following the lookup strategy. Returns the key count.
  int lookup(int step, const void** keys, const void** vals) const;
  // Drops the last n positions from every slot (speculative / parallel decoding).
  void drop_last(int n);
  void clear();

  // Bytes of K/V entries actually present (what the reference reports), and
  // bytes of storage allocated.
  size_t bytes_held() const;
  size_t bytes_allocated() const;
  int stored_step(int step) const;  // the step after compression

 private:
  // K/V storage starts on a 64-byte line: attention loads each head's slice
  // of a row as whole vectors, and a plain new[] of this size (an mmap) is 16
  // bytes off a line, so that every load straddled two lines.
  struct FreeAligned {
    void operator()(unsigned char* p) const;
  };
  using Bytes = std::unique_ptr<unsigned char[], FreeAligned>;
  struct Slot {
    Bytes k, v;  // heads x head_stride entries each
    std::vector<unsigned char> present;
    int count = 0;
    bool used = false;
  };
  Slot* slot(int stored);
  const Slot* slot(int stored) const;
  int latest_same_layer(int stored, int pos, bool any_iteration) const;

  int P_, R_, C_, width_, capacity_, head_dim_, heads_;
  size_t entry_bytes_;  // of one element (kv_type)
  size_t head_stride_;  // capacity x head_dim, rounded up to whole 64-byte lines
  CacheStrategy strategy_;
  int seen_ = 0;
  std::vector<Slot> slots_;  // index = stored step + C_
  std::vector<int> top_;     // per position: the highest stored core step written (-1: none)
};

}  // namespace huginn
