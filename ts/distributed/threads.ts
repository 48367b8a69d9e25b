// CPU threads per rank: ranks on one machine share its cores, and each rank's engine would otherwise start
// a thread per core, oversubscribing the machine localSize times over.

/** The CPU threads each of `localSize` ranks on a machine with `totalCores` cores should use (at least 1). */
export function threadsPerRank(totalCores: number, localSize: number): number {
  const cores = Number.isFinite(totalCores) ? Math.floor(totalCores) : 1;
  const ranks = Number.isFinite(localSize) ? Math.max(1, Math.floor(localSize)) : 1;
  return Math.max(1, Math.floor(cores / ranks));
}
