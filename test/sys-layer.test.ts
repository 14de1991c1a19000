/** src/sys is the kernel layer: it imports only src/common (and node, koffi), and is the only place libc is bound. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import test from 'ava';

const SRC = join(import.meta.dirname, '..', 'src');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const importsOf = (text: string) => [...text.matchAll(/\bfrom '([^']+)'/g)].map((m) => m[1]);

test('src/sys imports nothing above it', (t) => {
  for (const f of files(join(SRC, 'sys')))
    for (const spec of importsOf(readFileSync(f, 'utf8')))
      t.true(
        spec.startsWith('node:') || spec === 'koffi' || spec.startsWith('./') || spec.startsWith('../common/'),
        `${f} imports ${spec}`,
      );
});

test('libc is loaded in src/sys/libc.ts only, and no other room spawns through its own runCommand/splitCommand', (t) => {
  for (const f of files(SRC)) {
    const text = readFileSync(f, 'utf8');
    // libc once (sys/libc.ts); any other library (libbpf: sys/bpf.ts) only inside the kernel layer
    if (!f.endsWith(join('sys', 'libc.ts'))) t.false(/koffi\.load\(\s*['"]libc/.test(text), `${f} loads libc`);
    if (!f.startsWith(join(SRC, 'sys'))) t.false(/koffi\.load\(/.test(text), `${f} loads a library outside src/sys`);
    if (!f.includes(`${join(SRC, 'sys')}`))
      t.false(/function (runCommand|splitCommand)\b/.test(text), `${f} has its own runner or splitter`);
  }
});
