/**
 * Stored policy versions: the port the API's policy routes and decision path use, implemented over
 * DynamoDB (functions/adapters/dynamodb-policy-store.ts).
 *
 * The store assigns every stored document its version (`v1`, `v2`, … in storing order) and that
 * version is the one decisions and audit records carry. The document's own `version` field is kept
 * as `declaredVersion`, a label for people: two PUTs of a document with an unchanged `version` field
 * still give two distinct versions, so an audit record always names exactly the rules that applied.
 */
import type { Policy } from './model.ts';

export interface StoredPolicy {
  /** the store's version, also `policy.version` */
  version: string;
  /** the document as validated, with `version` set to the store's version */
  policy: Policy;
  /** the text as submitted (YAML or JSON), comments included */
  text: string;
  /** the `version` field the document itself declared */
  declaredVersion: string;
  storedAt: string;
  storedBy: string;
}

export type PolicyVersionSummary = Omit<StoredPolicy, 'policy' | 'text'> & { rules: number };

export interface NewPolicyVersion {
  text: string;
  policy: Policy;
  storedBy: string;
  storedAt: string;
}

export interface PolicyStore {
  /** the current version; undefined when none was ever stored */
  current(): Promise<StoredPolicy | undefined>;
  /** stores a new version and makes it current (unless a newer one became current meanwhile) */
  put(version: NewPolicyVersion): Promise<StoredPolicy>;
  /** newest first */
  history(limit: number): Promise<PolicyVersionSummary[]>;
}
