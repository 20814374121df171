/**
 * The parameter values of a Bind held for approval, read from the raw message: what the approval
 * shows the reviewer and the hash that binds it to exactly these bytes (shared/approvals/params.ts).
 * Only held Binds come here, never the hot path.
 */
import {
  type ApprovalParams,
  approvalParams,
  type ParamMasking,
  type RawParam,
} from '../shared/approvals/params.ts';
import { ProtocolViolation } from './wire/protocol-violation.ts';

/** A Bind body's parameters, with the types the statement's Parse declared (0 where it did not). */
export function bindParams(body: Buffer, declaredTypes: readonly number[] = []): RawParam[] {
  let at = skipCString(body, skipCString(body, 0));
  need(body, at, 2);
  const formatCount = body.readInt16BE(at);
  at += 2;
  need(body, at, formatCount * 2);
  const formatsAt = at;
  at += formatCount * 2;
  need(body, at, 2);
  const count = body.readInt16BE(at);
  at += 2;
  if (formatCount !== 0 && formatCount !== 1 && formatCount !== count)
    throw new ProtocolViolation(`Bind has ${formatCount} parameter formats for ${count} parameters`);
  const params: RawParam[] = [];
  for (let i = 0; i < count; i++) {
    need(body, at, 4);
    const length = body.readInt32BE(at);
    at += 4;
    const format = formatCount === 0 ? 0 : body.readInt16BE(formatsAt + 2 * (formatCount === 1 ? 0 : i));
    let bytes: Buffer | null = null;
    if (length >= 0) {
      need(body, at, length);
      bytes = body.subarray(at, at + length);
      at += length;
    }
    params.push({ type: declaredTypes[i] ?? 0, format, bytes });
  }
  return params;
}

/** What the approval request carries for a held Bind. */
export function heldBindParams(
  body: Buffer,
  text: string,
  declaredTypes: readonly number[] | undefined,
  masking: ParamMasking,
): ApprovalParams {
  return approvalParams(text, bindParams(body, declaredTypes), masking);
}

function skipCString(body: Buffer, offset: number): number {
  const end = body.indexOf(0, offset);
  if (end < 0) throw new ProtocolViolation('Bind name is not terminated');
  return end + 1;
}

function need(body: Buffer, offset: number, bytes: number): void {
  if (offset + bytes > body.length) throw new ProtocolViolation('Bind is too short');
}
