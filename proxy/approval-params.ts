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
import { bindFormat, bindLayout, needBindBytes } from './wire/bind-layout.ts';
import { ProtocolViolation } from './wire/protocol-violation.ts';

/** A Bind body's parameters, with the types the statement's Parse declared (0 where it did not). */
export function bindParams(body: Buffer, declaredTypes: readonly number[] = []): RawParam[] {
  const layout = bindLayout(body);
  const { formatCount, count } = layout;
  let at = layout.valuesAt;
  if (formatCount !== 0 && formatCount !== 1 && formatCount !== count)
    throw new ProtocolViolation(`Bind has ${formatCount} parameter formats for ${count} parameters`);
  const params: RawParam[] = [];
  for (let i = 0; i < count; i++) {
    needBindBytes(body, at, 4);
    const length = body.readInt32BE(at);
    at += 4;
    const format = bindFormat(body, layout, i);
    let bytes: Buffer | null = null;
    if (length >= 0) {
      needBindBytes(body, at, length);
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
