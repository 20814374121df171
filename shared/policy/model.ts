/**
 * The policy document: a version, a default action and ordered rules. This is the validated, plain
 * form that is stored (DynamoDB) and sent over the API; parse-policy.ts builds it from YAML or JSON.
 */
import type { DetectorName } from '../masking/model.ts';
import type { DdlObject, StatementKind } from '../sql/facts.ts';

export const POLICY_ACTIONS = ['allow', 'deny', 'require_approval', 'mask'] as const;
export type PolicyAction = (typeof POLICY_ACTIONS)[number];

/** Order of restriction: a message gets the most restrictive action over its statements. */
export const ACTION_RANK: Readonly<Record<PolicyAction, number>> = {
  allow: 0,
  mask: 1,
  require_approval: 2,
  deny: 3,
};

export const MASK_METHODS = ['redact', 'partial', 'hash', 'null', 'fake'] as const;
export type MaskMethod = (typeof MASK_METHODS)[number];

/** Structural facts a rule can match. */
export const POLICY_FACTS = [
  /** an UPDATE or DELETE (anywhere in the statement) without WHERE */
  'no_where',
  /** a WITH item runs INSERT / UPDATE / DELETE / MERGE */
  'data_modifying_cte',
  /** COPY … TO/FROM PROGRAM */
  'copy_program',
  /** COPY … TO/FROM a file on the database server */
  'copy_file',
  /** the message holds more than one statement */
  'multiple_statements',
  /** the parser rejected the message */
  'unparseable',
  /** the analysis could not fully classify the statement */
  'not_confident',
] as const;
export type PolicyFact = (typeof POLICY_FACTS)[number];

export const DEFAULT_APPROVAL_TIMEOUT_SECONDS = 300;

/**
 * Every listed matcher must match (AND); the values inside one matcher are alternatives (OR).
 * Relation, column and function names match case-insensitively, may carry a schema (and a column a
 * table) and may use `*` as a wildcard within a name part. See evaluate.ts for how unqualified names
 * in a statement meet qualified patterns.
 */
export interface PolicyMatch {
  /**
   * people: `issuer#subject`, a verified email, or a subject (shared/identity.ts principalPattern);
   * rules other than allow also catch the person's other tokens (principalMatches)
   */
  principals?: string[];
  /** identity-provider groups of the principal */
  groups?: string[];
  /** pgwarden roles of the session */
  roles?: string[];
  databases?: string[];
  kinds?: StatementKind[];
  ddlObjects?: DdlObject[];
  /** relations the statement reads or writes: `name` or `schema.name` */
  relations?: string[];
  /** relations the statement writes (INSERT, UPDATE, DELETE, MERGE, COPY FROM, DDL, TRUNCATE, LOCK…) */
  writes?: string[];
  /** `column`, `table.column` or `schema.table.column` */
  columns?: string[];
  /** `name` or `schema.name` */
  functions?: string[];
  facts?: PolicyFact[];
}

export interface MaskSpec {
  /** columns to mask, as in `match.columns` */
  columns: string[];
  method: MaskMethod;
  /**
   * whether these columns may be used in WHERE, JOIN, GROUP BY, HAVING, ORDER BY, DISTINCT ON, window
   * clauses and count() (default true). Such uses output nothing but leak through side channels
   * (which rows come back, in which order); false refuses them like any unmaskable use.
   */
  allowInPredicates?: boolean;
  /**
   * what happens to a statement that uses these columns where they cannot be masked (inside an
   * expression, a whole-row reference, UNION, COPY … TO, copied into a table): 'deny' (the default)
   * or 'require_approval' (then `approvers` and `timeoutSeconds` as for a require_approval rule)
   */
  unmaskable?: 'deny' | 'require_approval';
  approvers?: string;
  timeoutSeconds?: number;
  channel?: string;
}

/** Content detectors over every text value of the results (shared/masking/detectors.ts). */
export interface DetectorPolicy {
  /** detector names (shared/masking/model.ts DETECTOR_NAMES); [] turns them off */
  enabled: DetectorName[];
  /** how a detected value is masked (default partial) */
  method: MaskMethod;
}

export interface PolicyRule {
  id: string;
  description?: string;
  match: PolicyMatch;
  action: PolicyAction;
  /** shown to the client on deny and require_approval */
  reason?: string;
  /** require_approval: the group whose members may approve */
  approvers?: string;
  /** require_approval: how long the statement is held */
  timeoutSeconds?: number;
  /** require_approval: the Slack channel that asks (ID or name; PGWARDEN_SLACK_CHANNEL when absent) */
  channel?: string;
  /**
   * mask: what to mask and how. Masking is by column identity on the wire, so a mask rule applies to
   * every statement of the sessions its principals / groups / roles / databases match (as long as no
   * earlier rule decided the statement): `select *`, views and EXECUTE are masked although their text
   * never names the column. Its statement matchers (columns, relations, kinds…) do not narrow it.
   */
  mask?: MaskSpec;
}

export interface PolicyDefault {
  action: Exclude<PolicyAction, 'mask'>;
  reason?: string;
  approvers?: string;
  timeoutSeconds?: number;
  channel?: string;
}

export interface Policy {
  version: string;
  default: PolicyDefault;
  rules: PolicyRule[];
  /** absent: the default detectors (DEFAULT_DETECTORS, masked with DEFAULT_DETECTOR_METHOD) */
  detectors?: DetectorPolicy;
}
