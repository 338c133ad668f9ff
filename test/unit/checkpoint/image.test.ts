import { describe, expect, it } from "vitest";
import {
  CHECKPOINT_NAME_ANNOTATION,
  describeCheckpointImage,
  parseImageReference,
} from "../../../src/checkpoint/image.ts";

describe("checkpoint image helpers", () => {
  it("parses strict image references", () => {
    expect(parseImageReference("127.0.0.1:5000/ms2m/ckpt:m1-app")).toEqual({
      host: "127.0.0.1:5000",
      repository: "ms2m/ckpt",
      tag: "m1-app",
    });
    for (const bad of [
      "busybox",
      "localhost/x",
      "localhost/X:y",
      "localhost/x:y@sha256:1",
      "localhost/../x:y",
    ]) {
      expect(() => parseImageReference(bad)).toThrow();
    }
  });
  it("describes a deterministic annotated image", () => {
    const d = `sha256:${"a".repeat(64)}`;
    const one = describeCheckpointImage({ digest: d, size: 10 }, "app");
    expect(
      one.manifest.bytes.equals(describeCheckpointImage({ digest: d, size: 10 }, "app").manifest.bytes),
    ).toBe(true);
    const m = JSON.parse(one.manifest.bytes.toString());
    expect(m.annotations[CHECKPOINT_NAME_ANNOTATION]).toBe("app");
    expect(m.layers[0].mediaType).toBe("application/vnd.oci.image.layer.v1.tar");
  });
});
