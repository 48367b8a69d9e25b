// Runs every registered native test; `hayate_native_tests [substring]` runs the matching ones.
#include <cstring>
#include <exception>

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
  int run = 0, failed_tests = 0;
  for (auto& t : registry()) {
    if (argc > 1 && !std::strstr(t.name, argv[1])) continue;
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
