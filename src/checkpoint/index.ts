// Checkpoint image building, streaming, loading and registry transfer: the one implementation
// shared by the agent, the node simulator and the controller.
export * from "./image.ts";
export * from "./stream.ts";
export * from "./tar-inspect.ts";
export * from "./skopeo.ts";
export * from "./registry.ts";
export * from "./direct.ts";
export { writeFakeCheckpointArchive, type FakeArchiveOptions } from "./fake-archive.ts";
