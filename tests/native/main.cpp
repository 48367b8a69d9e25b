// Runs every registered native test.
//   hayate_native_tests [--list] [--exclude SUBSTRING]... [SUBSTRING]
// SUBSTRING runs only the tests whose name contains it; --exclude (repeatable) skips the tests whose name
// contains its argument; --list prints the selected names, one per line on stdout, and runs nothing.
// bench/gpu/validate.sh lists `cuda_op/` and runs each op-check family in a process of its own.
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "check.h"

namespace hayate_test {
std::vector<TestCase>& registry() {
  static std::vector<TestCase> r;
  return r;
}
int g_failures = 0;
}  // namespace hayate_test

int main(int argc, char** argv) {
  using namespace hayate_test;
  bool list = false;
  const char* filter = nullptr;
  std::vector<const char*> excludes;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--list") == 0) {
      list = true;
    } else if (std::strcmp(argv[i], "--exclude") == 0) {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "hayate_native_tests: --exclude needs a substring\n");
        return 2;
      }
      excludes.push_back(argv[++i]);
    } else if (std::strncmp(argv[i], "--", 2) == 0 && argv[i][2] != '\0') {
      std::fprintf(stderr, "usage: hayate_native_tests [--list] [--exclude SUBSTRING]... [SUBSTRING]\n");
      return 2;
    } else if (filter) {
      std::fprintf(stderr, "hayate_native_tests: one name filter at most ('%s', then '%s')\n", filter, argv[i]);
      return 2;
    } else {
      filter = argv[i];
    }
  }
  auto selected = [&](const TestCase& t) {
    if (filter && !std::strstr(t.name, filter)) return false;
    for (const char* x : excludes)
      if (std::strstr(t.name, x)) return false;
    return true;
  };
  if (list) {
    for (auto& t : registry())
      if (selected(t)) std::printf("%s\n", t.name);
    return 0;
  }
  int run = 0, failed_tests = 0;
  for (auto& t : registry()) {
    if (!selected(t)) continue;
    int before = g_failures;
    std::fprintf(stderr, "[ RUN  ] %s\n", t.name);
    try {
      t.fn();
    } catch (const std::exception& e) {
      report(__FILE__, __LINE__, std::string("uncaught exception: ") + e.what());
    }
    ++run;
    if (g_failures != before) ++failed_tests;
    std::fprintf(stderr, "[ %s ] %s\n", g_failures != before ? "FAIL" : " OK ", t.name);
  }
  std::printf("%d passed, %d failed\n", run - failed_tests, failed_tests);
  return failed_tests == 0 ? 0 : 1;
}
