/**
 * A peer broke the wire protocol: the connection is closed with a FATAL carrying `sqlstate`
 * (08P01 unless a subclass says more precisely what was wrong).
 */
export class ProtocolViolation extends Error {
  readonly sqlstate: string = '08P01';
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}

/** A name in a client message (statement, portal) that is not valid UTF-8 (22021). */
export class InvalidClientText extends ProtocolViolation {
  override readonly sqlstate = '22021';
}

/** A server message larger than the proxy will hold whole to mask or scan it (54000). */
export class MessageTooLarge extends ProtocolViolation {
  override readonly sqlstate = '54000';
}
