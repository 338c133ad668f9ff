// The Reviewer backed by the API server (TokenReview + SubjectAccessReview). Kept apart from
// auth.ts so unit tests and the component suite run without a cluster; the cluster test only
// needs a KubeConfig pointing at the harness' API server.
import { AuthenticationV1Api, AuthorizationV1Api, type KubeConfig } from "@kubernetes/client-node";
import type { AccessAttributes, Reviewer, UserInfo } from "./auth.ts";

export class KubeReviewer implements Reviewer {
  private readonly authn: AuthenticationV1Api;
  private readonly authz: AuthorizationV1Api;

  constructor(kc: KubeConfig) {
    this.authn = kc.makeApiClient(AuthenticationV1Api);
    this.authz = kc.makeApiClient(AuthorizationV1Api);
  }

  async authenticate(token: string, audience: string): Promise<UserInfo | null> {
    const review = await this.authn.createTokenReview({
      body: {
        apiVersion: "authentication.k8s.io/v1",
        kind: "TokenReview",
        spec: { token, audiences: [audience] },
      },
    });
    const s = review.status;
    if (!s?.authenticated || !s.user?.username) return null;
    // The API server must confirm the token is meant for us, not merely valid somewhere.
    if (!s.audiences?.includes(audience)) return null;
    return { username: s.user.username, uid: s.user.uid, groups: s.user.groups, extra: s.user.extra };
  }

  async authorize(user: UserInfo, attrs: AccessAttributes): Promise<boolean> {
    const review = await this.authz.createSubjectAccessReview({
      body: {
        apiVersion: "authorization.k8s.io/v1",
        kind: "SubjectAccessReview",
        spec: {
          user: user.username,
          ...(user.uid ? { uid: user.uid } : {}),
          ...(user.groups ? { groups: user.groups } : {}),
          ...(user.extra ? { extra: user.extra } : {}),
          resourceAttributes: {
            group: attrs.group,
            resource: attrs.resource,
            subresource: attrs.subresource,
            verb: attrs.verb,
            name: attrs.name,
          },
        },
      },
    });
    return review.status?.allowed === true && review.status.denied !== true;
  }
}
