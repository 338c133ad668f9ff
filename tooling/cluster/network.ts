import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run, tryRun } from "../exec.ts";
import { pidAlive } from "../process.ts";

/**
 * The test network. kube-apiserver refuses to proxy to kubelets on loopback addresses, so
 * simulated nodes need real-looking addresses. Each cluster gets a slot: a /27 of
 * 198.51.100.0/24 (TEST-NET-2, reserved for documentation) on a Linux bridge `ms2m<slot>`.
 * The host side of the bridge (.1 of the slot) is where the control plane listens; each
 * simulated node is a network namespace with a veth into the bridge and its own address.
 * Nothing is routed off the bridge: node namespaces have no default route.
 *
 * 192.0.2.0/24 (suggested by the field notes) is not used: on these machines it is the
 * real uplink.
 */
export const TEST_NET = "198.51.100";
export const SLOTS = 8;
const SLOT_ROOT = process.env.MS2M_SLOT_DIR ?? "/tmp/ms2m-slots";

export interface ClusterNetwork {
  slot: number;
  bridge: string;
  /** Address of the host on the bridge: control plane, broker relay, registry. */
  hostIp: string;
  prefixLength: number;
  /** Address for the n-th simulated node (n starts at 0). */
  nodeIp(n: number): string;
}

export function networkForSlot(slot: number): ClusterNetwork {
  const base = slot * 32;
  return {
    slot,
    bridge: `ms2m${slot}`,
    hostIp: `${TEST_NET}.${base + 1}`,
    prefixLength: 27,
    nodeIp: (n: number) => {
      if (n < 0 || n > 28) throw new Error(`node index ${n} out of range for a /27 slot`);
      return `${TEST_NET}.${base + 2 + n}`;
    },
  };
}

export interface SlotLease {
  slot: number;
  dir: string;
  release(): Promise<void>;
}

/**
 * Claims a free slot. A slot whose owner process is gone is reclaimed: `sweep` removes
 * what that owner left behind (processes, namespaces, bridge) before reuse.
 */
export async function acquireSlot(
  ownerPid: number,
  sweep: (slot: number, dir: string) => Promise<void>,
  preferred?: number,
): Promise<SlotLease> {
  await mkdir(SLOT_ROOT, { recursive: true });
  const order = preferred === undefined ? [...Array(SLOTS).keys()] : [preferred];
  for (const slot of order) {
    const dir = join(SLOT_ROOT, `slot-${slot}`);
    try {
      await mkdir(dir);
    } catch {
      const owner = Number(await readFile(join(dir, "owner.pid"), "utf8").catch(() => "0"));
      if (owner > 0 && pidAlive(owner)) continue;
      await sweep(slot, dir);
      await rm(dir, { recursive: true, force: true });
      try {
        await mkdir(dir);
      } catch {
        continue; // another run took it in between
      }
    }
    await writeFile(join(dir, "owner.pid"), String(ownerPid));
    return { slot, dir, release: () => rm(dir, { recursive: true, force: true }) };
  }
  throw new Error(
    `no free test-network slot under ${SLOT_ROOT} (${SLOTS} slots, all owned by live processes)`,
  );
}

/** Fails if any host route other than our own bridges overlaps TEST-NET-2. */
async function assertSubnetUnused(): Promise<void> {
  const routes = await run("ip", ["-4", "route", "show", "table", "all"]);
  for (const line of routes.split("\n")) {
    if (line.includes(`${TEST_NET}.`) && !/dev ms2m\d/.test(line)) {
      throw new Error(`refusing to use ${TEST_NET}.0/24: the host already routes it (${line.trim()})`);
    }
  }
}

export async function createBridge(net: ClusterNetwork): Promise<void> {
  await deleteBridge(net);
  await assertSubnetUnused();
  await run("ip", ["link", "add", net.bridge, "type", "bridge"]);
  await run("ip", ["addr", "add", `${net.hostIp}/${net.prefixLength}`, "dev", net.bridge]);
  await run("ip", ["link", "set", net.bridge, "up"]);
}

export async function deleteBridge(net: ClusterNetwork): Promise<void> {
  if (existsSync(`/sys/class/net/${net.bridge}`)) await tryRun("ip", ["link", "del", net.bridge]);
}

/** Namespaces of this slot's simulated nodes are named ms2m<slot>-<node>. */
export function nodeNamespace(net: ClusterNetwork, nodeName: string): string {
  return `ms2m${net.slot}-${nodeName}`;
}

export async function listSlotNamespaces(slot: number): Promise<string[]> {
  const out = await run("ip", ["netns", "list"]).catch(() => "");
  return out
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((n) => n.startsWith(`ms2m${slot}-`));
}

/**
 * A node's namespace: loopback up, a veth whose host end joins the bridge, the node
 * address, and no default route (nothing can leave the test network).
 */
export async function createNodeNamespace(
  net: ClusterNetwork,
  nodeName: string,
  ip: string,
): Promise<string> {
  const ns = nodeNamespace(net, nodeName);
  await deleteNodeNamespace(net, nodeName);
  // Interface names are limited to 15 characters.
  const hostEnd = `m${net.slot}h${ip.split(".").at(-1)}`;
  await run("ip", ["netns", "add", ns]);
  await run("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"]);
  await run("ip", ["link", "add", hostEnd, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  await run("ip", ["link", "set", hostEnd, "master", net.bridge]);
  await run("ip", ["link", "set", hostEnd, "up"]);
  await run("ip", ["netns", "exec", ns, "ip", "addr", "add", `${ip}/${net.prefixLength}`, "dev", "eth0"]);
  await run("ip", ["netns", "exec", ns, "ip", "link", "set", "eth0", "up"]);
  return ns;
}

export async function deleteNodeNamespace(net: ClusterNetwork, nodeName: string): Promise<void> {
  const ns = nodeNamespace(net, nodeName);
  if (existsSync(`/run/netns/${ns}`)) {
    // Deleting the namespace removes its veth end, which removes the host end too.
    await tryRun("ip", ["netns", "del", ns]);
  }
}

/** Cuts a node off the network (as a failed link would) or reconnects it. */
export async function setNodeLink(net: ClusterNetwork, nodeName: string, up: boolean): Promise<void> {
  await run("ip", [
    "netns",
    "exec",
    nodeNamespace(net, nodeName),
    "ip",
    "link",
    "set",
    "eth0",
    up ? "up" : "down",
  ]);
}
