// Whether an MPI launcher (Open MPI's mpirun, a PMI/PMIx launcher such as MPICH's hydra, Slurm's srun)
// started this process, read from the variables it sets. Known before MPI exists, so the library can
// explain a build without MPI instead of silently running N copies of a one-process job. Keep in step with
// launcher_world_size() in cpp/collectives.cpp, which decides the same thing before MPI_Init.

type Env = Record<string, string | undefined>;

function positive(v: string | undefined): number {
  if (v === undefined || !/^\d+$/.test(v.trim())) return 0;
  const n = Number(v.trim());
  return n > 0 && n <= 0x7fffffff ? n : 0;
}

/** The world size a launcher announced; 0 when there is no launcher, 1 when it did not say. */
function announced(env: Env): number {
  const ompi = positive(env.OMPI_COMM_WORLD_SIZE);
  if (ompi) return ompi;
  if (env.PMI_RANK !== undefined && positive(env.PMI_SIZE)) return positive(env.PMI_SIZE);
  const pmix = positive(env.PMIX_SIZE);
  if (pmix) return pmix;
  if (env.PMIX_RANK !== undefined) return 1;
  // srun sets SLURM_STEP_ID for each task; a plain `node` in an sbatch script (no step) is not a rank.
  if (env.SLURM_PROCID !== undefined && env.SLURM_STEP_ID !== undefined) return positive(env.SLURM_STEP_NUM_TASKS) || positive(env.SLURM_NTASKS);
  return 0;
}

/** Whether a launcher started this process (even as a job of one rank). */
export function isLaunched(env: Env = process.env): boolean {
  return announced(env) > 0;
}

/** The number of ranks a launcher announced for this job; 1 when no launcher started the process. */
export function launchedWorldSize(env: Env = process.env): number {
  return Math.max(1, announced(env));
}

/** This process's rank as the launcher announced it (before MPI is initialised); 0 without a launcher. */
export function launchedRank(env: Env = process.env): number {
  if (!isLaunched(env)) return 0;
  for (const key of ['OMPI_COMM_WORLD_RANK', 'PMI_RANK', 'PMIX_RANK', 'SLURM_PROCID']) {
    const v = env[key];
    if (v !== undefined && /^\d+$/.test(v.trim())) return Number(v.trim());
  }
  return 0;
}
