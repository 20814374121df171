import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalPostgres, startLocalPostgres } from '../../../scripts/local/postgres.ts';

let dataDir: string;
let db: LocalPostgres;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'pgwarden-pg-'));
  db = await startLocalPostgres({ dataDir });
});

afterAll(async () => {
  await db?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

async function withClient<T>(
  user: { user: string; password: string },
  fn: (c: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client({ host: db.host, port: db.port, ...user, database: 'app' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
    sum += d;
  }
  return sum % 10 === 0;
}

describe('startLocalPostgres', () => {
  it('listens on loopback and keeps its passwords in a private secrets.json', async () => {
    expect(db.host).toBe('127.0.0.1');
    expect(db.port).toBeGreaterThan(0);
    const secrets = join(dataDir, 'secrets.json');
    expect((await stat(secrets)).mode & 0o777).toBe(0o600);
    const saved = JSON.parse(await readFile(secrets, 'utf8')) as Record<string, string>;
    expect(saved['postgres_app_rw']).toBe(db.roles.app_rw.password);
    expect(saved['postgres_superuser']).toBe(db.superuser.password);
  });

  it('seeds the app database with realistic demo data', async () => {
    await withClient(db.roles.app_ro, async (c) => {
      const counts = await c.query(
        'SELECT (SELECT count(*) FROM customers)::int AS customers, (SELECT count(*) FROM orders)::int AS orders',
      );
      expect(counts.rows[0]).toEqual({ customers: 5000, orders: 20000 });
      const cards = await c.query<{ credit_card: string; ssn: string; email: string }>(
        'SELECT credit_card, ssn, email FROM customers',
      );
      for (const row of cards.rows) {
        expect(row.credit_card).toMatch(/^\d{16}$/);
        expect(luhnValid(row.credit_card)).toBe(true);
        expect(row.ssn).toMatch(/^(?!000|666)\d{3}-\d{2}-\d{4}$/);
      }
      expect(new Set(cards.rows.map((r) => r.email)).size).toBe(5000);
      const orphans = await c.query(
        'SELECT count(*)::int AS n FROM orders o LEFT JOIN customers c ON c.id = o.customer_id WHERE c.id IS NULL',
      );
      expect(orphans.rows[0].n).toBe(0);
    });
  });

  it('creates SCRAM logins with the expected privileges', async () => {
    await withClient(db.superuser, async (c) => {
      const roles = await c.query<{ rolname: string; scram: boolean; rolsuper: boolean }>(
        "SELECT rolname, rolpassword LIKE 'SCRAM-SHA-256$%' AS scram, rolsuper FROM pg_authid WHERE rolname LIKE 'app_%' ORDER BY 1",
      );
      expect(roles.rows).toEqual([
        { rolname: 'app_admin', scram: true, rolsuper: false },
        { rolname: 'app_ro', scram: true, rolsuper: false },
        { rolname: 'app_rw', scram: true, rolsuper: false },
      ]);
      const owners = await c.query("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'");
      expect(owners.rows).toEqual([{ tableowner: 'app_admin' }]);
    });

    await expect(
      withClient(db.roles.app_ro, (c) => c.query("UPDATE customers SET name = 'x' WHERE id = 1")),
    ).rejects.toMatchObject({ code: '42501' });
    await expect(
      withClient(db.roles.app_ro, (c) =>
        c.query(
          "INSERT INTO orders (customer_id, product, amount, status, created_at) VALUES (1, 'x', 1, 'paid', now())",
        ),
      ),
    ).rejects.toMatchObject({ code: '42501' });

    await withClient(db.roles.app_rw, async (c) => {
      await c.query('BEGIN');
      const inserted = await c.query(
        "INSERT INTO orders (customer_id, product, amount, status, created_at) VALUES (1, 'x', 1, 'paid', now()) RETURNING id",
      );
      expect(Number(inserted.rows[0].id)).toBe(20001);
      await c.query('DELETE FROM orders WHERE id = $1', [inserted.rows[0].id]);
      await c.query('ROLLBACK');
      await expect(c.query('CREATE TABLE nope (id int)')).rejects.toMatchObject({ code: '42501' });
    });

    await withClient(db.roles.app_admin, async (c) => {
      await c.query('BEGIN');
      await c.query('CREATE TABLE scratch (id int)');
      await c.query('ROLLBACK');
    });

    await expect(
      withClient({ user: 'app_ro', password: 'wrong' }, (c) => c.query('SELECT 1')),
    ).rejects.toMatchObject({ code: '28P01' });
  });

  it('restarts on the same data without reseeding, also after a stale postmaster.pid', async () => {
    const seededAt = await withClient(db.superuser, async (c) => {
      const r = await c.query('SELECT seeded_at FROM pgwarden_local.schema_seeded');
      return (r.rows[0].seeded_at as Date).toISOString();
    });
    const roles = db.roles;
    await db.stop();
    // a pid that is alive but is not a postgres server (this test process) must not block start-up
    await writeFile(join(dataDir, 'postgres', 'postmaster.pid'), `${process.pid}\n${dataDir}/postgres\n`);
    db = await startLocalPostgres({ dataDir });
    expect(db.roles).toEqual(roles);
    await withClient(db.roles.app_rw, async (c) => {
      const r = await c.query('SELECT count(*)::int AS n FROM customers');
      expect(r.rows[0].n).toBe(5000);
    });
    await withClient(db.superuser, async (c) => {
      const r = await c.query('SELECT seeded_at FROM pgwarden_local.schema_seeded');
      expect((r.rows[0].seeded_at as Date).toISOString()).toBe(seededAt);
    });
  });
});
