// `ms2m-agent send`: the transfer Job's one-shot send, for source nodes where no ms2m-agent runs.
// The controller names the checkpoint in SEND_REQUEST (the agent's send request: migration,
// pod, container, archive, destination); the archive is checked exactly as the agent checks it
// (agent/send.ts) and sent with the same code. The outcome goes to the termination message
// file (SEND_RESULT_FILE, the container's terminationMessagePath), which the kubelet copies into
// the pod status, where the controller reads it: no API access is needed from the Job.
import { readFile } from "node:fs/promises";
import { z } from "zod";
import { env } from "../../common/config.ts";
import { Ms2mError, describeError } from "../../common/errors.ts";
import { SEND_JOB_SUBCOMMAND, type SendJobResult } from "../../transfer/job.ts";
import { sendRequestSchema } from "../../transfer/types.ts";
import { agentConfigSchema } from "../config.ts";
import { JOB_CONFIG_KEYS, jobRequest, runOneShot } from "./one-shot.ts";
import { sendCheckpoint } from "../send.ts";

export const sendJobConfigSchema = agentConfigSchema
  .pick({ ...JOB_CONFIG_KEYS, AGENT_TOKEN_FILE: true, AGENT_MAX_ARCHIVE_BYTES: true })
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
export function runSendJob(source: NodeJS.ProcessEnv = process.env): Promise<number> {
  return runOneShot(
    {
      subcommand: SEND_JOB_SUBCOMMAND,
      job: "transfer Job",
      schema: sendJobConfigSchema,
      resultFile: (config) => config.SEND_RESULT_FILE,
      run: async (config, log, signal): Promise<SendJobResult> => {
        const req = jobRequest("SEND_REQUEST", config.SEND_REQUEST, sendRequestSchema);
        log.info(
          { migration: req.migration, archive: req.archive, destination: req.destination.type },
          "sending checkpoint",
        );
        const { result, manifestDigest } = await sendCheckpoint(config, req, {
          token: async () => (await readFile(config.AGENT_TOKEN_FILE, "utf8")).trim(),
          signal,
        });
        log.info({ ...result, migration: req.migration }, "checkpoint sent");
        return manifestDigest ? { ok: true, result, manifestDigest } : { ok: true, result };
      },
      failure: asFailure,
      encode: (outcome) => JSON.stringify(outcome),
    },
    source,
  );
}
