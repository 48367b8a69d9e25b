// Metrics: JSONL writer with TRL's names, terminal progress line, reward-curve SVG.
export { METRIC, rewardMetricName } from './names.js';
export { MetricsWriter, metricsLine, readMetrics } from './writer.js';
export type { MetricValue, MetricsRecord, MetricsWriterOptions } from './writer.js';
export { ProgressLine, formatDuration, formatProgress, formatValue } from './progress.js';
export type { ProgressLineOptions, ProgressState, ProgressStream } from './progress.js';
export { lineChartSvg, niceDomain, niceTicks, plotMetricsFile, rewardCurveSvg, writeSvg } from './plot.js';
export type { ChartOptions, Point, RewardCurveOptions, Series } from './plot.js';
export { mean, movingAverage, std } from './stats.js';
