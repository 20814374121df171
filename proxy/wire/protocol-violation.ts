/** A peer broke the wire protocol: the connection is closed with SQLSTATE 08P01 (or `sqlstate`). */
export class ProtocolViolation extends Error {
  constructor(
    message: string,
    /** a more precise SQLSTATE, e.g. 22021 for bytes that are not UTF-8 */
    readonly sqlstate = '08P01',
  ) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}
