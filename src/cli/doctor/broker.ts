// The broker a workload's migrations replay from, as its StatefulMigrations name it
// (brokerSecretRef): the Secret and its key exist, the controller may read it there (the RoleBinding
// a namespace owner creates), the URL is an AMQP URL, and a connection with it opens (from where
// doctor runs: an address only pods can resolve or reach cannot be checked from outside).
import amqp from "amqplib";
import { redactUrl } from "../../common/logger.ts";
import type { Finding } from "./report.ts";

/** Opens and closes an AMQP connection; undefined when it worked, else why not. */
export async function tryBroker(url: string, timeoutMs: number): Promise<string | undefined> {
  let conn: Awaited<ReturnType<typeof amqp.connect>> | undefined;
  try {
    conn = await Promise.race([
      amqp.connect(url, { timeout: timeoutMs }),
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs).unref(),
      ),
    ]);
    return undefined;
  } catch (err) {
    const e = err as Error & { code?: string };
    if (/ACCESS_REFUSED|403/.test(e.message)) return "the broker refused the credentials (ACCESS_REFUSED)";
    if (e.code === "ENOTFOUND" || e.code === "EAI_AGAIN")
      return `cannot resolve ${new URL(url).hostname} from here (an in-cluster name? run doctor where pods resolve it)`;
    if (e.code === "ECONNREFUSED") return `connection refused by ${new URL(url).host}`;
    return e.message || String(err);
  } finally {
    await conn?.close().catch(() => undefined);
  }
}

export function parseBrokerUrl(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "is not a URL";
  }
  if (u.protocol !== "amqp:" && u.protocol !== "amqps:")
    return `is a ${u.protocol}// URL, not amqp:// or amqps://`;
  return undefined;
}

/** The connection finding for a URL read from a Secret. */
export async function brokerFinding(subject: string, url: string, timeoutMs: number): Promise<Finding> {
  const bad = parseBrokerUrl(url);
  if (bad) return { subject, status: "fail", message: `the broker URL ${bad}` };
  const problem = await tryBroker(url, timeoutMs);
  return problem
    ? { subject, status: "fail", message: `${redactUrl(url)}: ${problem}` }
    : { subject, status: "ok", message: `connected to ${redactUrl(url)} (from this machine)` };
}
