/**
 * Reads PostgreSQL's stored query trees (pg_node_tree, e.g. pg_rewrite.ev_action) as text:
 * `{NODE :field value ...}` nodes, `( ... )` lists, atoms with backslash escapes (outfuncs.c).
 * Only what view lineage needs: the top-level query's target entries and their origin columns.
 */

export interface TreeNode {
  node: string;
  fields: Map<string, TreeValue[]>;
}
export type TreeValue = string | TreeNode | TreeValue[];

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    const ch = text[i]!;
    if (ch === ' ' || ch === '\n' || ch === '\t' || ch === '\r') {
      i++;
      continue;
    }
    if (ch === '(' || ch === ')' || ch === '{' || ch === '}') {
      tokens.push(ch);
      i++;
      continue;
    }
    let token = '';
    while (i < n) {
      const c = text[i]!;
      if (
        c === ' ' ||
        c === '\n' ||
        c === '\t' ||
        c === '\r' ||
        c === '(' ||
        c === ')' ||
        c === '{' ||
        c === '}'
      )
        break;
      if (c === '\\' && i + 1 < n) {
        token += text[i + 1];
        i += 2;
        continue;
      }
      token += c;
      i++;
    }
    tokens.push(token);
  }
  return tokens;
}

/** Parses a node tree; throws on malformed input (the caller then treats the view as opaque). */
export function parseNodeTree(text: string): TreeValue {
  const tokens = tokenize(text);
  let p = 0;
  const value = (): TreeValue => {
    const t = tokens[p++];
    if (t === undefined) throw new Error('node tree ends early');
    if (t === '(') {
      const items: TreeValue[] = [];
      while (tokens[p] !== ')') {
        if (p >= tokens.length) throw new Error('unterminated list');
        items.push(value());
      }
      p++;
      return items;
    }
    if (t === '{') {
      const node = tokens[p++];
      if (node === undefined) throw new Error('node without a name');
      const fields = new Map<string, TreeValue[]>();
      let current: TreeValue[] | undefined;
      while (tokens[p] !== '}') {
        if (p >= tokens.length) throw new Error('unterminated node');
        const next = tokens[p]!;
        if (next.startsWith(':') && next.length > 1) {
          current = [];
          fields.set(next.slice(1), current);
          p++;
          continue;
        }
        const v = value();
        if (current) current.push(v);
      }
      p++;
      return { node, fields };
    }
    return t;
  };
  const root = value();
  return root;
}

export interface TargetOrigin {
  /** the view column's attribute number */
  resno: number;
  /** the relation and column it is a plain reference to; 0 for an expression */
  origTable: number;
  origColumn: number;
  junk: boolean;
}

/** The target entries of the first query of a rule action (a view's `_RETURN` rule). */
export function viewTargets(evAction: string): TargetOrigin[] {
  const tree = parseNodeTree(evAction);
  const queries = Array.isArray(tree) ? tree : [tree];
  const query = queries[0];
  if (!query || typeof query !== 'object' || Array.isArray(query) || query.node !== 'QUERY')
    throw new Error('rule action is not a query');
  const list = query.fields.get('targetList')?.[0];
  if (!Array.isArray(list)) throw new Error('query has no target list');
  return list.map((entry) => {
    if (typeof entry !== 'object' || Array.isArray(entry) || entry.node !== 'TARGETENTRY')
      throw new Error('target list holds something else');
    const int = (name: string) => {
      const v = entry.fields.get(name)?.[0];
      const n = typeof v === 'string' ? Number(v) : Number.NaN;
      if (!Number.isInteger(n)) throw new Error(`target entry without ${name}`);
      return n;
    };
    return {
      resno: int('resno'),
      origTable: int('resorigtbl'),
      origColumn: int('resorigcol'),
      junk: entry.fields.get('resjunk')?.[0] === 'true',
    };
  });
}

/** Whether the expression of target entry `resno` holds a whole-row reference (a Var with varattno 0) anywhere. */
export function targetsWithWholeRow(evAction: string): Set<number> {
  const tree = parseNodeTree(evAction);
  const queries = Array.isArray(tree) ? tree : [tree];
  const query = queries[0] as TreeNode;
  const list = query.fields.get('targetList')?.[0];
  const out = new Set<number>();
  if (!Array.isArray(list)) return out;
  for (const entry of list) {
    if (typeof entry !== 'object' || Array.isArray(entry)) continue;
    if (hasWholeRowVar(entry)) out.add(Number(entry.fields.get('resno')?.[0]));
  }
  return out;
}

function hasWholeRowVar(value: TreeValue): boolean {
  if (typeof value === 'string') return false;
  if (Array.isArray(value)) return value.some(hasWholeRowVar);
  if (value.node === 'VAR' && value.fields.get('varattno')?.[0] === '0') return true;
  for (const values of value.fields.values()) if (values.some(hasWholeRowVar)) return true;
  return false;
}

/** Every relation the rule's range tables name, at any depth (a whole-row reference reads all of its columns). */
export function relationsInTree(evAction: string): number[] {
  const out = new Set<number>();
  const walk = (value: TreeValue): void => {
    if (typeof value === 'string') return;
    if (Array.isArray(value)) {
      for (const v of value) walk(v);
      return;
    }
    if (value.node === 'RANGETBLENTRY' && value.fields.get('rtekind')?.[0] === '0') {
      const relid = Number(value.fields.get('relid')?.[0]);
      if (Number.isInteger(relid) && relid > 0) out.add(relid);
    }
    for (const values of value.fields.values()) for (const v of values) walk(v);
  };
  walk(parseNodeTree(evAction));
  return [...out];
}
