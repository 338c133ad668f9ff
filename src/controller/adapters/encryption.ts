// spec.encryption's keys, read from the migration's Secrets for one transfer. The controller
// reads them (its RBAC already reads Secrets for brokerSecretRef) and hands them on: the public
// key to the sender (agent or Job), the private key only to the target node's agent, over TLS.
// Agents never read Secrets. A missing Secret or key, a key that does not parse, and a pair that
// does not match fail at once (non-retriable), naming the Secret: nothing is sent.
import type { CheckpointEncryption } from "../../api/v1alpha1/index.ts";
import { jweDecrypt, jweEncrypt, parsePrivateKey, parsePublicKey } from "../../checkpoint/encryption.ts";
import { Ms2mError } from "../../common/errors.ts";
import type { ClusterPort } from "../ports.ts";

export async function encryptionKeys(
  cluster: Pick<ClusterPort, "getSecretKey">,
  namespace: string,
  spec: CheckpointEncryption | undefined,
): Promise<{ publicKey: string; privateKey: string } | undefined> {
  if (!spec) return undefined;
  const read = async (ref: { name: string; key: string }, what: string) => {
    const value = await cluster.getSecretKey(namespace, ref.name, ref.key);
    if (value === undefined || value.trim() === "")
      throw new Ms2mError(
        "NotFound",
        `encryption ${what}: Secret ${namespace}/${ref.name} not found or has no key ${JSON.stringify(ref.key)}`,
        { retriable: false },
      );
    return value;
  };
  const publicKey = await read(spec.publicKeySecretRef, "public key");
  const privateKey = await read(spec.privateKeySecretRef, "private key");
  const where = (ref: { name: string; key: string }) => `Secret ${namespace}/${ref.name} key ${ref.key}`;
  const pub = parsePublicKey(publicKey, `encryption public key (${where(spec.publicKeySecretRef)})`);
  const priv = parsePrivateKey(privateKey, `encryption private key (${where(spec.privateKeySecretRef)})`);
  // The pair must match, or the image would be pushed and then be undecryptable on the target.
  const probe = Buffer.from("ms2m key pair check");
  if (!jweDecrypt(jweEncrypt(probe, [pub]), [priv])?.equals(probe))
    throw new Ms2mError(
      "Invalid",
      `encryption keys do not match: the private key in ${where(spec.privateKeySecretRef)} cannot decrypt what is ` +
        `encrypted to the public key in ${where(spec.publicKeySecretRef)}`,
      { retriable: false },
    );
  return { publicKey, privateKey };
}
