import { createServer, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { brokerFinding, parseBrokerUrl } from "../../../../src/cli/doctor/broker.ts";

describe("parseBrokerUrl", () => {
  it.each([
    ["amqp://user:pw@rabbitmq.shop:5672/vhost", undefined],
    ["amqps://rabbitmq.shop", undefined],
    ["rabbitmq.shop:5672", "is a rabbitmq.shop:// URL, not amqp:// or amqps://"],
    ["http://rabbitmq.shop", "is a http:// URL, not amqp:// or amqps://"],
    ["not a url", "is not a URL"],
  ])("%s", (url, problem) => expect(parseBrokerUrl(url)).toBe(problem));
});

describe("brokerFinding (loopback only)", () => {
  it("a URL that is not AMQP fails without a connection", async () => {
    expect(await brokerFinding("connection", "http://x", 1000)).toEqual({
      subject: "connection",
      status: "fail",
      message: "the broker URL is a http:// URL, not amqp:// or amqps://",
    });
  });

  it("a refused connection names the address, never the password", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const finding = await brokerFinding("connection", `amqp://guest:s3cret@127.0.0.1:${port}`, 2000);
    expect(finding.status).toBe("fail");
    expect(finding.message).toContain(`connection refused by 127.0.0.1:${port}`);
    expect(finding.message).not.toContain("s3cret");
  });

  it("a listener that never speaks AMQP times out", async () => {
    const sockets = new Set<Socket>();
    const server = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const finding = await brokerFinding("connection", `amqp://127.0.0.1:${port}`, 500);
      expect(finding.status).toBe("fail");
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
