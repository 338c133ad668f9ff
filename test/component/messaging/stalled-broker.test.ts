// A broker whose answers stop coming (a connection that a reset or a partition left half-open: the
// request went out, the reply never comes back) against the real RabbitMQ, through a local TCP
// relay that black-holes every byte once told to. Every pool operation then fails within the
// pool's operation timeout as a retriable ServiceUnavailable, instead of holding its caller (a
// reconcile) forever; once the relay forwards again, the pool reconnects and works.
import { createServer, connect as tcpConnect, type AddressInfo, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Ms2mError } from "../../../src/common/errors.ts";
import { BrokerPool } from "../../../src/messaging/broker-pool.ts";
import { BROKER_URL } from "./harness.ts";

const target = new URL(BROKER_URL);
let server: Server;
let stalled = false;
const sockets = new Set<Socket>();
let relayUrl: string;

beforeAll(async () => {
  server = createServer((inbound) => {
    const outbound = tcpConnect(Number(target.port || 5672), target.hostname);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.on("close", () => sockets.delete(s));
    }
    // Forwards while not stalled; a stalled relay swallows the bytes and keeps the sockets open.
    inbound.on("data", (d) => void (!stalled && outbound.write(d)));
    outbound.on("data", (d) => void (!stalled && inbound.write(d)));
    inbound.on("close", () => outbound.destroy());
    outbound.on("close", () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const u = new URL(BROKER_URL);
  u.hostname = "127.0.0.1";
  u.port = String((server.address() as AddressInfo).port);
  relayUrl = u.toString();
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => server.close(resolve));
});

describe("BrokerPool against a broker that stopped answering", () => {
  it("fails each operation within its timeout (retriable), then recovers once answers come again", async () => {
    const pool = new BrokerPool({ operationTimeoutMs: 500, operationRetries: 0, connectAttempts: 1 });
    try {
      // Healthy first: the connection and a channel exist.
      await pool.withTemporaryChannel(relayUrl, (ch) => ch.checkExchange("amq.direct"));
      await pool.withChannel(relayUrl, "owner-a", (ch) => ch.checkExchange("amq.direct"));

      stalled = true;
      for (const op of [
        () => pool.withTemporaryChannel(relayUrl, (ch) => ch.checkExchange("amq.direct")),
        () => pool.withChannel(relayUrl, "owner-a", (ch) => ch.checkExchange("amq.direct")),
      ]) {
        const started = Date.now();
        const err = await op().then(
          () => undefined,
          (e: unknown) => e,
        );
        const took = Date.now() - started;
        expect(err).toBeInstanceOf(Ms2mError);
        expect((err as Ms2mError).reason).toBe("ServiceUnavailable");
        expect((err as Ms2mError).retriable).toBe(true);
        expect((err as Ms2mError).message).toMatch(/the broker did not answer .* within 500 ms/);
        // The deadline, plus at most the bounded wait for a channel's close.
        expect(took).toBeGreaterThanOrEqual(450);
        expect(took).toBeLessThan(4000);
      }

      // Answers come again, but the old connection is half-open: drop it as a reset would.
      stalled = false;
      for (const s of sockets) s.destroy();
      const ok = await retryUntil(() =>
        pool.withTemporaryChannel(relayUrl, (ch) => ch.checkExchange("amq.direct")),
      );
      expect(ok).toBeDefined();
    } finally {
      stalled = false;
      await pool.close();
    }
  });

  it("a connection whose handshake never completes fails within the timeout", async () => {
    stalled = true;
    const pool = new BrokerPool({ operationTimeoutMs: 500, connectAttempts: 1 });
    try {
      const started = Date.now();
      const err = await pool
        .withTemporaryChannel(relayUrl, (ch) => ch.checkExchange("amq.direct"))
        .then(
          () => undefined,
          (e: unknown) => e,
        );
      expect((err as Ms2mError).reason).toBe("ServiceUnavailable");
      expect((err as Ms2mError).message).toMatch(/cannot connect to broker/);
      expect(Date.now() - started).toBeLessThan(4000);
    } finally {
      stalled = false;
      for (const s of sockets) s.destroy();
      await pool.close();
    }
  });
});

async function retryUntil<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (i >= 20) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
