// Order statistics for the evaluation summary and plots.

/** Linear-interpolated quantile of sorted (ascending) values; NaN when empty. */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = sorted[lo] ?? 0;
  const b = sorted[hi] ?? 0;
  return a + (b - a) * (pos - lo);
}

export function median(values: number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

/**
 * Consumer downtime: the longest gap between two consecutive applications (any pod) inside
 * [from, to], less the producer's inter-arrival time (a gap that long is normal at that rate).
 */
export function downtimeMs(appliedAt: number[], from: number, to: number, rate: number): number {
  const ts = appliedAt.filter((t) => t >= from && t <= to).sort((a, b) => a - b);
  const points = [from, ...ts, to];
  let gap = 0;
  for (let i = 1; i < points.length; i++) gap = Math.max(gap, (points[i] ?? 0) - (points[i - 1] ?? 0));
  return Math.max(0, gap - 1000 / rate);
}
