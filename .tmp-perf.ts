import { maskCell } from './shared/masking/methods.ts';
import { scanBytes } from './shared/masking/detectors.ts';
import { DEFAULT_DETECTORS } from './shared/masking/model.ts';
const key = new TextEncoder().encode('k');
const enc = new TextEncoder();
const ssns = Array.from({ length: 1000 }, (_, i) => enc.encode(`${100 + (i % 800)}-${10 + (i % 89)}-${1000 + i}`));
const cards = Array.from({ length: 1000 }, (_, i) => enc.encode(`4111 1111 1111 ${String(1000 + i).padStart(4, '0')}`));
const names = Array.from({ length: 1000 }, (_, i) => enc.encode(`Customer number ${i} of Springfield, Elm street ${i}`));
const emails = Array.from({ length: 1000 }, (_, i) => enc.encode(`user${i}@example.com`));
const settings = { enabled: DEFAULT_DETECTORS, method: 'partial' as const };
const ctx = { typeOid: 25, key };
for (const [label, fn] of [
  ['partial x2', (i: number) => { maskCell(ssns[i % 1000]!, 0, 'partial', ctx); maskCell(cards[i % 1000]!, 0, 'partial', ctx); }],
  ['hash x2', (i: number) => { maskCell(ssns[i % 1000]!, 0, 'hash', ctx); maskCell(cards[i % 1000]!, 0, 'hash', ctx); }],
  ['fake x2', (i: number) => { maskCell(ssns[i % 1000]!, 0, 'fake', ctx); maskCell(cards[i % 1000]!, 0, 'fake', ctx); }],
  ['scan 2 clean text cols', (i: number) => { scanBytes(names[i % 1000]!, settings, key); scanBytes(emails[i % 1000]!, settings, key); }],
  ['scan 1 ssn col (hit)', (i: number) => { scanBytes(ssns[i % 1000]!, settings, key); }],
] as const) {
  for (let i = 0; i < 100000; i++) fn(i);
  const t = performance.now();
  for (let i = 0; i < 1_000_000; i++) fn(i);
  console.log(label, `${(performance.now() - t).toFixed(0)} ms per 1M rows`);
}
