/** JSON schema of the `vrrp` config section (owned by src/ha). Placeholder until VRRP lands. */
export const vrrpSchema = { type: 'array', items: { type: 'object' } } as const;
