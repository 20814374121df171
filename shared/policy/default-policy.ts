/**
 * The default policy pack, as text, so pure code can use it without file I/O. The same text ships as
 * default-policy.yaml for people to copy and edit; test/shared/policy/default-policy.test.ts fails
 * if the two differ.
 */
import type { Policy } from './model.ts';
import { parsePolicy } from './parse-policy.ts';

export const DEFAULT_POLICY_YAML = `# pgwarden's default policy pack: what npm start enforces until you apply your own.
#
# How rules are read (shared/policy/evaluate.ts):
# - For each statement, rules are tried in order. The first matching allow, deny or require_approval
#   rule decides it. A matching mask rule does not stop the search: its masks apply if the statement
#   ends up allowed.
# - A message with several statements gets the most restrictive action over them
#   (deny > require_approval > mask > allow).
# - A statement that cannot be parsed or fully analysed and that no rule decides is denied,
#   whatever the default says.
# - In a matcher, values are alternatives; different matchers must all match. Relation, column and
#   function names are case-insensitive, may carry a schema, and may use * as a wildcard.
version: "default-1"
description: Safe defaults - reads allowed, sensitive columns masked, changes to structure held for a reviewer, escapes from the gateway denied.
default:
  action: allow
# Content detectors: a second net over every text value of every result, whatever the column.
# Emails and phone numbers are ordinary application data, so they are not detected by default.
detectors:
  enabled: [card, ssn, iban, aws_access_key, jwt, private_key]
  method: partial
rules:
  # Masking applies to everyone, admins included.
  - id: mask-ssn
    description: Social security numbers show only their last four digits.
    match:
      columns: [ssn, social_security_number]
    action: mask
    mask: { columns: [ssn, social_security_number], method: partial }

  - id: mask-card-numbers
    description: Payment card numbers show only their last four digits.
    match:
      columns: [credit_card, credit_card_number, card_number, cc_number, pan]
    action: mask
    mask: { columns: [credit_card, credit_card_number, card_number, cc_number, pan], method: partial }

  - id: mask-card-security-codes
    description: Card security codes are never shown.
    match:
      columns: [cvv, cvv2, cvc, card_cvv]
    action: mask
    mask: { columns: [cvv, cvv2, cvc, card_cvv], method: redact }

  - id: mask-secrets
    description: Password hashes and secrets are never shown.
    match:
      columns: [password, password_hash, api_key, secret, access_token, refresh_token]
    action: mask
    mask: { columns: [password, password_hash, api_key, secret, access_token, refresh_token], method: redact }

  # Rules above this line apply to admins too; admins may run anything not decided above.
  - id: admins-allowed
    description: Admins may run what no earlier rule denies.
    match:
      roles: [admin]
    action: allow

  - id: deny-unparseable
    description: What the PostgreSQL parser rejects cannot be checked.
    match:
      facts: [unparseable]
    action: deny
    reason: pgwarden could not parse this statement, so it cannot check it.

  - id: deny-not-confident
    description: Statements the analysis cannot fully classify (DO blocks, SQL hidden in strings).
    match:
      facts: [not_confident]
    action: deny
    reason: pgwarden cannot fully analyse this statement (for example a DO block or SQL passed as a string); ask an admin.

  - id: deny-copy-program-or-server-file
    description: COPY to or from a program or a file on the database server.
    match:
      facts: [copy_program, copy_file]
    action: deny
    reason: COPY with PROGRAM or a server-side file is not allowed; use COPY ... FROM STDIN / TO STDOUT (psql \\copy).

  - id: deny-server-file-functions
    description: Functions that read or write files on the database server, or reach other servers.
    match:
      functions:
        - pg_read_file
        - pg_read_binary_file
        - pg_stat_file
        - pg_ls_*
        - pg_logdir_ls
        - pg_file_*
        - lo_import
        - lo_export
        - dblink*
    action: deny
    reason: functions that touch the database server's files or other servers are not allowed.

  - id: deny-role-escalation
    description: Switching the database role or session user.
    match:
      kinds: [set_role, set_session_authorization]
    action: deny
    reason: changing the role or session authorization is not allowed through pgwarden.

  - id: deny-set-config
    description: set_config by another name is SET; the gateway itself refuses it for the settings it owns (role, client_encoding, ...) and for names that are not constants, but policies never read literal values, so this pack denies it as a whole. Remove this rule to let set_config('app.x', ...) through.
    match:
      functions: [set_config]
    action: deny
    reason: set_config is not allowed through pgwarden by this policy; use SET for ordinary settings.

  - id: deny-settings-writes
    description: UPDATE pg_settings calls set_config (the gateway itself refuses it, whatever the policy); kept so the pack says so.
    match:
      writes: [pg_settings]
    action: deny
    reason: changing settings through pg_settings is not allowed through pgwarden; use SET for ordinary settings.

  - id: deny-do-blocks
    description: Anonymous code blocks.
    match:
      kinds: [do]
    action: deny
    reason: DO blocks are not allowed through pgwarden.

  - id: deny-load
    description: Loading shared libraries into the server.
    match:
      kinds: [load]
    action: deny
    reason: LOAD is not allowed through pgwarden.

  - id: approve-schema-changes
    description: DDL, DROP, TRUNCATE, GRANT / REVOKE and ALTER SYSTEM wait for a reviewer.
    match:
      kinds: [ddl, drop, truncate, grant, revoke, alter_system]
    action: require_approval
    approvers: reviewers
    timeoutSeconds: 300
    reason: changes to the schema, permissions or server settings need a reviewer's approval.

  - id: approve-writes-without-where
    description: UPDATE or DELETE without WHERE touches every row.
    match:
      facts: [no_where]
    action: require_approval
    approvers: reviewers
    timeoutSeconds: 300
    reason: UPDATE or DELETE without WHERE changes every row and needs a reviewer's approval.

  - id: approve-server-administration
    description: Functions that stop other sessions or change the server's state.
    match:
      functions:
        - pg_terminate_backend
        - pg_cancel_backend
        - pg_reload_conf
        - pg_rotate_logfile
        - pg_promote
        - pg_switch_wal
        - pg_create_restore_point
        - pg_backup_start
        - pg_backup_stop
        - pg_drop_replication_slot
        - pg_create_*_replication_slot
    action: require_approval
    approvers: reviewers
    timeoutSeconds: 300
    reason: server administration functions need a reviewer's approval.
`;

/** DEFAULT_POLICY_YAML, parsed and validated. */
export const DEFAULT_POLICY: Policy = parsePolicy(DEFAULT_POLICY_YAML);
