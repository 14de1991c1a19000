/** JSON schema of the `listeners` config section (owned by src/listeners). Placeholder until the listeners land. */
export const listenersSchema = { type: 'array', items: { type: 'object' } } as const;
