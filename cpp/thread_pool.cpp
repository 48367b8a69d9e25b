#include "thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace hayate {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or about kSpinMicros have passed; true when done() became true. Long enough to
// bridge the gaps between consecutive ops of one decode step, short enough that an idle pool sleeps.
constexpr int64_t kSpinMicros = 100;

template <class Done>
bool spin_until(Done done) {
  auto start = std::chrono::steady_clock::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() - start > std::chrono::microseconds(kSpinMicros)) return done();
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  int n = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
  }
  start_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

bool ThreadPool::take(int64_t& begin, int64_t& end) {
  int64_t cur = next_.load(std::memory_order_relaxed);
  for (;;) {
    if (cur >= job_n_) return false;
    const int64_t size = std::max(job_grain_, (job_n_ - cur) / (2 * job_chunks_));
    const int64_t stop = std::min(job_n_, cur + size);
    if (next_.compare_exchange_weak(cur, stop, std::memory_order_relaxed)) {
      begin = cur;
      end = stop;
      return true;
    }
  }
}

void ThreadPool::run_chunk(int index) noexcept {
  if (index >= job_chunks_) return;
  try {
    if (job_grain_ > 0) {
      int64_t begin, end;
      while (take(begin, end)) (*job_)(begin, end);
      return;
    }
    const int64_t begin = job_n_ * index / job_chunks_, end = job_n_ * (index + 1) / job_chunks_;
    if (begin < end) (*job_)(begin, end);
  } catch (...) {
    // a dynamic job stops handing out chunks after the first error
    if (job_grain_ > 0) next_.store(job_n_, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error_) error_ = std::current_exception();
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] { return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen; };
    if (!spin_until(ready)) {
      std::unique_lock<std::mutex> lock(mutex_);
      start_cv_.wait(lock, ready);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_chunk(index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // pairs with the caller's predicate check: no lost wake-up
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t min_per_thread) {
  if (n <= 0) return;
  run(n, fn, static_cast<int>(std::min<int64_t>(size(), n / std::max<int64_t>(min_per_thread, 1))), 0);
}

void ThreadPool::parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  run(n, fn, static_cast<int>(std::min<int64_t>(size(), n / grain)), grain);
}

void ThreadPool::run(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int chunks, int64_t grain) {
  if (chunks <= 1 || workers_.empty()) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &fn;
    job_n_ = n;
    job_chunks_ = chunks;
    job_grain_ = grain;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_cv_.notify_all();  // cheap when every worker is still spinning
  run_chunk(0);
  auto done = [&] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(done)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_cv_.wait(lock, done);
  }
  job_ = nullptr;
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

}  // namespace hayate
