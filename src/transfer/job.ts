// The transfer Job's contract (agent/send-job.ts writes it, the controller reads it): the
// outcome the Job leaves in its termination message, at most 4096 bytes (the kubelet's limit).
import { z } from "zod";
import type { SendResponse } from "./types.ts";

/** The agent image's subcommand that runs one send and exits. */
export const SEND_JOB_SUBCOMMAND = "send";

export type SendJobResult =
  | { ok: true; result: SendResponse; manifestDigest?: string }
  | { ok: false; reason: string; message: string; retriable: boolean };

export const sendJobResultSchema = z.union([
  z.object({
    ok: z.literal(true),
    result: z.object({
      image: z.string().min(1),
      digest: z.string().regex(/^sha256:[a-f0-9]{64}$/),
      size: z.number().int().nonnegative(),
      seconds: z.number().nonnegative(),
      targetLoadSeconds: z.number().nonnegative().optional(),
    }),
    manifestDigest: z.string().optional(),
  }),
  z.object({
    ok: z.literal(false),
    reason: z.string().max(100),
    message: z.string().max(4096),
    retriable: z.boolean(),
  }),
]);

/** Parses a termination message; undefined when it is not a Job result. */
export function parseSendJobResult(text: string | undefined): SendJobResult | undefined {
  if (!text) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = sendJobResultSchema.safeParse(raw);
  return parsed.success ? (parsed.data as SendJobResult) : undefined;
}
