// The archive fuzz property of test/component/agent/archive-fuzz.ts over 10,000 generated and
// mutated archives against a real agent (real skopeo and containers-storage): `make test-long`.
import { afterAll, beforeAll, expect, it } from "vitest";
import { makePki, startAgent, type Pki, type TestAgent } from "../../../tooling/agent-fixture.ts";
import { removeTempDir } from "../../../tooling/temp-dir.ts";
import { fuzzAgent } from "../../component/agent/archive-fuzz.ts";

const RUNS = Number(process.env["MS2M_FUZZ_RUNS"] ?? 10_000);
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
  { timeout: 60 * 60_000 },
  async () => {
    const stats = await fuzzAgent(agent, pki.ca, RUNS);
    console.log(`[archive fuzz] ${JSON.stringify(stats)}`);
    expect(stats.runs).toBe(RUNS);
    expect(stats.pristine).toBeGreaterThan(0);
  },
);
