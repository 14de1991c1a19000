/** JSON schema of the `lab` config section (owned by src/lab). Placeholder until the lab lands. */
export const labSchema = { type: 'object' } as const;
