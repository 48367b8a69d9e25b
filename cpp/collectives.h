// Collectives between the processes of a data-parallel job: all-reduce (sum), broadcast, barrier and an
// all-gather of small strings (metrics). They run on MPI when the engine is built with it (HAYATE_WITH_MPI,
// found by CMake at build time) and the process was started by an MPI launcher (mpirun, srun); otherwise
// the world is this one process and every collective is the identity. Each call blocks until every rank
// has made it, so it must run off the JS thread; calls are serialised inside (MPI_THREAD_SERIALIZED), so
// any thread may make them. Device buffers are staged through the host (no NCCL yet).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

namespace hayate::collectives {

struct WorldInfo {
  int rank = 0;
  int size = 1;
  int local_rank = 0;   // rank among the processes on this machine
  int local_size = 1;
  bool mpi = false;     // true when MPI is initialised (a launched job, even of one rank)
};

// Whether this build has MPI at all.
bool built_with_mpi();
// The world size an MPI launcher announced in this process's environment (Open MPI's mpirun, a PMI/PMIx
// launcher such as MPICH's hydra, Slurm's srun); 0 when the process was not started by one. init() uses
// MPI only when this is non-zero, so a plain run never initialises MPI.
int launcher_world_size();
// Initialises MPI once when built with it and launched by a launcher (idempotent; the later calls return
// the same world). Without MPI, or outside a launcher, the world of one process.
WorldInfo init();
// The world as init() found it (one process before init()).
WorldInfo world();

// Collectives before init() are those of the one-process world (identities); after finalize() of an MPI
// world they throw hayate::Error. MPI failures throw hayate::Error (kBackend).
void allreduce_sum(double* data, size_t n);
void allreduce_sum(float* data, size_t n);
void broadcast(void* data, size_t bytes, int root);
void barrier();
// Every rank's string, in rank order.
std::vector<std::string> allgather(const std::string& mine);
// Ends every process of the job with `code` (MPI_Abort); outside MPI, exits this process.
[[noreturn]] void abort_job(int code);
// Finalises MPI (at process exit; idempotent).
void finalize();

}  // namespace hayate::collectives
