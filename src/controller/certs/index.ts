export * from "./manager.ts";
export { KubeSecretStore } from "./kube-store.ts";
