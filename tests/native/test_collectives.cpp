// Collectives without a launcher: the world of one process, whatever the build (MPI or not), and every
// collective an identity. (Multi-rank behaviour is tested through mpirun in tests/distributed.test.ts.)
#include <cstdio>
#include <string>
#include <vector>

#include "check.h"
#include "collectives.h"

namespace coll = hayate::collectives;
using hayate::ErrorCode;

namespace {
// ctest may itself run under a launcher; these tests are about the plain run.
bool launched() {
  if (coll::launcher_world_size() == 0) return false;
  std::fprintf(stderr, "  (skipped: started by an MPI launcher)\n");
  return true;
}
}  // namespace

TEST(collectives_world_of_one_without_launcher) {
  if (launched()) return;
  coll::WorldInfo before = coll::world();
  CHECK(before.rank == 0 && before.size == 1 && before.local_rank == 0 && before.local_size == 1 && !before.mpi);
  coll::WorldInfo w = coll::init();
  CHECK(w.rank == 0);
  CHECK(w.size == 1);
  CHECK(w.local_rank == 0);
  CHECK(w.local_size == 1);
  CHECK(!w.mpi);  // no launcher: MPI is never initialised, even in an MPI build
  coll::WorldInfo again = coll::init();  // idempotent
  CHECK(again.rank == w.rank && again.size == w.size && again.mpi == w.mpi);
  CHECK(coll::world().size == 1);
}

TEST(collectives_identity_allreduce) {
  if (launched()) return;
  coll::init();
  std::vector<double> d = {1.5, -2.0, 3.25, 0.0};
  coll::allreduce_sum(d.data(), d.size());
  CHECK(d == (std::vector<double>{1.5, -2.0, 3.25, 0.0}));
  std::vector<float> f = {0.5f, 7.0f};
  coll::allreduce_sum(f.data(), f.size());
  CHECK(f == (std::vector<float>{0.5f, 7.0f}));
  coll::allreduce_sum(static_cast<double*>(nullptr), 0);  // empty is fine
}

TEST(collectives_broadcast_barrier_allgather_of_one) {
  if (launched()) return;
  coll::init();
  std::string bytes = "abc";
  coll::broadcast(bytes.data(), bytes.size(), 0);
  CHECK(bytes == "abc");
  CHECK_THROWS_CODE(coll::broadcast(bytes.data(), bytes.size(), 1), ErrorCode::kInvalidArgument);
  CHECK_THROWS_CODE(coll::broadcast(bytes.data(), bytes.size(), -1), ErrorCode::kInvalidArgument);
  coll::barrier();
  std::vector<std::string> all = coll::allgather("{\"loss\":1.5}");
  CHECK(all.size() == 1);
  CHECK(all[0] == "{\"loss\":1.5}");
  CHECK(coll::allgather("").size() == 1);
}

TEST(collectives_finalize_without_mpi_is_harmless) {
  if (launched()) return;
  coll::init();
  coll::finalize();
  coll::finalize();  // idempotent
  double x = 2.0;
  coll::allreduce_sum(&x, 1);  // a world of one stays an identity
  CHECK(x == 2.0);
}
