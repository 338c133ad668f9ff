// The local kubelet's checkpoint API (`POST /checkpoint/{namespace}/{pod}/{container}`), called
// with the agent's own ServiceAccount token (`nodes/checkpoint` create, not `nodes/proxy`). Only an
// archive that passes the same check as a send's (directly in the checkpoints folder, the
// checkpoint of exactly that container) is returned.
import { readFile } from "node:fs/promises";
import { Agent as UndiciAgent, request, type Dispatcher } from "undici";
import { Ms2mError } from "../common/errors.ts";
import type { Logger } from "../common/logger.ts";
import { readBounded } from "../checkpoint/direct.ts";
import { resolveArchiveName } from "../checkpoint/kubelet-archives.ts";
import { CONNECT_TIMEOUT_MS, DEFAULT_PROGRESS_TIMEOUT_MS } from "../checkpoint/progress.ts";
import type { AgentCheckpointRequest, CheckpointResponse } from "../transfer/types.ts";
import type { AgentConfig } from "./config.ts";

/** The kubelet's own default when a request names no timeout (its runtime request timeout, 4 min). */
const DEFAULT_KUBELET_TIMEOUT_SECONDS = 240;

export type KubeletConfig = Pick<
  AgentConfig,
  "AGENT_KUBELET_URL" | "AGENT_KUBELET_TOKEN_FILE" | "AGENT_KUBELET_CA_FILE" | "AGENT_CHECKPOINTS_DIR"
>;

/**
 * The kubelet call ended without an answer (unreachable, connection lost, no answer in time):
 * whether a checkpoint was made is unknown (the record stays Pending).
 */
export class KubeletConnectionLost extends Ms2mError {
  constructor(message: string, cause: unknown) {
    super("ServiceUnavailable", message, { cause });
  }
}

/** Asks the kubelet for a checkpoint: the archive's basename and the call's duration. */
export async function kubeletCheckpoint(
  config: KubeletConfig,
  body: AgentCheckpointRequest,
  signal: AbortSignal,
  log: Logger,
): Promise<CheckpointResponse> {
  const base = config.AGENT_KUBELET_URL;
  if (!base) throw new Ms2mError("NotFound", "local kubelet checkpointing is not configured on this agent");
  const token = (await readFile(config.AGENT_KUBELET_TOKEN_FILE, "utf8")).trim();
  const ca = config.AGENT_KUBELET_CA_FILE ? await readFile(config.AGENT_KUBELET_CA_FILE) : undefined;
  // The kubelet sends nothing while CRIU dumps: its call is bounded by the checkpoint's own
  // timeout (plus a margin for writing the archive), not by progress. The connection must come
  // up at once (the kubelet is local), and the short answer must not stall once it started.
  const answerMs = ((body.timeoutSeconds ?? DEFAULT_KUBELET_TIMEOUT_SECONDS) + 30) * 1000;
  const dispatcher = new UndiciAgent({
    connect: { ...(ca ? { ca } : {}), timeout: CONNECT_TIMEOUT_MS },
    headersTimeout: answerMs,
    bodyTimeout: DEFAULT_PROGRESS_TIMEOUT_MS,
  });
  const started = performance.now();
  try {
    const url = new URL(
      `/checkpoint/${encodeURIComponent(body.namespace)}/${encodeURIComponent(body.pod)}/${encodeURIComponent(body.container)}`,
      base,
    );
    if (body.timeoutSeconds !== undefined) url.searchParams.set("timeout", String(body.timeoutSeconds));
    let res: Dispatcher.ResponseData;
    let text: string;
    try {
      res = await request(url, {
        method: "POST",
        headers: { authorization: `Bearer ${token}` },
        dispatcher,
        signal,
      });
      text = await readBounded(res.body, 64 * 1024);
    } catch (err) {
      if (err instanceof Ms2mError) throw err;
      const code = (err as { code?: string }).code ?? "";
      throw new KubeletConnectionLost(
        code === "UND_ERR_HEADERS_TIMEOUT"
          ? `kubelet checkpoint: no answer within ${answerMs / 1000} s`
          : `kubelet unreachable: ${(err as Error).message}`,
        err,
      );
    }
    if (res.statusCode !== 200) {
      const reason =
        res.statusCode === 401 || res.statusCode === 403
          ? "Forbidden"
          : res.statusCode === 404
            ? "NotFound"
            : "InternalError";
      throw new Ms2mError(reason, `kubelet checkpoint: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
    }
    const items = (JSON.parse(text) as { items?: unknown }).items;
    if (!Array.isArray(items) || items.length !== 1 || typeof items[0] !== "string") {
      throw new Ms2mError("InternalError", "kubelet checkpoint: unexpected response");
    }
    const path = resolveArchiveName(config.AGENT_CHECKPOINTS_DIR, items[0], body);
    const archive = path.slice(config.AGENT_CHECKPOINTS_DIR.length + 1);
    const seconds = (performance.now() - started) / 1000;
    log.info({ archive, seconds }, "checkpoint created");
    return { archive, seconds };
  } finally {
    await dispatcher.close();
  }
}
