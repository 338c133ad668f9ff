// `ms2m-agent send`: the transfer Job's one-shot send, for source nodes where no ms2m-agent runs.
// The controller names the checkpoint in SEND_REQUEST (the agent's send request: migration,
// pod, container, archive, destination); the archive is checked exactly as the agent checks it
// (agent/send.ts) and sent with the same code. The outcome goes to the termination message
// file (SEND_RESULT_FILE, the container's terminationMessagePath), which the kubelet copies into
// the pod status, where the controller reads it: no API access is needed from the Job.
import { access, readFile, writeFile } from "node:fs/promises";
import { z } from "zod";
import { ConfigError, env, parseEnv } from "../src/common/config.ts";
import { Ms2mError, describeError } from "../src/common/errors.ts";
import { createLogger } from "../src/common/logger.ts";
import { SEND_JOB_SUBCOMMAND, type SendJobResult } from "../src/transfer/job.ts";
import { sendRequestSchema } from "../src/transfer/types.ts";
import { agentConfigSchema } from "./config.ts";
import { sendCheckpoint } from "./send.ts";

export const sendJobConfigSchema = agentConfigSchema
  .pick({
    NODE_NAME: true,
    AGENT_TOKEN_FILE: true,
    AGENT_CHECKPOINTS_DIR: true,
    AGENT_MAX_ARCHIVE_BYTES: true,
    AGENT_INSECURE_REGISTRIES: true,
    AGENT_REGISTRY_CA_FILE: true,
    AGENT_REGISTRY_CREDENTIALS_FILE: true,
    LOG_LEVEL: true,
  })
  .extend({
    /** Needed for Direct only (verifies the target agent). */
    AGENT_TLS_CA_FILE: env.path().optional(),
    /** The send request (JSON, the agent's /v1/send body): no secret in it. */
    SEND_REQUEST: z
      .string()
      .min(2)
      .max(16 * 1024),
    SEND_RESULT_FILE: env.path().default("/dev/termination-log"),
  });
export type SendJobConfig = z.infer<typeof sendJobConfigSchema>;

/** Network failures (refused, reset, DNS) are worth another Job; refusals with a reason are not. */
function asFailure(err: unknown): Extract<SendJobResult, { ok: false }> {
  if (err instanceof Ms2mError)
    return { ok: false, reason: err.reason, message: err.message.slice(0, 2000), retriable: err.retriable };
  return {
    ok: false,
    reason: "ServiceUnavailable",
    message: describeError(err).slice(0, 2000),
    retriable: true,
  };
}

/** Runs the send; returns the process exit code (0 sent, 1 failed, 2 invalid configuration). */
export async function runSendJob(source: NodeJS.ProcessEnv = process.env): Promise<number> {
  let config: SendJobConfig;
  try {
    config = parseEnv(`ms2m-agent ${SEND_JOB_SUBCOMMAND}`, sendJobConfigSchema, source);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const log = createLogger("ms2m-agent", { level: config.LOG_LEVEL }).child({
    node: config.NODE_NAME,
    op: "send-job",
  });
  let outcome: SendJobResult;
  const ac = new AbortController();
  const onTerm = () => ac.abort(new Ms2mError("ServiceUnavailable", "transfer Job terminated"));
  process.once("SIGTERM", onTerm);
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(config.SEND_REQUEST);
    } catch {
      throw new Ms2mError("BadRequest", "SEND_REQUEST is not JSON", { retriable: false });
    }
    const parsed = sendRequestSchema.safeParse(raw);
    if (!parsed.success) {
      const msg = parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ");
      throw new Ms2mError("Invalid", `invalid SEND_REQUEST: ${msg}`.slice(0, 1000), { retriable: false });
    }
    const req = parsed.data;
    // The registry Secret's keys are optional: a file it does not have is not configured.
    for (const key of ["AGENT_REGISTRY_CA_FILE", "AGENT_REGISTRY_CREDENTIALS_FILE"] as const) {
      const file = config[key];
      if (
        file &&
        !(await access(file).then(
          () => true,
          () => false,
        ))
      )
        delete config[key];
    }
    log.info(
      { migration: req.migration, archive: req.archive, destination: req.destination.type },
      "sending checkpoint",
    );
    const { result, manifestDigest } = await sendCheckpoint(config, req, {
      token: async () => (await readFile(config.AGENT_TOKEN_FILE, "utf8")).trim(),
      signal: ac.signal,
    });
    log.info({ ...result, migration: req.migration }, "checkpoint sent");
    outcome = manifestDigest ? { ok: true, result, manifestDigest } : { ok: true, result };
  } catch (err) {
    outcome = asFailure(err);
    log.error({ reason: outcome.reason, err: outcome.message }, "send failed");
  } finally {
    process.off("SIGTERM", onTerm);
  }
  try {
    await writeFile(config.SEND_RESULT_FILE, JSON.stringify(outcome));
  } catch (err) {
    log.error({ err: describeError(err), file: config.SEND_RESULT_FILE }, "cannot write the result");
    return 1;
  }
  return outcome.ok ? 0 : 1;
}
