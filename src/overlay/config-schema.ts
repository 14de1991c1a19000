/** JSON schema of the `overlay` config section (owned by src/overlay). Placeholder until the overlay lands. */
export const overlaySchema = { type: 'object' } as const;
