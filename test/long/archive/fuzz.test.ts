// The archive fuzz property of test/component/agent/archive-fuzz.ts over 10,000 generated and
// mutated archives against real agents (real skopeo and containers-storage): `make test-long`.
// The runs are split over MS2M_FUZZ_WORKERS agents (default 2), each with its own store and
// its own fast-check seed, so that one agent's skopeo load overlaps another's parsing; the
// residue check of each run reads only its own agent's store.
import { afterAll, beforeAll, expect, it } from "vitest";
import { makePki, startAgent, type Pki, type TestAgent } from "../../../tooling/agent-fixture.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";
import { fuzzAgent, type FuzzStats } from "../../component/agent/archive-fuzz.ts";

const RUNS = Number(process.env["MS2M_FUZZ_RUNS"] ?? 10_000);
const WORKERS = Math.max(1, Number(process.env["MS2M_FUZZ_WORKERS"] ?? 2));
// Reproduce a failure with the seed it prints: MS2M_FUZZ_SEED=<seed> (worker i uses seed + i).
const SEED = Number(process.env["MS2M_FUZZ_SEED"] ?? Math.floor(Math.random() * 2 ** 31));
let pki: Pki;
const agents: TestAgent[] = [];

beforeAll(async () => {
  pki = makePki();
  for (let i = 0; i < WORKERS; i++) agents.push(await startAgent(pki, { host: `127.0.0.${2 + i}` }));
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await removeTempDir(pki?.dir);
});

function merge(all: FuzzStats[]): FuzzStats {
  const sum = (pick: (s: FuzzStats) => Record<string, number>) => {
    const out: Record<string, number> = {};
    for (const s of all) for (const [k, v] of Object.entries(pick(s))) out[k] = (out[k] ?? 0) + v;
    return out;
  };
  return {
    runs: all.reduce((n, s) => n + s.runs, 0),
    accepted: all.reduce((n, s) => n + s.accepted, 0),
    pristine: all.reduce((n, s) => n + s.pristine, 0),
    rejected: sum((s) => s.rejected),
    kinds: sum((s) => s.kinds),
  };
}

it(
  `${RUNS} generated and mutated archives: never a 5xx or a crash, no residue, only valid layouts accepted`,
  { timeout: 60 * 60_000 },
  async () => {
    console.log(`[archive fuzz] ${WORKERS} agents, seed ${SEED}`);
    const share = (i: number) => Math.floor(RUNS / WORKERS) + (i < RUNS % WORKERS ? 1 : 0);
    const stats = merge(
      await Promise.all(agents.map((a, i) => fuzzAgent(a, pki.ca, share(i), SEED + i, `w${i}-`))),
    );
    console.log(`[archive fuzz] ${JSON.stringify(stats)}`);
    expect(stats.runs).toBe(RUNS);
    expect(stats.pristine).toBeGreaterThan(0);
  },
);
