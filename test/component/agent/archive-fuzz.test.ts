// 1,000 generated and mutated archives against a real agent (`make test`); the 10,000-archive
// run is test/long/archive-fuzz.test.ts (`make test-long`). See ./archive-fuzz.ts.
import { afterAll, beforeAll, expect, it } from "vitest";
import { makePki, startAgent, type Pki, type TestAgent } from "../../../tooling/agent-fixture.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";
import { fuzzAgent } from "./archive-fuzz.ts";

const RUNS = Number(process.env["MS2M_FUZZ_RUNS"] ?? 1000);
let pki: Pki;
let agent: TestAgent;

beforeAll(async () => {
  pki = makePki();
  agent = await startAgent(pki, { host: "127.0.0.2" });
});
afterAll(async () => {
  await agent?.stop();
  await removeTempDir(pki?.dir);
});

it(
  `${RUNS} generated and mutated archives: never a 5xx or a crash, no residue, only valid layouts accepted`,
  { timeout: 900_000 },
  async () => {
    const stats = await fuzzAgent(agent, pki.ca, RUNS);
    console.log(`[archive fuzz] ${JSON.stringify(stats)}`);
    expect(stats.runs).toBe(RUNS);
    expect(stats.pristine).toBeGreaterThan(0);
    expect(Object.values(stats.rejected).reduce((a, b) => a + b, 0)).toBeGreaterThan(RUNS / 2);
  },
);
