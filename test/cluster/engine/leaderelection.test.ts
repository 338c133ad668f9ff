import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { KubeLeaseStore } from "../../../src/controller/adapters/lease-store.ts";
import { LeaderElector, type LeaseRecord, type LeaseStore } from "../../../src/engine/leaderelection.ts";
import { realTimerClock } from "../../../src/engine/timers.ts";
import { sleep, waitFor } from "../../../tooling/exec.ts";
import { mustSucceed } from "../../../tooling/stack/manifests.ts";
import { SYSTEM_NS, controllerKubeConfig, engineEnv, installApi, memoryLogger, randomSuffix } from "./env.ts";

// Two or three electors on one real coordination.k8s.io Lease in ms2m-system, each acting as the
// ms2m-controller ServiceAccount (so the Role from config/ is what allows it), with short
// durations: 3 s lease, 2 s renew deadline, 250 ms retry period.
const env = engineEnv();
const LEASE_MS = 3000;
const timing = { leaseDurationMs: LEASE_MS, renewDeadlineMs: 2000, retryPeriodMs: 250 };

/** A store that can freeze: every call after `crash()` never settles, as in a killed process. */
class CrashableStore implements LeaseStore {
  private readonly inner: LeaseStore;
  crashed = false;
  constructor(inner: LeaseStore) {
    this.inner = inner;
  }
  private gate<T>(f: () => Promise<T>): Promise<T> {
    return this.crashed ? new Promise<T>(() => undefined) : f();
  }
  get() {
    return this.gate(() => this.inner.get());
  }
  create(r: LeaseRecord) {
    return this.gate(() => this.inner.create(r));
  }
  update(r: LeaseRecord) {
    return this.gate(() => this.inner.update(r));
  }
}

interface Candidate {
  elector: LeaderElector;
  store: CrashableStore;
  started: number;
  stopped: number;
}

let electors: Candidate[] = [];
const logs: Array<Array<Record<string, unknown>>> = [];

async function candidates(lease: string, n: number): Promise<Candidate[]> {
  const out: Candidate[] = [];
  for (let i = 0; i < n; i++) {
    const kc = await controllerKubeConfig(env);
    const store = new CrashableStore(new KubeLeaseStore(kc, SYSTEM_NS, lease));
    const logger = memoryLogger();
    logs.push(logger.lines);
    const c: Candidate = { store, started: 0, stopped: 0, elector: undefined as unknown as LeaderElector };
    c.elector = new LeaderElector({
      identity: `elector-${i}`,
      store,
      clock: realTimerClock,
      log: logger.log,
      ...timing,
      onStartedLeading: () => c.started++,
      onStoppedLeading: () => c.stopped++,
    });
    out.push(c);
  }
  electors.push(...out);
  return out;
}

const leaders = (cs: Candidate[]) => cs.filter((c) => c.elector.isLeader());

async function holderWithKubectl(lease: string): Promise<string> {
  return mustSucceed(
    await env.kubectl(["-n", SYSTEM_NS, "get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}"]),
    "kubectl get lease",
  );
}

async function waitForLeader(cs: Candidate[], timeoutMs: number): Promise<Candidate> {
  return waitFor(
    "a leader",
    async () => {
      const l = leaders(cs);
      expect(l.length).toBeLessThanOrEqual(1);
      return l[0];
    },
    { timeoutMs, intervalMs: 20 },
  );
}

beforeAll(async () => {
  await installApi(env);
});

afterEach(async (ctx) => {
  if (ctx.task.result?.state === "fail") console.log(JSON.stringify(logs.flat().slice(0, 10), null, 1));
  logs.length = 0;
  for (const c of electors) {
    c.store.crashed = false;
    await c.elector.stop();
  }
  electors = [];
});

describe("leader election on a real Lease", () => {
  it("elects exactly one of three, visible with kubectl, and hands over at once on graceful stop", async () => {
    const lease = `engine-le-${randomSuffix()}`;
    const cs = await candidates(lease, 3);
    for (const c of cs) c.elector.start();
    const first = await waitForLeader(cs, 5000);

    // For two lease durations: never more than one leader, and nobody else ever started.
    const until = Date.now() + 2 * LEASE_MS;
    while (Date.now() < until) {
      expect(leaders(cs).length).toBeLessThanOrEqual(1);
      await sleep(25);
    }
    expect(leaders(cs)).toEqual([first]);
    expect(cs.map((c) => c.started)).toEqual(cs.map((c) => (c === first ? 1 : 0)));
    expect(await holderWithKubectl(lease)).toBe(first.elector.identity);

    // Graceful stop releases the lease: another one leads well before a lease duration.
    const t0 = Date.now();
    await first.elector.stop();
    const rest = cs.filter((c) => c !== first);
    const second = await waitForLeader(rest, LEASE_MS);
    const takeoverMs = Date.now() - t0;
    console.log(`[engine] lease handed over ${takeoverMs} ms after a graceful stop`);
    expect(takeoverMs).toBeLessThan(LEASE_MS);
    expect(await holderWithKubectl(lease)).toBe(second.elector.identity);
    const transitions = mustSucceed(
      await env.kubectl(["-n", SYSTEM_NS, "get", "lease", lease, "-o", "jsonpath={.spec.leaseTransitions}"]),
      "kubectl get lease",
    );
    expect(Number(transitions)).toBeGreaterThanOrEqual(1);
    expect(first.stopped).toBe(0); // a stop is not a loss
  });

  it("after a crash (no release), another takes over only once the lease has expired", async () => {
    const lease = `engine-le-${randomSuffix()}`;
    const cs = await candidates(lease, 2);
    for (const c of cs) c.elector.start();
    const first = await waitForLeader(cs, 5000);
    const other = cs.find((c) => c !== first)!;
    await sleep(500);

    // Freeze the leader between two renewals: its record stays in the Lease as it was.
    const before = (await env.coordination.readNamespacedLease({ name: lease, namespace: SYSTEM_NS })).spec!;
    const lastRenew = new Date(before.renewTime!).getTime();
    first.store.crashed = true;
    const crashedAt = Date.now();

    // It stops calling itself leader after the renew deadline; the other waits a lease duration.
    const second = await waitForLeader([other], LEASE_MS * 3);
    const takeoverMs = Date.now() - crashedAt;
    console.log(`[engine] lease taken over ${takeoverMs} ms after a crash (lease ${LEASE_MS} ms)`);
    expect(Date.now() - lastRenew).toBeGreaterThanOrEqual(LEASE_MS - 300);
    expect(takeoverMs).toBeLessThan(LEASE_MS + 4 * timing.retryPeriodMs + 1000);
    expect(first.elector.isLeader()).toBe(false);
    expect(await holderWithKubectl(lease)).toBe(second.elector.identity);
  });
});
