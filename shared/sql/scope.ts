/** Name scopes of a query: which FROM items and WITH names a column or table reference can mean. */
import type { RelationName } from './facts.ts';

/** A FROM item's name; `relation` is absent for subqueries, CTEs and functions. */
export interface ScopeEntry {
  name?: string;
  relation?: RelationName;
  /** `FROM t AS x(a, b)` renames t's columns: `a` may be any column of t */
  renamed?: true;
}

export class Scope {
  readonly entries: ScopeEntry[] = [];
  readonly ctes = new Set<string>();
  constructor(readonly parent?: Scope) {}

  hasCte(name: string): boolean {
    for (let s: Scope | undefined = this; s; s = s.parent) if (s.ctes.has(name)) return true;
    return false;
  }

  /** This scope's WITH names without its FROM items: what a (non-LATERAL) subquery in FROM sees. */
  withoutEntries(): Scope {
    const view = new Scope(this.parent);
    for (const name of this.ctes) view.ctes.add(name);
    return view;
  }

  /** Every FROM item visible here, innermost query first (outer ones for correlated references). */
  all(): ScopeEntry[] {
    const out: ScopeEntry[] = [];
    for (let s: Scope | undefined = this; s; s = s.parent) out.push(...s.entries);
    return out;
  }
}
