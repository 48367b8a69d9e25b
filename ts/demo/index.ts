// `hayate demo` as a library: a tiny model trained from scratch with SFT, then GRPO, with held-out accuracy.
export { DEMO_DEFAULTS, DEMO_QUICK, resolveDemoConfig } from './config.js';
export type { DemoConfig, DemoModelConfig, DemoOverrides } from './config.js';
export { runDemo } from './pipeline.js';
export type { DemoAccuracy, DemoPhase, DemoProgress, DemoResult, RunDemoOptions } from './pipeline.js';
export { formatDemoReport } from './report.js';
export { buildDemoData, demoCompletion, demoDrills, demoExample, demoPrompt } from './task.js';
export type { DemoData } from './task.js';
