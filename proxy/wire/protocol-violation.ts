/** A peer broke the wire protocol: the connection is closed with SQLSTATE 08P01. */
export class ProtocolViolation extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}
