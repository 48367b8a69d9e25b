// ThreadPool: persistent worker threads for data-parallel loops. parallel_for splits [0, n) into one
// contiguous chunk per thread (static chunking: the same split every time, which keeps results
// deterministic) and runs small loops inline. No global state: each backend owns its pool.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hayate {

class ThreadPool {
 public:
  explicit ThreadPool(int threads = 0);  // 0 = hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }  // workers + the calling thread

  // Calls fn(begin, end) over disjoint chunks covering [0, n), chunk t = [n*t/T, n*(t+1)/T) with
  // T = min(size(), n / min_per_thread); runs inline when T <= 1. The first exception thrown by fn is
  // rethrown here once every chunk has finished. Not reentrant: fn must not call parallel_for on the
  // same pool, and one pool serves one calling thread at a time.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_per_thread = 1);

  // Like parallel_for, but the threads take chunks from a shared counter as they finish, each about
  // remaining / (2 * threads) and at least `grain`, so a thread that runs slower (a busier memory channel,
  // a late wake-up) leaves less work at the end for the others to wait on. Which thread runs a chunk
  // varies from call to call: only for loops whose results do not depend on the split (each output
  // written by exactly one iteration, in an order fixed within it).
  void parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  void worker(int index);
  void run_chunk(int index) noexcept;
  void run(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int chunks, int64_t grain);
  bool take(int64_t& begin, int64_t& end);

  std::vector<std::thread> workers_;
  // The job being run; written by the caller before it bumps generation_ (release), read by workers after
  // they see the new generation (acquire).
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  int64_t job_n_ = 0;
  int job_chunks_ = 0;
  int64_t job_grain_ = 0;            // > 0: dynamic, chunks taken from next_
  std::atomic<int64_t> next_{0};     // the first index not yet taken (dynamic jobs)
  std::exception_ptr error_;  // first exception of the current job (guarded by mutex_)

  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};  // workers that have not finished the current generation
  std::atomic<bool> stop_{false};
  // Workers spin briefly on generation_ (decode issues hundreds of small ops per token, and a futex
  // wake-up costs ~10 us), then sleep on start_cv_. The caller likewise spins, then sleeps on done_cv_.
  std::mutex mutex_;
  std::condition_variable start_cv_, done_cv_;
};

}  // namespace hayate
