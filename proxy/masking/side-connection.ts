/**
 * A small connection of the proxy's own to the upstream database, for catalog queries: the
 * proxy's upstream login code, then one extended-protocol query at a time with text results.
 * Closes itself after a quiet period; reopens on the next query.
 */
import { serialize } from 'pg-protocol';
import { PgWardenError } from '../../shared/errors.ts';
import type { UpstreamCredential, UpstreamTarget } from '../options.ts';
import { connectUpstream, type UpstreamConnection } from '../upstream.ts';
import { parseErrorFields } from '../wire/backend-fields.ts';
import { FrameReader } from '../wire/frame-reader.ts';

export type Row = Array<string | null>;

export interface SideConnectionOptions {
  target: UpstreamTarget;
  credential: () => UpstreamCredential | Promise<UpstreamCredential>;
  database: string;
  timeoutMs: number;
  idleMs?: number;
}

export class SideConnection {
  private connection: Promise<UpstreamConnection> | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: SideConnectionOptions) {}

  /** Runs `sql` with text parameters; queries are serialized on the one connection. */
  query(sql: string, params: Array<string | null>): Promise<Row[]> {
    const run = this.queue.then(() => this.run(sql, params));
    this.queue = run.catch(() => {});
    return run;
  }

  close(): void {
    clearTimeout(this.idleTimer);
    const connection = this.connection;
    this.connection = undefined;
    connection?.then(
      (c) => c.socket.end(serialize.end()),
      () => {},
    );
  }

  private async open(): Promise<UpstreamConnection> {
    if (!this.connection) {
      const o = this.o;
      this.connection = (async () =>
        connectUpstream({
          target: o.target,
          credential: await o.credential(),
          database: o.database,
          // the pins every upstream session must start on (proxy/session-pins.ts), whatever the
          // database's own encoding
          parameters: new Map([
            ['application_name', 'pgwarden-catalog'],
            ['client_encoding', 'UTF8'],
          ]),
          timeoutMs: o.timeoutMs,
        }))();
      const opening = this.connection;
      opening.then(
        (c) => {
          c.socket.on('error', () => {});
          c.socket.once('close', () => {
            if (this.connection === opening) this.connection = undefined;
          });
        },
        () => {
          if (this.connection === opening) this.connection = undefined;
        },
      );
    }
    return this.connection;
  }

  private async run(sql: string, params: Array<string | null>): Promise<Row[]> {
    clearTimeout(this.idleTimer);
    const connection = await this.open();
    try {
      return await exchange(connection, sql, params, this.o.timeoutMs);
    } catch (error) {
      this.close();
      throw error;
    } finally {
      this.idleTimer = setTimeout(() => this.close(), this.o.idleMs ?? 10_000);
      this.idleTimer.unref();
    }
  }
}

function exchange(
  connection: UpstreamConnection,
  sql: string,
  params: Array<string | null>,
  timeoutMs: number,
): Promise<Row[]> {
  const { socket } = connection;
  return new Promise((resolve, reject) => {
    const reader = new FrameReader(256 * 1024 * 1024);
    const rows: Row[] = [];
    let failure: Error | undefined;
    const done = (error?: Error) => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      if (error) reject(error);
      else resolve(rows);
    };
    const timer = setTimeout(
      () => done(new PgWardenError('UPSTREAM_UNAVAILABLE', 'the catalog query timed out')),
      timeoutMs,
    );
    const onClose = () => done(new PgWardenError('UPSTREAM_UNAVAILABLE', 'the catalog connection closed'));
    const onData = (chunk: Buffer) => {
      try {
        reader.push(chunk);
        for (let f = reader.next(); f; f = reader.next()) {
          if (f.type === 0x44 /* D */) rows.push(dataRow(f.body));
          else if (f.type === 0x45 /* E */) {
            const e = parseErrorFields(f.body);
            failure = new PgWardenError(
              'UPSTREAM_UNAVAILABLE',
              `catalog query failed: ${e.message} (${e.code})`,
            );
          } else if (f.type === 0x5a /* Z */) {
            done(failure);
            return;
          }
        }
      } catch (error) {
        done(error as Error);
      }
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(
      Buffer.concat([
        serialize.parse({ text: sql }),
        serialize.bind({ values: params }),
        serialize.execute(),
        serialize.sync(),
      ]),
    );
  });
}

function dataRow(body: Buffer): Row {
  const count = body.readInt16BE(0);
  const row: Row = new Array(count);
  let i = 2;
  for (let c = 0; c < count; c++) {
    const length = body.readInt32BE(i);
    i += 4;
    if (length < 0) row[c] = null;
    else {
      row[c] = body.toString('utf8', i, i + length);
      i += length;
    }
  }
  return row;
}
