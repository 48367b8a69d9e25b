// Collectives (collectives.h): MPI when built with it (HAYATE_WITH_MPI) and launched by an MPI launcher,
// otherwise the world of this one process, where every collective is the identity.
#include "collectives.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "errors.h"

#ifdef HAYATE_WITH_MPI
#include <dlfcn.h>
// The C API only: MPI's C++ bindings (mpicxx.h) would need libmpi_cxx at link time.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace hayate::collectives {

namespace {

// One lock for every collective: the job runs MPI_THREAD_SERIALIZED, so at most one thread may be inside
// MPI at a time, whichever thread it is.
std::mutex g_mutex;
WorldInfo g_world;        // guarded by g_mutex
bool g_initialised = false;  // init() ran (MPI or not)
bool g_finalised = false;

// An environment variable parsed as a positive integer; 0 when unset or not a number.
int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return (*end == '\0' && n > 0 && n <= INT_MAX) ? static_cast<int>(n) : 0;
}

}  // namespace

int launcher_world_size() {
  // Keep in step with ts/distributed/launcher.ts, which reads the same variables to explain a missing MPI.
  if (int n = env_int("OMPI_COMM_WORLD_SIZE")) return n;                 // Open MPI's mpirun
  if (std::getenv("PMI_RANK") && env_int("PMI_SIZE")) return env_int("PMI_SIZE");  // MPICH / Intel MPI (hydra)
  if (int n = env_int("PMIX_SIZE")) return n;
  if (std::getenv("PMIX_RANK")) return 1;  // a PMIx launcher that does not export the size: MPI will tell
  // srun sets SLURM_STEP_ID for each task of a step; a plain `node` inside an sbatch script has no step
  // and is not a rank, even though SLURM_PROCID and SLURM_NTASKS are set there.
  if (std::getenv("SLURM_PROCID") && std::getenv("SLURM_STEP_ID")) {
    if (int n = env_int("SLURM_STEP_NUM_TASKS")) return n;
    if (int n = env_int("SLURM_NTASKS")) return n;
  }
  return 0;
}

#ifdef HAYATE_WITH_MPI

namespace {

// Node loads addons with RTLD_LOCAL, so libmpi and the libraries it brings (libopen-pal, libopen-rte) stay
// out of the global symbol scope; Open MPI's plugins (mca_*.so), which it dlopens during MPI_Init, then
// fail with undefined ompi_*/opal_* symbols wherever they do not link those libraries themselves (builds
// differ; with Debian's, only the load order saves the ones that do not). Re-opening the loaded libmpi
// with RTLD_GLOBAL | RTLD_NOLOAD promotes it and its dependencies to the global scope before any plugin
// loads, without loading anything new (mpi4py does the same).
void promote_libmpi_to_global() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void*>(&MPI_Init_thread), &info) && info.dli_fname &&
      dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD))
    return;
  const char* names[] = {
#ifdef HAYATE_MPI_LIBRARY
      HAYATE_MPI_LIBRARY,  // the library CMake linked (a path; dlopen matches it to the loaded file)
#endif
      "libmpi.so.40", "libmpi.so.12", "libmpi.so"};
  for (const char* name : names)
    if (dlopen(name, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD)) return;
  // Not fatal: a libmpi whose plugins are linked against it (or a static one) needs no promotion.
}

std::string mpi_error(const char* what, int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = 0;
  return std::string(what) + " failed: " + (len > 0 ? std::string(text, static_cast<size_t>(len)) : std::to_string(rc));
}

void check(int rc, const char* what) {
  if (rc != MPI_SUCCESS) fail(ErrorCode::kBackend, mpi_error(what, rc));
}

// Whether a collective must go through MPI (a world of more than one rank); after finalize() none may.
bool use_mpi(const char* what) {
  HAYATE_CHECK(!(g_world.mpi && g_finalised), ErrorCode::kInvalidArgument, std::string(what) + " after finalize()");
  return g_world.mpi && g_world.size > 1;
}

// MPI counts are int: larger buffers go in chunks. 2^26 elements (512 MiB of doubles) also stays clear of
// the transports that mishandle single messages over 2 GiB.
constexpr size_t kMaxChunk = size_t{1} << 26;

