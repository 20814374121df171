/**
 * What a session has prepared, by name: SQL PREPARE and named extended-protocol Parse share one
 * namespace in PostgreSQL, and SQL `EXECUTE name` in a later message runs whatever holds the name.
 * Texts are never forgotten (DEALLOCATE or Close may be skipped by the server after an error, and a
 * PREPARE may fail because the name is taken), so the decision over all of them can only be
 * stricter than the truth. Memory is bounded: past the bounds a marker stands in, and an EXECUTE of
 * that name is denied (see shared/decide-prepared.ts).
 */
import type { PreparedTexts } from '../shared/control-plane.ts';
import { PREPARED_OVERFLOW } from '../shared/decide-prepared.ts';

const MAX_TEXTS_PER_NAME = 32;
const MAX_TEXTS_PER_SESSION = 10_000;

export class PreparedMemory {
  /** by reference in every decision request: no copy on the hot path */
  readonly texts: Record<string, string[]> = Object.create(null);
  private count = 0;

  get view(): PreparedTexts {
    return this.texts;
  }

  remember(name: string, text: string): void {
    if (name === '') return; // the unnamed statement cannot be EXECUTEd from SQL
    const texts = this.texts[name] ?? [];
    this.texts[name] = texts;
    if (texts.includes(text) || texts.includes(PREPARED_OVERFLOW)) return;
    const full = texts.length >= MAX_TEXTS_PER_NAME || this.count >= MAX_TEXTS_PER_SESSION;
    texts.push(full ? PREPARED_OVERFLOW : text);
    this.count++;
  }
}
