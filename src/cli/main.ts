/**
 * `tierlb <command>`: each command lives in its own module under src/cli/ and exports
 * `run(argv: string[]): Promise<number>` (the exit code). Modules are loaded lazily so `tierlb adm` does not pay for
 * the listeners' dependencies.
 */
const COMMANDS: Record<string, { module: string; help: string }> = {
  adm: { module: './adm.js', help: 'ipvsadm-compatible administration of the director (or of a rules file)' },
  director: { module: './director.js', help: 'run the L4 director daemon' },
  listeners: { module: './listeners.js', help: 'run the L7 listeners (cluster primary + workers) on an LB node' },
  overlay: { module: './overlay.js', help: 'set up, list or remove the VXLAN overlay' },
  lab: { module: './lab.js', help: 'build and drive the namespace lab (up, down, status, exec, trace, demo)' },
  demo: { module: './demo.js', help: 'the whole flow on the shipped default config' },
  doctor: { module: './doctor.js', help: 'troubleshooting checklist' },
  config: { module: './config.js', help: 'check a config file: tierlb config check FILE (or --haproxy haproxy.cfg)' },
  cluster: { module: './cluster.js', help: "derive a node's config from a cluster file (render, marks)" },
};

function usage(): string {
  const lines = ['usage: tierlb <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.help}`);
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '-h' || cmd === '--help' || cmd === 'help') {
    process.stdout.write(`${usage()}\n`);
    return cmd ? 0 : 2;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    process.stderr.write(`tierlb: unknown command '${cmd}'\n${usage()}\n`);
    return 2;
  }
  const mod: { run: (argv: string[]) => Promise<number> } = await import(c.module);
  return mod.run(rest);
}
