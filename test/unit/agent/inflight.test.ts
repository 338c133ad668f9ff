import { describe, expect, it } from "vitest";
import { InFlight, KeyedLock } from "../../../src/agent/inflight.ts";

/** A promise settled from the outside. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every queued promise callback run. */
const flush = () => new Promise<void>((r) => setImmediate(r));

/** Whether `p` has settled by now. */
async function isSettled(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  await flush();
  return settled;
}

describe("InFlight.join", () => {
  it("a concurrent identical request joins the running work: one run, one result", async () => {
    const f = new InFlight();
    const gate = deferred<string>();
    let runs = 0;
    const work = () => {
      runs++;
      return gate.promise;
    };
    const first = f.join("m1", "checkpoint app", work);
    const second = f.join("m1", "checkpoint app", work);
    expect(second).toBe(first);
    expect(f.has("m1", "checkpoint app")).toBe(true);
    gate.resolve("archive-1");
    expect(await Promise.all([first, second])).toEqual(["archive-1", "archive-1"]);
    expect(runs).toBe(1);
  });

  it("joiners share the error; the key is free again afterwards", async () => {
    const f = new InFlight();
    const gate = deferred<string>();
    const first = f.join("m1", "k", () => gate.promise);
    const second = f.join("m1", "k", () => Promise.resolve("never run"));
    gate.reject(new Error("kubelet said no"));
    await expect(first).rejects.toThrow("kubelet said no");
    await expect(second).rejects.toThrow("kubelet said no");
    expect(f.has("m1", "k")).toBe(false);
    await expect(f.join("m1", "k", () => Promise.resolve("retried"))).resolves.toBe("retried");
  });

  it("finished work is not a cache: the next request runs again", async () => {
    const f = new InFlight();
    let runs = 0;
    const work = async () => ++runs;
    expect(await f.join("m1", "k", work)).toBe(1);
    expect(await f.join("m1", "k", work)).toBe(2);
  });

  it("other keys and other migrations run on their own", async () => {
    const f = new InFlight();
    const gate = deferred<string>();
    const a = f.join("m1", "send app agent", () => gate.promise);
    const b = f.join("m1", "send app registry", () => Promise.resolve("b"));
    const c = f.join("m2", "send app agent", () => Promise.resolve("c"));
    expect(b).not.toBe(a);
    expect(c).not.toBe(a);
    expect(await b).toBe("b");
    expect(await c).toBe("c");
    expect(f.busy("m1")).toBe(true);
    expect(f.busy("m2")).toBe(false);
    gate.resolve("a");
    expect(await a).toBe("a");
    expect(f.busy("m1")).toBe(false);
  });

  it("a function that throws at once is a rejection, and nothing stays tracked", async () => {
    const f = new InFlight();
    const boom = (): Promise<string> => {
      throw new Error("sync");
    };
    await expect(f.join("m1", "k", boom)).rejects.toThrow("sync");
    expect(f.migrations).toEqual([]);
  });
});

describe("InFlight.track", () => {
  it("is never joined: two loads of one migration both run", async () => {
    const f = new InFlight();
    let runs = 0;
    const gate = deferred();
    const load = async () => {
      runs++;
      await gate.promise;
    };
    const one = f.track("m1", load);
    const two = f.track("m1", load);
    expect(two).not.toBe(one);
    expect(runs).toBe(2);
    expect(f.busy("m1")).toBe(true);
    gate.resolve();
    await Promise.all([one, two]);
    expect(f.busy("m1")).toBe(false);
  });

  it("without a migration the work runs untracked", async () => {
    const f = new InFlight();
    const gate = deferred<number>();
    for (const none of [null, undefined, ""]) void f.track(none, () => gate.promise);
    expect(f.migrations).toEqual([]);
    gate.resolve(1);
  });
});

describe("InFlight.settled (what a release waits for)", () => {
  it("waits for every piece of the migration's work running now, however it ends", async () => {
    const f = new InFlight();
    const checkpoint = deferred<string>();
    const load = deferred();
    const joined = f.join("m1", "checkpoint app", () => checkpoint.promise);
    const loading = f.track("m1", () => load.promise);
    const other = deferred();
    void f.track("m2", () => other.promise);

    const released = f.settled("m1");
    expect(await isSettled(released)).toBe(false);
    checkpoint.reject(new Error("failed"));
    await expect(joined).rejects.toThrow("failed");
    expect(await isSettled(released)).toBe(false); // the load is still running
    load.resolve();
    await loading;
    await expect(released).resolves.toBeUndefined(); // never rejects, and m2 is not waited for
    expect(f.busy("m2")).toBe(true);
    other.resolve();
  });

  it("runs in order: the release goes on only after the work it found", async () => {
    const f = new InFlight();
    const order: string[] = [];
    const send = deferred();
    void f.join("m1", "send app", async () => {
      await send.promise;
      order.push("send done");
    });
    const release = f.settled("m1").then(() => order.push("release"));
    await flush();
    order.push("before send");
    send.resolve();
    await release;
    expect(order).toEqual(["before send", "send done", "release"]);
  });

  it("does not wait for work started after it was asked", async () => {
    const f = new InFlight();
    const released = f.settled("m1");
    const late = deferred();
    void f.track("m1", () => late.promise);
    await expect(released).resolves.toBeUndefined();
    expect(f.busy("m1")).toBe(true);
    late.resolve();
  });

  it("a migration with nothing in flight settles at once", async () => {
    expect(await isSettled(new InFlight().settled("m-none"))).toBe(true);
  });
});

describe("KeyedLock", () => {
  it("runs the work of one key one after another, in call order", async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const first = deferred();
    const a = lock.run("m1/app", async () => {
      order.push("a start");
      await first.promise;
      order.push("a end");
    });
    const b = lock.run("m1/app", async () => {
      order.push("b");
    });
    await flush();
    expect(order).toEqual(["a start"]);
    first.resolve();
    await Promise.all([a, b]);
    expect(order).toEqual(["a start", "a end", "b"]);
    await flush();
    expect(lock.size).toBe(0);
  });

  it("a failure is its caller's alone and does not block the next", async () => {
    const lock = new KeyedLock();
    const failed = lock.run("k", () => Promise.reject(new Error("write failed")));
    const next = lock.run("k", async () => "written");
    await expect(failed).rejects.toThrow("write failed");
    await expect(next).resolves.toBe("written");
  });

  it("different keys do not wait for each other", async () => {
    const lock = new KeyedLock();
    const held = deferred();
    void lock.run("m1/app", () => held.promise);
    await expect(lock.run("m1/sidecar", async () => "free")).resolves.toBe("free");
    held.resolve();
  });
});