template <class T>
void allreduce_chunked(T* data, size_t n, MPI_Datatype type) {
  for (size_t off = 0; off < n; off += kMaxChunk) {
    int count = static_cast<int>(std::min(kMaxChunk, n - off));
    check(MPI_Allreduce(MPI_IN_PLACE, data + off, count, type, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
  }
}

}  // namespace

bool built_with_mpi() { return true; }

WorldInfo init() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_initialised) return g_world;
  if (launcher_world_size() == 0) {  // a plain run: no MPI at all, and no need for mpirun
    g_initialised = true;
    return g_world;
  }
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    promote_libmpi_to_global();
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
    if (provided < MPI_THREAD_SERIALIZED)
      std::fprintf(stderr, "hayate: this MPI provides thread level %d, below MPI_THREAD_SERIALIZED; collectives from worker threads may misbehave\n", provided);
  }
  // Errors come back as codes (turned into hayate::Error) instead of killing the job from inside MPI.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  WorldInfo w;
  w.mpi = true;
  check(MPI_Comm_rank(MPI_COMM_WORLD, &w.rank), "MPI_Comm_rank");
  check(MPI_Comm_size(MPI_COMM_WORLD, &w.size), "MPI_Comm_size");
  MPI_Comm local;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w.rank, MPI_INFO_NULL, &local), "MPI_Comm_split_type");
  check(MPI_Comm_rank(local, &w.local_rank), "MPI_Comm_rank");
  check(MPI_Comm_size(local, &w.local_size), "MPI_Comm_size");
  MPI_Comm_free(&local);
  g_world = w;
  g_initialised = true;
  return g_world;
}

void allreduce_sum(double* data, size_t n) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (use_mpi("allreduce_sum") && n > 0) allreduce_chunked(data, n, MPI_DOUBLE);
}

void allreduce_sum(float* data, size_t n) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (use_mpi("allreduce_sum") && n > 0) allreduce_chunked(data, n, MPI_FLOAT);
}

void broadcast(void* data, size_t bytes, int root) {
  std::lock_guard<std::mutex> lock(g_mutex);
  HAYATE_CHECK(root >= 0 && root < g_world.size, ErrorCode::kInvalidArgument,
               "broadcast root " + std::to_string(root) + " is not a rank of this world of " + std::to_string(g_world.size));
  if (!use_mpi("broadcast")) return;
  char* p = static_cast<char*>(data);
  for (size_t off = 0; off < bytes; off += kMaxChunk) {
    int count = static_cast<int>(std::min(kMaxChunk, bytes - off));
    check(MPI_Bcast(p + off, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

void barrier() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (use_mpi("barrier")) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

std::vector<std::string> allgather(const std::string& mine) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!use_mpi("allgather")) return {mine};
  HAYATE_CHECK(mine.size() <= static_cast<size_t>(INT_MAX), ErrorCode::kInvalidArgument, "allgather: string too long");
  const int size = g_world.size;
  int my_len = static_cast<int>(mine.size());
  std::vector<int> lens(static_cast<size_t>(size));
  check(MPI_Allgather(&my_len, 1, MPI_INT, lens.data(), 1, MPI_INT, MPI_COMM_WORLD), "MPI_Allgather");
  std::vector<int> displs(static_cast<size_t>(size));
  size_t total = 0;
  for (int r = 0; r < size; ++r) {
    displs[r] = static_cast<int>(total);
    total += static_cast<size_t>(lens[r]);
    // Every rank sees the same lengths, so every rank fails here together (no rank is left waiting).
    HAYATE_CHECK(total <= static_cast<size_t>(INT_MAX), ErrorCode::kInvalidArgument, "allgather: strings total over 2 GiB");
  }
  std::string all(total, '\0');
  check(MPI_Allgatherv(mine.data(), my_len, MPI_CHAR, all.data(), lens.data(), displs.data(), MPI_CHAR, MPI_COMM_WORLD),
        "MPI_Allgatherv");
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) out.emplace_back(all, static_cast<size_t>(displs[r]), static_cast<size_t>(lens[r]));
  return out;
}

void abort_job(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  // No lock: another thread may sit in a collective, holding it, waiting for the ranks this call ends.
  int initialised = 0, finalised = 0;
  MPI_Initialized(&initialised);
  MPI_Finalized(&finalised);
  if (initialised && !finalised) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

void finalize() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_world.mpi || g_finalised) return;
  g_finalised = true;
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (!finalised) MPI_Finalize();
}

#else  // no MPI in this build: the world is this process

bool built_with_mpi() { return false; }

WorldInfo init() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_initialised = true;
  return g_world;
}

void allreduce_sum(double*, size_t) {}
void allreduce_sum(float*, size_t) {}

void broadcast(void*, size_t, int root) {
  HAYATE_CHECK(root == 0, ErrorCode::kInvalidArgument,
               "broadcast root " + std::to_string(root) + " is not a rank of this world of 1");
}

void barrier() {}

std::vector<std::string> allgather(const std::string& mine) { return {mine}; }

void abort_job(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  std::exit(code);
}

void finalize() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_finalised = true;
}

#endif

WorldInfo world() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_world;
}

}  // namespace hayate::collectives
