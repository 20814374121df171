/**
 * The shortcuts that let a session skip planning a result it planned before (a repeated simple
 * query, a prepared statement executed again) must never outlive what made the result plain: the
 * masks in force, the catalog (DDL, and the TTL after which other sessions' renames are seen), the
 * statement's description and the result formats.
 */
import { describe, expect, it } from 'vitest';
import { CatalogCache } from '../../proxy/masking/catalog.ts';
import type { ResultColumn } from '../../proxy/masking/row-description.ts';
import { type BoundPortal, SessionMasking } from '../../proxy/masking/session-masking.ts';
import type { Decision } from '../../shared/control-plane.ts';

const ORDERS = 20_001;
const columns: ResultColumn[] = [
  { name: 'id', tableOid: ORDERS, attnum: 1, typeOid: 23, format: 0 },
  { name: 'total', tableOid: ORDERS, attnum: 2, typeOid: 1700, format: 0 },
];

function setup() {
  let now = 1_000_000;
  const catalog = new CatalogCache(
    async (sql) =>
      sql.includes('pg_attribute')
        ? [
            [String(ORDERS), 'public', 'orders', 'r', '1', 'id'],
            [String(ORDERS), 'public', 'orders', 'r', '2', 'total'],
          ]
        : [],
    () => now,
    30_000,
  );
  const masking = new SessionMasking(catalog, new Uint8Array(32));
  const masksSsn: Decision = {
    action: 'allow',
    ruleId: 'reads',
    policyVersion: 'v1',
    masks: [{ ruleId: 'mask-ssn', columns: ['ssn'], method: 'redact' }],
  };
  masking.observe(masksSsn);
  return {
    masking,
    catalog,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

async function plannedPlainExecute(masking: SessionMasking, catalog: CatalogCache): Promise<BoundPortal> {
  const statement = {};
  masking.describedStatement(statement, columns);
  const portal = masking.bind('', statement, bindBody([]));
  const missing = masking.missing(masking.columnsOf(portal)!);
  if (missing) await catalog.load(missing.relations, missing.types);
  expect(masking.plan(masking.columnsOf(portal)!)).toBeUndefined();
  masking.rememberPlainExecute(portal);
  return portal;
}

/** a Bind body with these result format codes */
function bindBody(formats: number[]): Buffer {
  const parts = [Buffer.from('\0\0'), Buffer.alloc(4)]; // portal, statement, 0 param formats, 0 params
  const tail = Buffer.alloc(2 + 2 * formats.length);
  tail.writeInt16BE(formats.length, 0);
  for (const [i, f] of formats.entries()) tail.writeInt16BE(f, 2 + 2 * i);
  return Buffer.concat([...parts, tail]);
}

describe('plain-result shortcuts', () => {
  it('knows a prepared statement executed again with the same formats needs no plan', async () => {
    const { masking, catalog } = setup();
    const portal = await plannedPlainExecute(masking, catalog);
    expect(masking.knownPlainExecute(portal)).toBe(true);
    const again = masking.bind('', portal.statement, bindBody([]));
    expect(masking.knownPlainExecute(again)).toBe(true);
  });

  it('plans again with other result formats, a new mask, after DDL, a new description or the TTL', async () => {
    const cases: Array<[string, (s: ReturnType<typeof setup>, portal: BoundPortal) => BoundPortal]> = [
      ['binary results', (s, p) => s.masking.bind('', p.statement, bindBody([1]))],
      [
        'a new mask',
        (s, p) => {
          s.masking.observe({
            action: 'allow',
            ruleId: 'r2',
            policyVersion: 'v2',
            masks: [{ ruleId: 'mask-total', columns: ['orders.total'], method: 'null' }],
          });
          return p;
        },
      ],
      [
        'DDL',
        (s, p) => {
          s.masking.afterCommand('ALTER TABLE');
          return p;
        },
      ],
      [
        'a new description',
        (s, p) => {
          s.masking.describedStatement(
            p.statement!,
            columns.map((c) => ({ ...c })),
          );
          return p;
        },
      ],
      [
        'the catalog TTL',
        (s, p) => {
          s.advance(30_001);
          return p;
        },
      ],
    ];
    for (const [why, change] of cases) {
      const s = setup();
      const portal = await plannedPlainExecute(s.masking, s.catalog);
      expect(s.masking.knownPlainExecute(change(s, portal)), why).toBe(false);
    }
  });

  it('a repeated RowDescription is known plain only while the catalog entries it used are fresh', async () => {
    const { masking, catalog, advance } = setup();
    await catalog.load([ORDERS], []);
    const body = Buffer.from('row description bytes');
    masking.rememberPlain(body, columns);
    expect(masking.knownPlain(Buffer.from(body))).toBe(true);
    expect(masking.knownPlain(Buffer.from('another description'))).toBe(false);
    advance(30_001);
    expect(masking.knownPlain(Buffer.from(body))).toBe(false);
  });
});
