/**
 * Schema pieces several config sections share (the lab, overlay and vrrp sections today), so an address is checked the
 * same way everywhere.
 */

/** One IPv4 octet, 0..255 without leading zeros. */
const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = `${OCTET}(\\.${OCTET}){3}`;

/** A dotted-quad IPv4 address. */
export const ipv4Schema = { type: 'string', pattern: `^${IPV4}$` } as const;

/** An IPv4 address with a prefix length; `prefix` is the regex alternative of the lengths allowed, e.g. `[0-9]|[12]\\d|3[0-2]`. */
export function cidr4Schema(prefix: string) {
  return { type: 'string', pattern: `^${IPV4}/(${prefix})$` } as const;
}

/** An IPv4 address with an optional prefix length (`prefix` as in cidr4Schema). */
export function ipv4OptionalPrefixSchema(prefix: string) {
  return { type: 'string', pattern: `^${IPV4}(/(${prefix}))?$` } as const;
}

/** A TCP/UDP port other than 0. */
export const portSchema = { type: 'integer', minimum: 1, maximum: 65535 } as const;
