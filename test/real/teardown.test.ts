import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, expect, it, vi } from "vitest";
import { run } from "../../tooling/exec.ts";
import { waitForNodeReady } from "../../tooling/cluster/nodes.ts";
import { createNamespace, imagesOf, isReady, realTestEnv, waitForGone } from "./env.ts";
import { waitFor } from "../../tooling/exec.ts";

// Stopping a real node leaves nothing on the machine: no process of the node (kubelet, CRI-O,
// conmon, containers), no cgroup of it in any hierarchy, no mount (its mount namespace, the
// containers' overlays and pinned namespaces die with it), no network namespace, no route to its
// pods, no folder. (The machine-wide sysctls and host mount points are restored when the last
// real node goes: hack/cluster.ts down and the real tier's global teardown.)
vi.setConfig({ testTimeout: 180_000 });
const env = realTestEnv();
let ns: string | undefined;
afterAll(async () => {
  if (ns) await env.core.deleteNamespace({ name: ns }).catch(() => undefined);
});

it("a stopped real node leaves no process, cgroup, mount, namespace, route or folder", async () => {
  const node = await env.cluster.startRealNode("node-d", { index: 3 });
  await waitForNodeReady(env.kc, "node-d", 120_000);
  ns = await createNamespace(env, "real-td");
  await env.core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: "sleeper" },
      spec: {
        nodeName: "node-d",
        containers: [
          {
            name: "c",
            image: imagesOf(env).workload,
            command: ["node", "-e", "setInterval(() => {}, 1000)"],
          },
        ],
      },
    },
  });
  await waitFor("sleeper running", async () => {
    const p = await env.core.readNamespacedPod({ namespace: ns!, name: "sleeper" });
    return isReady(p) ? true : undefined;
  });
  const cgroup = node.cgroup;
  const freezerProcs = await run("find", [
    `/sys/fs/cgroup/freezer/${cgroup}`,
    "-name",
    "cgroup.procs",
    "-exec",
    "cat",
    "{}",
    "+",
  ]);
  const pids = freezerProcs.split("\n").filter(Boolean).map(Number);
  // kubelet, CRI-O, conmon and the container's process at least.
  expect(pids.length).toBeGreaterThanOrEqual(4);
  const mountNs = node.mountNs;
  const dir = node.dir;

  await env.cluster.stopNode("node-d");

  // Killed processes that were this process's children stay zombies until Node reaps them.
  await waitFor(
    "the node's processes reaped",
    async () => (pids.every((pid) => !existsSync(`/proc/${pid}`)) ? true : undefined),
    { timeoutMs: 5_000 },
  );
  for (const h of await readdir("/sys/fs/cgroup")) {
    expect(existsSync(join("/sys/fs/cgroup", h, cgroup)), `${h}/${cgroup}`).toBe(false);
  }
  const mounts = await readFile("/proc/self/mountinfo", "utf8");
  expect(mounts).not.toContain(dir);
  expect(mounts).not.toContain(mountNs);
  expect((await run("ip", ["netns", "list"])).split("\n").some((l) => l.startsWith(node.netns))).toBe(false);
  expect(await run("ip", ["route", "show", node.info.podCidr])).toBe("");
  for (const other of env.cluster.realNodeList()) {
    expect(await run("ip", ["netns", "exec", other.netns, "ip", "route", "show", node.info.podCidr])).toBe(
      "",
    );
  }
  expect(existsSync(dir)).toBe(false);
  await waitForGone(() => env.core.readNode({ name: "node-d" }), "Node node-d");
});
