// Small SVG writers for the evaluation plots (no plotting dependency): box plots grouped by
// message rate, one box per configuration; and stacked horizontal bars of median phase times.
import { quantile } from "./stats.ts";

export const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#76b7b2",
  "#edc948",
  "#b07aa1",
  "#9c755f",
];

const esc = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
const fmt = (n: number) => (Math.abs(n) >= 10 ? n.toFixed(0) : n.toFixed(1));

/** "Nice" tick step for a 0..max axis with about `count` ticks. */
function ticks(max: number, count = 6): number[] {
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = 0; v <= max + 1e-9; v += step) out.push(v);
  return out;
}

function text(x: number, y: number, s: string, attrs = ""): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${esc(s)}</text>`;
}

export interface BoxSeries {
  /** Legend name (configuration). */
  name: string;
  /** Samples per group (message rate), same order as `groups`. */
  values: number[][];
}

/** Box plots: whiskers at min/max, box at the quartiles, a line at the median, dots for samples. */
export function boxPlot(opts: {
  title: string;
  /** A second, smaller line under the title (e.g. which runtime produced the numbers). */
  subtitle?: string;
  yLabel: string;
  groups: string[];
  xLabel: string;
  series: BoxSeries[];
}): string {
  const W = 900;
  const H = 520;
  const m = { l: 70, r: 20, t: opts.subtitle ? 66 : 50, b: 110 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = opts.series.flatMap((s) => s.values.flat());
  const yMax = Math.max(1, ...all) * 1.08;
  const yt = ticks(yMax);
  const top = yt[yt.length - 1] ?? yMax;
  const y = (v: number) => m.t + ph - (v / top) * ph;
  const gw = pw / Math.max(1, opts.groups.length);
  const bw = Math.min(40, (gw * 0.8) / Math.max(1, opts.series.length));
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(text(W / 2, 28, opts.title, 'text-anchor="middle" font-size="18" font-weight="bold"'));
  if (opts.subtitle) parts.push(text(W / 2, 48, opts.subtitle, 'text-anchor="middle" font-size="12"'));
  for (const t of yt) {
    parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y(t)}" y2="${y(t)}" stroke="#ddd"/>`);
    parts.push(text(m.l - 8, y(t) + 4, fmt(t), 'text-anchor="end" font-size="12"'));
  }
  parts.push(`<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${m.t + ph}" y2="${m.t + ph}" stroke="#333"/>`);
  parts.push(
    text(
      18,
      m.t + ph / 2,
      opts.yLabel,
      `text-anchor="middle" font-size="13" transform="rotate(-90 18 ${m.t + ph / 2})"`,
    ),
  );
  parts.push(text(m.l + pw / 2, m.t + ph + 40, opts.xLabel, 'text-anchor="middle" font-size="13"'));
  opts.groups.forEach((g, gi) => {
    const gx = m.l + gi * gw;
    parts.push(text(gx + gw / 2, m.t + ph + 18, g, 'text-anchor="middle" font-size="12"'));
    opts.series.forEach((s, si) => {
      const vals = [...(s.values[gi] ?? [])].sort((a, b) => a - b);
      if (vals.length === 0) return;
      const cx = gx + gw / 2 + (si - (opts.series.length - 1) / 2) * bw * 1.1;
      const color = PALETTE[si % PALETTE.length];
      const [q1, med, q3] = [quantile(vals, 0.25), quantile(vals, 0.5), quantile(vals, 0.75)];
      const lo = vals[0] ?? 0;
      const hi = vals[vals.length - 1] ?? 0;
      parts.push(
        `<line x1="${cx}" x2="${cx}" y1="${y(hi)}" y2="${y(lo)}" stroke="${color}" stroke-width="1.5"/>`,
      );
      for (const v of [lo, hi])
        parts.push(
          `<line x1="${cx - bw / 4}" x2="${cx + bw / 4}" y1="${y(v)}" y2="${y(v)}" stroke="${color}"/>`,
        );
      const bh = Math.max(1, y(q1) - y(q3));
      parts.push(
        `<rect x="${cx - bw / 2}" y="${y(q3)}" width="${bw}" height="${bh}" fill="${color}" fill-opacity="0.35" stroke="${color}"/>`,
      );
      parts.push(
        `<line x1="${cx - bw / 2}" x2="${cx + bw / 2}" y1="${y(med)}" y2="${y(med)}" stroke="#111" stroke-width="2"/>`,
      );
      for (const v of vals) parts.push(`<circle cx="${cx}" cy="${y(v)}" r="2.2" fill="${color}"/>`);
      parts.push(`<title>${esc(`${s.name} @ ${g}: median ${fmt(med)}`)}</title>`);
    });
  });
  legend(
    parts,
    opts.series.map((s) => s.name),
    m.l,
    H - 45,
    W - m.l - m.r,
  );
  return svg(W, H, parts);
}

