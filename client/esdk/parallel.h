// Frames of one message sealed or opened at once, by the calling thread and
// a pool of helper threads shared by the process (one fewer than the
// machine's cores).
//
// A frame's AES-GCM is independent of the others' (its own IV and AAD), so a
// batch of whole frames splits into one run of consecutive frames per
// worker, each with an AES-GCM context of its own. With the default 4 KiB
// frames one thread spends a sixth of its time setting up each frame's GCM
// (IV, AAD, tag), which no single-threaded loop avoids; two cores more than
// make up for it. The caller always works on its own batch too, so a batch
// completes even when every helper is busy with other callers' batches, and
// in a forked child (which has no helpers) everything runs on the caller.
#pragma once

#include <functional>
#include <vector>

#include "client/esdk/crypto.h"
#include "protocol/secret_buffer.h"

namespace kmsd::esdk {

// How many threads a batch is split across: helpers + 1; 1 when there are
// no helpers (one core, or a forked child).
size_t ParallelWorkers();

// Calls fn(i) for every i in [0, count) once, on the calling thread and the
// helpers, and returns when all calls have returned. fn must not throw.
void ParallelFor(size_t count, const std::function<void(size_t)>& fn);

class FrameCrew {
 public:
  // `key`: the message's derived data key; `use`: kSeal or kOpen.
  FrameCrew(SecretBuffer key, AesGcm::Use use) : key_(std::move(key)), use_(use) {}

  // Splits frames [0, count) into up to ParallelWorkers() runs of
  // consecutive frames and calls work(first, end, cipher) for each run at
  // once, each with its own cipher. INTERNAL when a cipher could not be set
  // up (then no work ran); the runs report their own failures.
  Status ForEachRun(size_t count,
                    const std::function<void(size_t first, size_t end, AesGcm& cipher)>& work);

 private:
  SecretBuffer key_;
  AesGcm::Use use_;
  std::vector<AesGcm> ciphers_;  // one per run, made on first use
};

// A batch of whole frames is split only from kMinParallelBatchBytes of
// plaintext (waking a helper costs about as much as sealing 10 KiB), and
// holds at most kParallelBatchBytes or two frames, whichever is more (which
// bounds its buffer); frames over kMaxParallelFrameBytes go one at a time.
inline constexpr size_t kMinParallelBatchBytes = 32 << 10;
inline constexpr size_t kParallelBatchBytes = 1 << 20;
inline constexpr size_t kMaxParallelFrameBytes = 1 << 20;

// How many of `available_frames` whole frames of `frame_length` go in one
// batch: 0 when a batch is not worth it (one worker, big frames, too few).
size_t FramesPerBatch(size_t frame_length, size_t available_frames);

}  // namespace kmsd::esdk
