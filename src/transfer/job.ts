// The transfer Job's contract (src/agent/jobs/send.ts writes it, the controller reads it): the
// outcome the Job leaves in its termination message, at most 4096 bytes (the kubelet's limit).
// Below it the cleanup Job's (src/agent/jobs/cleanup.ts): its request and the result it leaves.
import { z } from "zod";
import { pullRequestSchema, sendRequestSchema, type SendResponse } from "./types.ts";

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

// ---- the cleanup Job (src/agent/jobs/cleanup.ts): removes what a transfer Job leaves behind ----

/** The agent image's subcommand that deletes a migration's leftovers and exits. */
export const CLEANUP_JOB_SUBCOMMAND = "cleanup";

/** Archives and registry images one cleanup Job may be asked to delete, each. */
export const MAX_CLEANUP_ITEMS = 16;

/** The widest time window of an `archiveWindows` item (a checkpoint timeout and margins fit). */
export const MAX_ARCHIVE_WINDOW_SECONDS = 6 * 3600;
/**
 * The longest a cleanup Job waits for `settleUntil` (the controller never asks for more; a node
 * whose clock is behind waits no longer than this either).
 */
export const MAX_CLEANUP_SETTLE_SECONDS = 900;

const rfc3339 = z.iso.datetime({ offset: true });

/**
 * A checkpoint requested through the API server's node proxy whose answer was lost: the kubelet
 * keeps no record, so the archive it may have written is known only by its name: the checkpoint
 * of this namespace/pod/container, with the kubelet's time in it within [from, to] (inclusive).
 * The Job lists the folder only once `settleUntil` has passed (its node's clock): by then a
 * checkpoint the kubelet took in the window has ended and its archive is complete.
 */
export const archiveWindowSchema = z
  .strictObject({
    container: sendRequestSchema.shape.container,
    from: rfc3339,
    to: rfc3339,
    settleUntil: rfc3339,
  })
  .refine((w) => Date.parse(w.from) <= Date.parse(w.to), { message: "from is after to", path: ["to"] })
  .refine((w) => Date.parse(w.to) - Date.parse(w.from) <= MAX_ARCHIVE_WINDOW_SECONDS * 1000, {
    message: `the window is longer than ${MAX_ARCHIVE_WINDOW_SECONDS} s`,
    path: ["to"],
  })
  .refine(
    (w) =>
      Date.parse(w.settleUntil) >= Date.parse(w.to) &&
      Date.parse(w.settleUntil) - Date.parse(w.to) <= MAX_CLEANUP_SETTLE_SECONDS * 1000,
    {
      message: `settleUntil must lie within ${MAX_CLEANUP_SETTLE_SECONDS} s after to`,
      path: ["settleUntil"],
    },
  );
export type ArchiveWindow = z.infer<typeof archiveWindowSchema>;

/**
 * What a cleanup Job deletes: archives of one source pod in the node's checkpoints folder (named
 * as in the send request and checked the same way: the checkpoint of exactly this
 * namespace/pod/container), the archives of such a pod/container the kubelet wrote within a
 * time window (`archiveWindows`: node-proxy checkpoints whose answer was lost) and checkpoint
 * images in a registry.
 */
export const cleanupRequestSchema = z.strictObject({
  migration: sendRequestSchema.shape.migration,
  namespace: sendRequestSchema.shape.namespace,
  pod: sendRequestSchema.shape.pod,
  archives: z
    .array(
      z.strictObject({
        container: sendRequestSchema.shape.container,
        archive: sendRequestSchema.shape.archive,
      }),
    )
    .max(MAX_CLEANUP_ITEMS)
    .default([]),
  archiveWindows: z.array(archiveWindowSchema).max(MAX_CLEANUP_ITEMS).default([]),
  registryImages: z
    .array(
      z.strictObject({
        image: pullRequestSchema.shape.source,
        /** The pushed manifest, when known (a delete without it resolves the tag first). */
        manifestDigest: pullRequestSchema.shape.expectedDigest,
      }),
    )
    .max(MAX_CLEANUP_ITEMS)
    .default([]),
});
export type CleanupRequest = z.infer<typeof cleanupRequestSchema>;

export const cleanupOutcomes = ["deleted", "absent", "refused"] as const;
export const cleanupItemSchema = z.object({
  kind: z.enum(["archive", "image"]),
  /** The archive's file name or the image reference. */
  name: z.string().max(1024),
  outcome: z.enum(cleanupOutcomes),
  message: z.string().max(1024).optional(),
});
export type CleanupItem = z.infer<typeof cleanupItemSchema>;

/** ok: every item deleted or absent. `error`: the request itself failed (nothing was tried). */
export const cleanupJobResultSchema = z.object({
  ok: z.boolean(),
  // A window may match several archives: the encoder keeps what fits in 4096 bytes anyway.
  items: z.array(cleanupItemSchema).max(8 * MAX_CLEANUP_ITEMS),
  /** Items left out of `items` to fit the termination message (their outcome counts in ok). */
  omitted: z.number().int().nonnegative().optional(),
  error: z.string().max(2048).optional(),
});
export type CleanupJobResult = z.infer<typeof cleanupJobResultSchema>;

/** The kubelet keeps at most this much of a termination message. */
export const TERMINATION_MESSAGE_MAX_BYTES = 4096;

/**
 * The result as JSON of at most 4096 bytes: messages are shortened, then names, then trailing
 * items are left out (counted in `omitted`) until it fits.
 */
export function encodeCleanupJobResult(r: CleanupJobResult): string {
  const cut = (s: string | undefined, n: number) =>
    s === undefined || s.length <= n ? s : `${s.slice(0, n)}…`;
  const fits = (s: string) => Buffer.byteLength(s) <= TERMINATION_MESSAGE_MAX_BYTES;
  const shaped = (msg: number, name: number, keep: number): string => {
    const items = r.items.slice(0, keep).map((i) => {
      const message = cut(i.message, msg);
      return { ...i, name: cut(i.name, name)!, ...(message !== undefined ? { message } : {}) };
    });
    const omitted = (r.omitted ?? 0) + r.items.length - items.length;
    return JSON.stringify({
      ok: r.ok,
      items,
      ...(omitted > 0 ? { omitted } : {}),
      ...(r.error !== undefined ? { error: cut(r.error, Math.max(msg, 200)) } : {}),
    });
  };
  for (const [msg, name] of [
    [1000, 1000],
    [300, 300],
    [100, 120],
  ] as const) {
    const s = shaped(msg, name, r.items.length);
    if (fits(s)) return s;
  }
  for (let keep = r.items.length - 1; keep >= 0; keep--) {
    const s = shaped(100, 120, keep);
    if (fits(s)) return s;
  }
  return JSON.stringify({ ok: r.ok, items: [], omitted: r.items.length });
}

/** Parses a cleanup Job's termination message; undefined when it is not one. */
export function parseCleanupJobResult(text: string | undefined): CleanupJobResult | undefined {
  if (!text) return undefined;
  try {
    const parsed = cleanupJobResultSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
