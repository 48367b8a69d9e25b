// Data-parallel jobs: the World (rank, size, collectives) and what is known from the launcher before it.
export { initWorld, singleProcessWorld, NoMpiError } from './world.js';
export type { World, InitWorldOptions } from './world.js';
export { isLaunched, launchedRank, launchedWorldSize } from './launcher.js';
export { threadsPerRank } from './threads.js';
