/**
 * One catalog cache per upstream database, shared by the proxy's sessions, each reading through
 * its own side connection (opened on first need with the credentials of the role that first
 * needed it: pg_class, pg_attribute and pg_rewrite are readable by every role).
 */
import type { CredentialProvider, UpstreamTarget } from '../options.ts';
import { CatalogCache } from './catalog.ts';
import { SideConnection } from './side-connection.ts';

export class Catalogs {
  private readonly byDatabase = new Map<string, { cache: CatalogCache; connection: SideConnection }>();

  constructor(
    private readonly target: UpstreamTarget,
    private readonly credentials: CredentialProvider,
    private readonly timeoutMs: number,
  ) {}

  forDatabase(database: string, role: string): CatalogCache {
    let entry = this.byDatabase.get(database);
    if (!entry) {
      const connection = new SideConnection({
        target: this.target,
        credential: () => this.credentials(role),
        database,
        timeoutMs: this.timeoutMs,
      });
      entry = { cache: new CatalogCache((sql, params) => connection.query(sql, params)), connection };
      this.byDatabase.set(database, entry);
    }
    return entry.cache;
  }

  close(): void {
    for (const { connection } of this.byDatabase.values()) connection.close();
    this.byDatabase.clear();
  }
}
