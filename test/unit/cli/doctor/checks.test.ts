import { describe, expect, it } from "vitest";
import { kubeletFinding, podProblem } from "../../../../src/cli/doctor/checks.ts";
import { Ms2mError } from "../../../../src/common/errors.ts";

describe("podProblem: why a pod is not Ready", () => {
  it.each([
    [{ metadata: { deletionTimestamp: new Date() } }, "terminating"],
    [
      {
        status: {
          containerStatuses: [
            {
              name: "agent",
              ready: false,
              state: { waiting: { reason: "ImagePullBackOff", message: "no such image" } },
            },
          ],
        },
      },
      "agent: ImagePullBackOff (no such image)",
    ],
    [
      {
        status: {
          containerStatuses: [
            {
              name: "agent",
              ready: false,
              state: { waiting: { reason: "CrashLoopBackOff" } },
              lastState: { terminated: { exitCode: 2 } },
            },
          ],
        },
      },
      "agent: CrashLoopBackOff",
    ],
    [
      {
        status: {
          containerStatuses: [
            {
              name: "agent",
              ready: false,
              state: { terminated: { exitCode: 1, reason: "Error", message: "EADDRINUSE" } },
            },
          ],
        },
      },
      "agent: exited 1 (Error): EADDRINUSE",
    ],
    [
      {
        status: {
          phase: "Pending",
          conditions: [{ type: "PodScheduled", status: "False", message: "0/2 nodes are available" }],
        },
      },
      "not scheduled: 0/2 nodes are available",
    ],
    [
      {
        status: {
          phase: "Running",
          conditions: [
            { type: "Ready", status: "False", message: "containers with unready status: [agent]" },
          ],
        },
      },
      "Running: containers with unready status: [agent]",
    ],
    [{ status: { phase: "Running" } }, "Running, not Ready"],
  ])("%#: %s", (pod, text) => expect(podProblem(pod as never)).toBe(text));
});

describe("kubeletFinding: the agent's answer to a checkpoint of a pod that does not exist", () => {
  const err = (kind: string, message: string) => new Ms2mError(kind as never, message);
  it("the kubelet's 'pod does not exist' is the healthy answer", () => {
    expect(kubeletFinding("node-a", err("NotFound", "kubelet: pod does not exist")).status).toBe("ok");
  });
  it.each([
    [err("NotFound", "404 page not found"), /ContainerCheckpoint feature gate/],
    [err("NotFound", "kubelet URL not configured"), /set AGENT_KUBELET_URL/],
    [err("Forbidden", "forbidden"), /needs create on nodes\/checkpoint/],
    [new Error("self-signed certificate in certificate chain"), /AGENT_KUBELET_CA_FILE/],
    [new Error("connect ECONNREFUSED 10.0.0.1:10250"), /check the agent's AGENT_KUBELET_URL/],
    [new Error("something else"), /^something else$/],
  ])("%#", (e, message) => {
    const f = kubeletFinding("node-a", e);
    expect(f.status).toBe("fail");
    expect(f.message).toMatch(message);
  });
});
