import { writeFile } from "node:fs/promises";
import { stringify } from "yaml";

export interface KubeconfigUser {
  clientCertificate?: string;
  clientKey?: string;
  token?: string;
}

/** Writes a single-context kubeconfig that refers to certificate files by path. */
export async function writeKubeconfig(
  path: string,
  server: string,
  caFile: string,
  userName: string,
  user: KubeconfigUser,
): Promise<void> {
  const doc = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "ms2m-test", cluster: { server, "certificate-authority": caFile } }],
    users: [
      {
        name: userName,
        user: {
          ...(user.clientCertificate ? { "client-certificate": user.clientCertificate } : {}),
          ...(user.clientKey ? { "client-key": user.clientKey } : {}),
          ...(user.token ? { token: user.token } : {}),
        },
      },
    ],
    contexts: [{ name: userName, context: { cluster: "ms2m-test", user: userName, namespace: "default" } }],
    "current-context": userName,
  };
  await writeFile(path, stringify(doc), { mode: 0o600 });
}
