/**
 * cluster.yaml → each node's own config. The golden files (test/golden/cluster-*.yaml) are config/cluster.yaml's d1
 * and lb1 as rendered, reviewed by hand against what each node must run; the rendered configs must also load clean
 * through the config loader. fwmarks: from 0x2710 up, stable across edits.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { allocateFwmarks } from '../src/cluster/fwmark.js';
import { loadCluster, saveMarks } from '../src/cluster/load.js';
import { renderNode, renderNodeYaml } from '../src/cluster/render.js';
import { checkConfigString } from '../src/config/load.js';

const CLUSTER = new URL('../config/cluster.yaml', import.meta.url).pathname;
const golden = (name: string) => readFileSync(new URL(`golden/${name}`, import.meta.url), 'utf8');

function tmp(): { dir: string; done: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tierlb-cluster-'));
  return { dir, done: () => rmSync(dir, { recursive: true, force: true }) };
}

for (const node of ['d1', 'lb1']) {
  test(`config/cluster.yaml → ${node} matches golden/cluster-${node}.yaml and loads clean`, async (t) => {
    const { dir, done } = tmp();
    try {
      const c = await loadCluster(CLUSTER, join(dir, 'marks.json'));
      const text = renderNodeYaml(c.cluster, node, c.marks, 'config/cluster.yaml');
      t.is(text, golden(`cluster-${node}.yaml`));
      t.deepEqual(checkConfigString(text, `${node}.yaml`).problems, []);
    } finally {
      done();
    }
  });
}

test('a hypervisor is a VTEP node: its overlay has every LB node and the other hypervisors as remotes', async (t) => {
  const { dir, done } = tmp();
  try {
    const c = await loadCluster(CLUSTER, join(dir, 'marks.json'));
    const r = renderNode(c.cluster, 'hv1', c.marks);
    t.is(r.role, 'hypervisor');
    t.deepEqual(r.config, {
      overlay: {
        local: '10.200.0.1',
        networks: [{ vni: 100, mtu: 1450, dstport: 4789, remotes: ['10.200.0.21', '10.200.0.22'] }],
      },
    });
    t.deepEqual(checkConfigString(renderNodeYaml(c.cluster, 'hv1', c.marks, 'x'), 'hv1.yaml').problems, []);
    t.regex(renderNodeYaml(c.cluster, 'hv1', c.marks, 'x'), /^# hv1 \(hypervisor\): rendered from x/);
  } finally {
    done();
  }
});

test('fwmarks: from 0x2710 in listing order', (t) => {
  t.deepEqual(allocateFwmarks([{ name: 'web' }, { name: 'tcp' }, { name: 'api' }]), {
    web: 0x2710,
    tcp: 0x2711,
    api: 0x2712,
  });
});

test('fwmarks: adding, removing or reordering listeners never renumbers the others', (t) => {
  const first = allocateFwmarks([{ name: 'web' }, { name: 'tcp' }]);
  // a listener added in front takes the lowest free mark
  const added = allocateFwmarks([{ name: 'new' }, { name: 'web' }, { name: 'tcp' }], first);
  t.deepEqual(added, { new: 0x2712, web: 0x2710, tcp: 0x2711 });
  // one removed: the others keep theirs; its mark is free for the next new one
  const removed = allocateFwmarks([{ name: 'new' }, { name: 'tcp' }], added);
  t.deepEqual(removed, { new: 0x2712, tcp: 0x2711 });
  t.deepEqual(allocateFwmarks([{ name: 'tcp' }, { name: 'new' }, { name: 'x' }], removed), {
    tcp: 0x2711,
    new: 0x2712,
    x: 0x2710,
  });
});

test('fwmarks: a pinned mark wins; the listener that had it takes the lowest free one', (t) => {
  const prev = { web: 0x2710, tcp: 0x2711 };
  t.deepEqual(allocateFwmarks([{ name: 'web' }, { name: 'tcp', pinned: 0x2710 }], prev), { web: 0x2711, tcp: 0x2710 });
  t.deepEqual(allocateFwmarks([{ name: 'a' }], {}, 500), { a: 500 });
});

test('the marks file keeps the allocation across an edit of the cluster file', async (t) => {
  const { dir, done } = tmp();
  try {
    const file = join(dir, 'cluster.yaml');
    const marks = join(dir, 'cluster.marks.json');
    const text = readFileSync(CLUSTER, 'utf8');
    writeFileSync(file, text);
    const a = await loadCluster(file);
    t.true(a.marksChanged);
    saveMarks(marks, a.marks);
    t.false((await loadCluster(file)).marksChanged);
    // a listener inserted before the others
    writeFileSync(
      file,
      text.replace('  listeners:\n', '  listeners:\n    - { name: api, vip: front, port: 8443, mode: tcp }\n'),
    );
    const b = await loadCluster(file);
    t.deepEqual(b.marks, { api: 0x2712, web: 0x2710, tcp: 0x2711 });
  } finally {
    done();
  }
});

test('cluster problems at file:line', (t) => {
  const yaml = [
    'cluster:', // 1
    '  vips: [{ name: front, address: 10.99.0.1 }]', // 2
    '  listeners:', // 3
    '    - { name: web, vip: frnt, port: 80 }', // 4
    '    - { name: web, vip: front, port: 80, fwmark: 10000 }', // 5
    '  directors: [{ name: d1, address: 10.90.0.11 }]', // 6
    '  lb_nodes: [{ name: d1, address: 10.90.0.21 }]', // 7
    '  overlay: { vni: 100, subnet: 172.16.100.0/24 }', // 8
  ].join('\n');
  t.deepEqual(
    checkConfigString(yaml, 'c.yaml').problems.map((p) => `${p.line}: ${p.message}`),
    [
      "4: no VIP named 'frnt' (known: front)",
      "5: also listener 0's name",
      '7: with an overlay, an LB node needs underlay and overlay',
      "7: 'd1' is also directors[0]",
    ],
  );
});

test('director --cluster: the node is rendered into a file; an LB node is refused', async (t) => {
  const { renderNodeFile } = await import('../src/cluster/load.js');
  const { dir, done } = tmp();
  try {
    const file = join(dir, 'cluster.yaml');
    writeFileSync(file, readFileSync(CLUSTER, 'utf8'));
    const out = await renderNodeFile(file, 'd2', join(dir, 'd2.yaml'), 'director');
    const text = readFileSync(out, 'utf8');
    t.regex(text, /router_id: 10\.90\.0\.12/);
    t.deepEqual(checkConfigString(text).problems, []);
    await t.throwsAsync(() => renderNodeFile(file, 'lb1', join(dir, 'lb1.yaml'), 'director'), {
      message: /lb1 is an LB node in .*, not a director/,
    });
    await t.throwsAsync(() => renderNodeFile(file, 'nope', join(dir, 'x.yaml')), {
      message: /no director or LB node named 'nope'/,
    });
  } finally {
    done();
  }
});
