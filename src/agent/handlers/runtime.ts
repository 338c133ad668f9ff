// `GET /v1/runtime[?runtime=cri-o|containerd]`: what this node's container runtime is configured
// to do about checkpoint and restore, from its configuration files (../runtime.ts).
import type { RuntimeReport } from "../../transfer/types.ts";
import type { AgentContext } from "../context.ts";
import { inspectRuntime, requestedRuntime } from "../runtime.ts";

/** `runtime`: the query parameter as given (null: detect the runtime from the files present). */
export async function runtimeReport(ctx: AgentContext, runtime: string | null): Promise<RuntimeReport> {
  const want = requestedRuntime(runtime);
  return inspectRuntime(
    { crio: ctx.config.AGENT_CRIO_CONFIG_DIR, containerd: ctx.config.AGENT_CONTAINERD_CONFIG_DIR },
    want,
  );
}
