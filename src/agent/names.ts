// Names the agent takes from callers (path and query), checked before they are used as keys.

/** A migration's name (DNS-1123 subdomain). */
export const MIGRATION_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** A container's name (DNS-1123 label). */
export const CONTAINER_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
