// Minimal native test harness (no external dependencies so the GPU machine can build it with CMake alone).
// TEST(name) { CHECK(cond); CHECK_NEAR(a, b, tol); CHECK_THROWS_CODE(expr, code); } and a TempDir for
// tests that read files.
#pragma once
#include <dirent.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "errors.h"

namespace hayate_test {

struct TestCase {
  const char* name;
  std::function<void()> fn;
};
std::vector<TestCase>& registry();
extern int g_failures;

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

inline void report(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "  FAILED %s:%d: %s\n", file, line, what.c_str());
  ++g_failures;
}

// A fresh directory under /tmp, removed (one level deep) at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/hayate_test_XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) ::unlink((path + "/" + e->d_name).c_str());
      ::closedir(d);
    }
    ::rmdir(path.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string file(const std::string& name) const { return path + "/" + name; }
  void write(const std::string& name, const std::string& text) const {
    FILE* f = std::fopen(file(name).c_str(), "wb");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
};

}  // namespace hayate_test

#define HT_CAT2(a, b) a##b
#define HT_CAT(a, b) HT_CAT2(a, b)
#define TEST(name)                                                                     \
  static void name();                                                                  \
  static ::hayate_test::Registrar HT_CAT(registrar_, name)(#name, name);               \
  static void name()

#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) ::hayate_test::report(__FILE__, __LINE__, #cond);   \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                           \
  do {                                                                                                  \
    double ht_a = (a), ht_b = (b), ht_t = (tol);                                                        \
    if (!(std::fabs(ht_a - ht_b) <= ht_t))                                                              \
      ::hayate_test::report(__FILE__, __LINE__,                                                         \
                            std::string(#a " ~ " #b ": ") + std::to_string(ht_a) + " vs " +             \
                                std::to_string(ht_b) + " (tol " + std::to_string(ht_t) + ")");          \
  } while (0)

// Expects `expr` to throw hayate::Error with the given ErrorCode.
#define CHECK_THROWS_CODE(expr, ecode)                                                                  \
  do {                                                                                                  \
    bool ht_ok = false;                                                                                 \
    try {                                                                                               \
      (void)(expr);                                                                                     \
    } catch (const ::hayate::Error& e) {                                                                \
      ht_ok = e.code() == (ecode);                                                                      \
      if (!ht_ok) ::hayate_test::report(__FILE__, __LINE__, std::string("wrong code: ") + e.what());    \
      ht_ok = true;                                                                                     \
    } catch (const std::exception& e) {                                                                 \
      ::hayate_test::report(__FILE__, __LINE__, std::string("non-hayate exception: ") + e.what());      \
      ht_ok = true;                                                                                     \
    }                                                                                                   \
    if (!ht_ok) ::hayate_test::report(__FILE__, __LINE__, "expected an exception from " #expr);         \
  } while (0)
