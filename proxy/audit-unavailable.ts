/** Why a statement cannot be recorded; the relay then refuses the statement with `sqlstate`. */
export class AuditUnavailable extends Error {
  constructor(
    readonly sqlstate: string,
    message: string,
  ) {
    super(message);
  }
}
