// The benchmark process's own memory, as the OS counts it (Linux): what a run reports next to the
// backend's allocator figures.
#pragma once
#include <sys/resource.h>

#include <cstdio>

namespace hayate::bench {

// Resident set now (/proc/self/statm), unlike the peak: what the model holds once it is built.
inline double current_rss_mb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * 4096.0 / 1048576.0;
}

// The process's peak resident set so far.
inline double peak_rss_mb() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;  // Linux reports KiB
}

}  // namespace hayate::bench
