// What the agent image's one-shot Job subcommands share (`send`: src/agent/jobs/send.ts, `cleanup`:
// src/agent/jobs/cleanup.ts): configuration from the environment (exit code 2 when invalid), a JSON
// request in one variable checked by a zod schema, optional Secret keys, and the result written
// to the termination message file, where the kubelet picks it up for the pod status.
import { access, writeFile } from "node:fs/promises";
import type { z } from "zod";
import { CONFIG_EXIT_CODE, ConfigError, parseEnv } from "../../common/config.ts";
import { Ms2mError, describeError } from "../../common/errors.ts";
import { createLogger, type Logger } from "../../common/logger.ts";
import type { agentConfigSchema } from "../config.ts";

/** The agent's settings every one-shot Job reads (each picks more of agentConfigSchema). */
export const JOB_CONFIG_KEYS = {
  NODE_NAME: true,
  AGENT_CHECKPOINTS_DIR: true,
  AGENT_INSECURE_REGISTRIES: true,
  AGENT_REGISTRY_CA_FILE: true,
  AGENT_REGISTRY_CREDENTIALS_FILE: true,
  LOG_LEVEL: true,
} as const satisfies Partial<Record<keyof typeof agentConfigSchema.shape, true>>;

/** Keys of the optional registry Secret (see dropMissingFiles). */
const REGISTRY_SECRET_FILES = ["AGENT_REGISTRY_CA_FILE", "AGENT_REGISTRY_CREDENTIALS_FILE"] as const;

/** The configuration, or the exit code after printing what is wrong with it. */
function jobConfig<S extends z.ZodObject>(
  binary: string,
  schema: S,
  source: NodeJS.ProcessEnv,
): z.infer<S> | number {
  try {
    return parseEnv(binary, schema, source);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return CONFIG_EXIT_CODE;
    }
    throw err;
  }
}

/** The request in `variable` (JSON), or a non-retriable Invalid/BadRequest error naming the field. */
export function jobRequest<S extends z.ZodType>(variable: string, text: string, schema: S): z.infer<S> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Ms2mError("BadRequest", `${variable} is not JSON`, { retriable: false });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ");
    throw new Ms2mError("Invalid", `invalid ${variable}: ${msg}`.slice(0, 1000), { retriable: false });
  }
  return parsed.data;
}

/** The registry Secret's keys are optional: a file it does not have is not configured. */
async function dropMissingFiles<C extends object, K extends keyof C>(config: C, keys: K[]): Promise<void> {
  for (const key of keys) {
    const file = config[key];
    if (
      typeof file === "string" &&
      !(await access(file).then(
        () => true,
        () => false,
      ))
    )
      delete config[key];
  }
}

/** Writes the result to the termination message file; false (logged) when that fails. */
async function writeJobResult(file: string, text: string, log: Logger): Promise<boolean> {
  try {
    await writeFile(file, text);
    return true;
  } catch (err) {
    log.error({ err: describeError(err), file }, "cannot write the result");
    return false;
  }
}

export interface OneShot<S extends z.ZodObject, R extends { ok: boolean }> {
  /** The agent image's subcommand, and the Job it runs in (for messages). */
  subcommand: string;
  job: string;
  schema: S;
  /** The termination message file. */
  resultFile: (config: z.infer<S>) => string;
  /** The work; SIGTERM (the Job's deadline, a deleted pod) aborts `signal`. */
  run: (config: z.infer<S>, log: Logger, signal: AbortSignal) => Promise<R>;
  /** The result for an error thrown by run (logged by the caller). */
  failure: (err: unknown) => R;
  encode: (result: R) => string;
}

/**
 * Runs one subcommand: configuration (exit code 2 when invalid), the registry Secret's optional
 * keys, the work, the result written for the kubelet. Exit code 0 when the result is ok, else 1.
 */
export async function runOneShot<S extends z.ZodObject, R extends { ok: boolean }>(
  o: OneShot<S, R>,
  source: NodeJS.ProcessEnv,
): Promise<number> {
  const config = jobConfig(`ms2m-agent ${o.subcommand}`, o.schema, source);
  if (typeof config === "number") return config;
  const log = createLogger("ms2m-agent", { level: config.LOG_LEVEL as string }).child({
    node: config.NODE_NAME as string,
    op: `${o.subcommand}-job`,
  });
  let outcome: R;
  const ac = new AbortController();
  const onTerm = () => ac.abort(new Ms2mError("ServiceUnavailable", `${o.job} terminated`));
  process.once("SIGTERM", onTerm);
  try {
    await dropMissingFiles(config, [...REGISTRY_SECRET_FILES] as (keyof typeof config)[]);
    outcome = await o.run(config, log, ac.signal);
  } catch (err) {
    outcome = o.failure(err);
    log.error({ err: describeError(err) }, `${o.subcommand} failed`);
  } finally {
    process.off("SIGTERM", onTerm);
  }
  if (!(await writeJobResult(o.resultFile(config), o.encode(outcome), log))) return 1;
  return outcome.ok ? 0 : 1;
}
