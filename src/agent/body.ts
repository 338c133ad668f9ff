// Request bodies of the agent's JSON commands: bounded, typed, validated.
import type { IncomingMessage } from "node:http";
import type { z } from "zod";
import { Ms2mError } from "../common/errors.ts";
import { readBounded } from "../checkpoint/direct.ts";

/** Longest JSON command body (they are a few hundred bytes). */
export const JSON_LIMIT = 64 * 1024;

/** The media type of a request, without parameters. */
export function contentTypeOf(req: IncomingMessage): string {
  return (req.headers["content-type"] ?? "").split(";")[0]!.trim();
}

/** 415 unless JSON, 413 above JSON_LIMIT (declared or read), 400 unless JSON, 422 unless `schema`. */
export async function readJson<S extends z.ZodType>(req: IncomingMessage, schema: S): Promise<z.infer<S>> {
  if (contentTypeOf(req) !== "application/json")
    throw new Ms2mError("UnsupportedMediaType", "content type must be application/json");
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > JSON_LIMIT) throw new Ms2mError("RequestEntityTooLarge", "request body too large");
  let text: string;
  try {
    text = await readBounded(req, JSON_LIMIT);
  } catch {
    throw new Ms2mError("RequestEntityTooLarge", "request body too large");
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Ms2mError("BadRequest", "request body is not JSON");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const msg = parsed.error.issues.map((i) => `${i.path.join(".") || "(body)"}: ${i.message}`).join("; ");
    throw new Ms2mError("Invalid", `invalid request: ${msg}`.slice(0, 1000));
  }
  return parsed.data;
}
