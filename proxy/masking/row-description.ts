/**
 * RowDescription (T) read from raw bytes: for each column the table OID and attribute number
 * that name its origin (0 when the column is an expression), its type and its format code.
 */
import { ProtocolViolation } from '../wire/protocol-violation.ts';

export interface ResultColumn {
  name: string;
  /** pg_class OID of the column's origin relation; 0 for an expression */
  tableOid: number;
  attnum: number;
  typeOid: number;
  /** 0 text, 1 binary (from a Describe of a statement: always 0, Bind decides) */
  format: number;
}

export function parseRowDescription(body: Buffer): ResultColumn[] {
  if (body.length < 2) throw new ProtocolViolation('RowDescription is too short');
  const count = body.readInt16BE(0);
  const columns: ResultColumn[] = new Array(count);
  let i = 2;
  for (let c = 0; c < count; c++) {
    const nameEnd = body.indexOf(0, i);
    if (nameEnd < 0 || nameEnd + 19 > body.length) throw new ProtocolViolation('RowDescription is truncated');
    const name = body.toString('utf8', i, nameEnd);
    i = nameEnd + 1;
    columns[c] = {
      name,
      tableOid: body.readUInt32BE(i),
      attnum: body.readInt16BE(i + 4),
      typeOid: body.readUInt32BE(i + 6),
      format: body.readInt16BE(i + 16),
    };
    i += 18;
  }
  return columns;
}

/**
 * The result formats a Bind asks for, applied to `columns`: no code = all text, one code = all
 * columns, otherwise one per column (PostgreSQL's own rule).
 */
export function withResultFormats(columns: ResultColumn[], formats: number[]): ResultColumn[] {
  return columns.map((column, i) => ({
    ...column,
    format: formats.length === 0 ? 0 : formats.length === 1 ? formats[0]! : (formats[i] ?? 0),
  }));
}