export interface StackRow {
  name: string;
  /** Seconds per segment, in `segments` order. */
  values: number[];
}

/** One horizontal bar per row, stacked by segment (phase), with the total at the end. */
export function stackedBars(opts: {
  title: string;
  /** A second, smaller line under the title (e.g. which runtime produced the numbers). */
  subtitle?: string;
  xLabel: string;
  segments: string[];
  rows: StackRow[];
}): string {
  const W = 900;
  const rowH = 44;
  const m = { l: 250, r: 70, t: opts.subtitle ? 66 : 50, b: 110 };
  const ph = opts.rows.length * rowH;
  const H = m.t + ph + m.b;
  const pw = W - m.l - m.r;
  const maxTotal = Math.max(1, ...opts.rows.map((r) => r.values.reduce((a, b) => a + b, 0)));
  const xt = ticks(maxTotal * 1.05);
  const right = xt[xt.length - 1] ?? maxTotal;
  const x = (v: number) => m.l + (v / right) * pw;
  const parts: string[] = [`<rect width="${W}" height="${H}" fill="white"/>`];
  parts.push(text(W / 2, 28, opts.title, 'text-anchor="middle" font-size="18" font-weight="bold"'));
  if (opts.subtitle) parts.push(text(W / 2, 48, opts.subtitle, 'text-anchor="middle" font-size="12"'));
  for (const t of xt) {
    parts.push(`<line x1="${x(t)}" x2="${x(t)}" y1="${m.t}" y2="${m.t + ph}" stroke="#ddd"/>`);
    parts.push(text(x(t), m.t + ph + 18, fmt(t), 'text-anchor="middle" font-size="12"'));
  }
  parts.push(text(m.l + pw / 2, m.t + ph + 40, opts.xLabel, 'text-anchor="middle" font-size="13"'));
  opts.rows.forEach((r, ri) => {
    const yy = m.t + ri * rowH + 8;
    parts.push(text(m.l - 10, yy + rowH / 2, r.name, 'text-anchor="end" font-size="13"'));
    let acc = 0;
    r.values.forEach((v, si) => {
      if (v <= 0) return;
      const color = PALETTE[si % PALETTE.length];
      parts.push(
        `<rect x="${x(acc)}" y="${yy}" width="${Math.max(0.5, x(acc + v) - x(acc))}" height="${rowH - 16}" fill="${color}"><title>${esc(`${opts.segments[si]}: ${v.toFixed(2)} s`)}</title></rect>`,
      );
      acc += v;
    });
    parts.push(text(x(acc) + 6, yy + rowH / 2, `${acc.toFixed(2)} s`, 'font-size="12"'));
  });
  legend(parts, opts.segments, m.l, H - 45, pw);
  return svg(W, H, parts);
}

function legend(parts: string[], names: string[], x0: number, y0: number, width: number): void {
  let x = x0;
  let y = y0;
  names.forEach((n, i) => {
    const w = 24 + n.length * 7.2;
    if (x + w > x0 + width) {
      x = x0;
      y += 20;
    }
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${PALETTE[i % PALETTE.length]}"/>`);
    parts.push(text(x + 17, y, n, 'font-size="12"'));
    x += w;
  });
}

function svg(w: number, h: number, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">\n${parts.join("\n")}\n</svg>\n`;
}
