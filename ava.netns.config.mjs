// Tests that build network namespaces run one file at a time, each test serially (see DEVELOPERS.md).
export default {
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  files: ['test/netns-*.test.ts'],
  concurrency: 1,
  serial: true,
  timeout: '5m',
  workerThreads: false,
};
