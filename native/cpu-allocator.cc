// The caching CPU allocator (cpu-allocator.h says why). Layout of a block: a 64-byte header holding
// the block's size class, then the tensor's bytes, so both stay 64-byte aligned (c10::gAlignment,
// which libtorch's vectorised kernels assume) and the deleter needs nothing but the data pointer.
//
// Size classes: up to 512 bytes, multiples of 64; above, four classes per power of two (2^k times
// 1.25, 1.5, 1.75, 2), but never coarser than 2 MiB steps. At most a quarter of a block, and at most
// 2 MiB, goes unused; in a block glibc maps afresh (above its mmap threshold) the unused tail is
// address space only, never touched, so it costs no resident memory. A repeated workload (a training
// step, a reverse-process step) asks for the same sizes each time, so once the first step has run,
// every request finds its class's free list filled, as long as the cap holds the working set.
#include "cpu-allocator.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <vector>

namespace cpu_allocator {
namespace {

constexpr size_t kAlignment = 64;                  // c10::gAlignment on x86-64 and arm64
constexpr size_t kHeader = kAlignment;             // keeps the data as aligned as the block
constexpr size_t kMaxStep = size_t{2} << 20;       // 2 MiB: a huge page
constexpr size_t kLargest = size_t{1} << 60;       // refuse sizes whose class would overflow

size_t roundUp(size_t n, size_t step) { return (n + step - 1) / step * step; }

size_t sizeClass(size_t n) {
  if (n <= 512) return roundUp(n, kAlignment);
  int k = 63 - __builtin_clzll(static_cast<unsigned long long>(n - 1));  // 2^k < n <= 2^(k+1), k >= 9
  size_t step = (size_t{1} << k) / 4;
  return roundUp(n, step < kMaxStep ? step : kMaxStep);
}

// Process-wide and never destroyed: libtorch frees tensors during exit, after static destructors ran.
struct State {
  std::mutex mutex;
  std::map<size_t, std::vector<void*>> free;  // size class -> cached data pointers
  std::atomic<bool> active{false};
  uint64_t cap = 0;  // nothing is kept until the cap is set (src/tensor/runtime.ts sets it with the allocator)
  uint64_t inUse = 0, cached = 0, peakInUse = 0, peakReserved = 0;
  uint64_t hits = 0, misses = 0, overCapFrees = 0;

  void notePeaks() {
    if (inUse > peakInUse) peakInUse = inUse;
    if (inUse + cached > peakReserved) peakReserved = inUse + cached;
  }
  // Frees cached blocks, largest classes first, until at most `keep` bytes stay cached; the bytes freed.
  uint64_t trimTo(uint64_t keep) {
    uint64_t freed = 0;
    while (cached > keep && !free.empty()) {
      auto last = std::prev(free.end());
      std::free(static_cast<char*>(last->second.back()) - kHeader);
      last->second.pop_back();
      cached -= last->first;
      freed += last->first;
      if (last->second.empty()) free.erase(last);
    }
    return freed;
  }
};

State& state() {
  static State* s = new State;
  return *s;
}

size_t classOf(void* data) { return *reinterpret_cast<size_t*>(static_cast<char*>(data) - kHeader); }

// As c10's default allocator does, so libtorch's profiler sees memory under this allocator too.
// Called outside the lock, with the totals read under it: the profiler's callback is not ours to trust.
void report(void* data, int64_t bytes, uint64_t inUse, uint64_t reserved) {
  if (c10::memoryProfilingEnabled()) {
    c10::reportMemoryUsageToProfiler(data, bytes, static_cast<int64_t>(inUse), static_cast<int64_t>(reserved), c10::Device(c10::DeviceType::CPU));
  }
}

// The deleter of every block this allocator made, active or not: a block goes back to its own cache.
void deleteBlock(void* data) {
  if (data == nullptr) return;
  State& s = state();
  size_t cls = classOf(data);
  std::unique_lock<std::mutex> lock(s.mutex);
  s.inUse -= cls;
  bool keep = s.active.load(std::memory_order_relaxed) && s.cached + cls <= s.cap;
  if (keep) {
    s.free[cls].push_back(data);
    s.cached += cls;
  } else if (s.active.load(std::memory_order_relaxed)) {
    s.overCapFrees++;
  }
  uint64_t inUse = s.inUse, reserved = s.inUse + s.cached;
  lock.unlock();
  report(data, -static_cast<int64_t>(cls), inUse, reserved);
  if (!keep) std::free(static_cast<char*>(data) - kHeader);
}

void* systemBlock(size_t cls) {
  void* base = nullptr;
  if (posix_memalign(&base, kAlignment, cls + kHeader) != 0) return nullptr;
  *static_cast<size_t*>(base) = cls;
  return static_cast<char*>(base) + kHeader;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    const c10::Device cpu(c10::DeviceType::CPU);
    if (n == 0) return {nullptr, nullptr, &deleteBlock, cpu};  // as c10's alloc_cpu(0)
    TORCH_CHECK(n <= kLargest, "caching CPU allocator: cannot allocate ", n, " bytes");
    size_t cls = sizeClass(n);
    State& s = state();
    void* data = nullptr;
    uint64_t inUse = 0, reserved = 0;
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      auto it = s.free.find(cls);
      if (it != s.free.end()) {
        data = it->second.back();
        it->second.pop_back();
        if (it->second.empty()) s.free.erase(it);
        s.cached -= cls;
        s.hits++;
        s.inUse += cls;
        s.notePeaks();
        inUse = s.inUse;
        reserved = s.inUse + s.cached;
      } else {
        s.misses++;
      }
    }
    if (data) {
      report(data, static_cast<int64_t>(cls), inUse, reserved);
      return {data, data, &deleteBlock, cpu};
    }
    data = systemBlock(cls);
    if (data == nullptr) {
      // Out of memory: what the cache holds may be enough.
      uint64_t released;
      {
        std::lock_guard<std::mutex> lock(s.mutex);
        released = s.trimTo(0);
      }
      data = systemBlock(cls);
      TORCH_CHECK(data != nullptr, "caching CPU allocator: out of memory allocating ", n, " bytes (", released,
                  " cached bytes were returned to the system first)");
    }
    {
      std::lock_guard<std::mutex> lock(s.mutex);
      s.inUse += cls;
      s.notePeaks();
      inUse = s.inUse;
      reserved = s.inUse + s.cached;
    }
    report(data, static_cast<int64_t>(cls), inUse, reserved);
    return {data, data, &deleteBlock, cpu};
  }
  // The context is the data pointer, so raw_allocate/raw_deallocate work too.
  c10::DeleterFnPtr raw_deleter() const override { return &deleteBlock; }
};

CachingCpuAllocator& allocator() {
  static CachingCpuAllocator* a = new CachingCpuAllocator;
  return *a;
}

}  // namespace

void setActive(bool on) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  // Priority 0, as c10 registers its default allocator: each call here replaces the other.
  c10::SetCPUAllocator(on ? static_cast<c10::Allocator*>(&allocator()) : c10::GetDefaultCPUAllocator(), 0);
  s.active.store(on);
  if (!on) s.trimTo(0);
}

void setCap(uint64_t bytes) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.cap = bytes;
  s.trimTo(bytes);
}

uint64_t release() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.trimTo(0);
}

Stats stats() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return {s.inUse, s.cached, s.peakInUse, s.peakReserved, s.hits, s.misses, s.overCapFrees, s.cap, s.active.load()};
}

}  // namespace cpu_allocator
