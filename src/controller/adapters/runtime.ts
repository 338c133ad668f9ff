// RuntimePort over the node's ms2m-agent (`GET /v1/runtime`): the runtime's checkpoint/restore
// settings as the agent reads them from /etc/crio or /etc/containerd. Reports are reused per
// node and runtime for a short while: concurrent migrations to one node cost one call.
import { Ms2mError } from "../../common/errors.ts";
import type { AgentClient } from "../../transfer/index.ts";
import type { RuntimeName, RuntimeReport } from "../../transfer/types.ts";
import type { RuntimePort, RuntimeProbe } from "../ports.ts";
import type { AgentLocator } from "./agent.ts";

export interface AgentRuntimeProbeOptions {
  /** How long a report is reused (default 15 s: a fixed node is seen again soon). */
  cacheMs?: number;
  now?: () => number;
}

export class AgentRuntimeProbe implements RuntimePort {
  private readonly client: Pick<AgentClient, "runtime">;
  private readonly locator: Pick<AgentLocator, "find">;
  private readonly cacheMs: number;
  private readonly now: () => number;
  private readonly cache = new Map<string, { at: number; report: Promise<RuntimeReport> }>();

  constructor(
    client: Pick<AgentClient, "runtime">,
    locator: Pick<AgentLocator, "find">,
    opts: AgentRuntimeProbeOptions = {},
  ) {
    this.client = client;
    this.locator = locator;
    this.cacheMs = opts.cacheMs ?? 15_000;
    this.now = opts.now ?? Date.now;
  }

  async probe(node: string, opts: { runtime: RuntimeName; agentRequired: boolean }): Promise<RuntimeProbe> {
    const key = `${node} ${opts.runtime}`;
    const hit = this.cache.get(key);
    let report = hit && this.now() - hit.at < this.cacheMs ? hit.report : undefined;
    if (!report) {
      const found = await this.locator.find(node);
      if (found.pods === 0) {
        return { state: "skipped", why: `no ms2m-agent runs on node ${node}`, expected: !opts.agentRequired };
      }
      if (!found.url) {
        // Coming up: where the migration needs it anyway, wait for it (the phase deadline applies).
        if (opts.agentRequired)
          throw new Ms2mError("ServiceUnavailable", `no ready ms2m-agent on node ${node}`);
        return { state: "skipped", why: `the ms2m-agent on node ${node} is not Ready`, expected: true };
      }
      report = this.client.runtime(found.url, opts.runtime);
      for (const [k, v] of this.cache) if (this.now() - v.at >= this.cacheMs) this.cache.delete(k);
      this.cache.set(key, { at: this.now(), report });
    }
    try {
      return { state: "reported", report: await report };
    } catch (err) {
      if (this.cache.get(key)?.report === report) this.cache.delete(key);
      // An agent without the route (an older version), a controller without the grant, an
      // answer that makes no sense: the check cannot be made and is skipped, saying why. What
      // may pass (unreachable, busy) is retried until the phase deadline.
      if (!(err instanceof Ms2mError) || err.retriable) throw err;
      const why =
        err.reason === "NotFound"
          ? `the ms2m-agent on node ${node} does not serve /v1/runtime (an older version)`
          : err.reason === "Forbidden"
            ? `the ms2m-agent on node ${node} refused the runtime check (${err.message}): grant get on agents/runtime (config/rbac/controller-role.yaml)`
            : `the ms2m-agent on node ${node} could not report its runtime: ${err.message}`;
      return { state: "skipped", why, expected: false };
    }
  }
}

/** Where checkpointing is disabled there is no agent client: the check is always skipped. */
export const noRuntimeProbe: RuntimePort = {
  probe: async () => ({
    state: "skipped",
    why: "checkpointing is disabled (CHECKPOINT_MODE=disabled)",
    expected: true,
  }),
};
