/**
 * The content detectors over the other channels a server writes to the client: the text fields of
 * ErrorResponse and NoticeResponse (a failed cast prints the value it could not cast), the payload
 * of NotificationResponse, and the rows of a text-format COPY TO STDOUT. Returns the rewritten
 * body only when a detector hit something.
 */
import type { DecisionDetectors } from '../../shared/control-plane.ts';
import { scanBytes, scanText } from '../../shared/masking/detectors.ts';
import type { DetectorHit, DetectorSettings } from '../../shared/masking/model.ts';

export interface ChannelScan {
  body: Buffer;
  hits: DetectorHit[];
}

/** Field types of ErrorResponse / NoticeResponse whose text may quote data. */
const TEXT_FIELDS = new Set([0x4d /* M */, 0x44 /* D */, 0x48 /* H */, 0x57 /* W */, 0x71 /* q */]);

export function scanFields(
  body: Buffer,
  detectors: DecisionDetectors,
  key: Uint8Array,
): ChannelScan | undefined {
  const settings = detectors as DetectorSettings;
  const parts: Buffer[] = [];
  const hits: DetectorHit[] = [];
  let i = 0;
  let changed = false;
  while (i < body.length && body[i] !== 0) {
    const type = body[i]!;
    const end = body.indexOf(0, i + 1);
    if (end < 0) return undefined;
    if (TEXT_FIELDS.has(type)) {
      const scan = scanText(body.toString('utf8', i + 1, end), settings, key);
      if (scan) {
        hits.push(...scan.hits);
        changed = true;
        parts.push(Buffer.from([type]), Buffer.from(`${(scan.masked ?? '').replaceAll('\0', '')}\0`, 'utf8'));
        i = end + 1;
        continue;
      }
    }
    parts.push(body.subarray(i, end + 1));
    i = end + 1;
  }
  if (!changed) return undefined;
  parts.push(Buffer.from([0]));
  return { body: Buffer.concat(parts), hits };
}

/** NotificationResponse: Int32 process id, channel, payload. */
export function scanNotification(
  body: Buffer,
  detectors: DecisionDetectors,
  key: Uint8Array,
): ChannelScan | undefined {
  const channelEnd = body.indexOf(0, 4);
  const payloadEnd = body.indexOf(0, channelEnd + 1);
  if (channelEnd < 0 || payloadEnd < 0) return undefined;
  const scan = scanText(
    body.toString('utf8', channelEnd + 1, payloadEnd),
    detectors as DetectorSettings,
    key,
  );
  if (!scan) return undefined;
  return {
    body: Buffer.concat([
      body.subarray(0, channelEnd + 1),
      Buffer.from(`${(scan.masked ?? '').replaceAll('\0', '')}\0`, 'utf8'),
      body.subarray(payloadEnd + 1),
    ]),
    hits: scan.hits,
  };
}

/** One CopyData message of a text-format COPY TO STDOUT. */
export function scanCopyData(
  body: Buffer,
  detectors: DecisionDetectors,
  key: Uint8Array,
): ChannelScan | undefined {
  const scan = scanBytes(body, detectors as DetectorSettings, key);
  if (!scan) return undefined;
  const masked = scan.masked ?? new Uint8Array(0);
  return { body: Buffer.from(masked.buffer, masked.byteOffset, masked.byteLength), hits: scan.hits };
}
