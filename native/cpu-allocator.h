// A caching CPU allocator for libtorch (c10::SetCPUAllocator), beside glibc's malloc.
//
// glibc serves blocks above its mmap threshold (at most 32 MiB) with mmap and unmaps them on free, so
// every large activation tensor page-faults all of its pages in again on every step. This allocator
// keeps freed blocks in per-size-class free lists and hands them out again, up to a cap on the bytes
// it holds; past the cap, and after release(), blocks go back to the system.
#pragma once

#include <cstddef>
#include <cstdint>

namespace cpu_allocator {

struct Stats {
  uint64_t inUseBytes;         // size-class bytes of the blocks libtorch holds now
  uint64_t cachedBytes;        // size-class bytes kept in the free lists
  uint64_t peakInUseBytes;     // the most inUseBytes has been
  uint64_t peakReservedBytes;  // the most inUseBytes + cachedBytes has been
  uint64_t hits;               // allocations served from a free list
  uint64_t misses;             // allocations that went to the system
  uint64_t overCapFrees;       // frees that went to the system because the cache was at its cap
  uint64_t capBytes;
  bool active;                 // registered as libtorch's CPU allocator now
};

// Registers the caching allocator as libtorch's CPU allocator (true) or puts c10's default back
// (false). Blocks already made keep the deleter of the allocator that made them, so either switch is
// safe with tensors alive; once off, this allocator's blocks go to the system as they are freed.
void setActive(bool on);
// Bytes of freed blocks kept for reuse at most; lowering it frees the excess at once.
void setCap(uint64_t bytes);
// Returns every cached block to the system; the bytes returned.
uint64_t release();
Stats stats();

}  // namespace cpu_allocator
