/** dynalite ships no type declarations; this covers what the tests and local mode use. */
declare module 'dynalite' {
  import type { Server } from 'node:http';

  export interface DynaliteOptions {
    createTableMs?: number;
    deleteTableMs?: number;
    updateTableMs?: number;
    maxItemSizeKb?: number;
    /** LevelDB directory; in memory when omitted */
    path?: string;
  }

  export default function dynalite(options?: DynaliteOptions): Server;
}
