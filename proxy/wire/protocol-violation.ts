/**
 * A peer broke the wire protocol: the connection is closed with a FATAL carrying `sqlstate`
 * (08P01 unless the thrower or a subclass says more precisely what was wrong).
 */
export class ProtocolViolation extends Error {
  constructor(
    message: string,
    /** a more precise SQLSTATE, e.g. 22021 for bytes that are not UTF-8 */
    readonly sqlstate: string = '08P01',
  ) {
    super(message);
    this.name = 'ProtocolViolation';
  }
}

/** A name in a client message (statement, portal) that is not valid UTF-8 (22021). */
export class InvalidClientText extends ProtocolViolation {
  constructor(message: string) {
    super(message, '22021');
  }
}

/** A server message larger than the proxy will hold whole to mask or scan it (54000). */
export class MessageTooLarge extends ProtocolViolation {
  constructor(message: string) {
    super(message, '54000');
  }
}
