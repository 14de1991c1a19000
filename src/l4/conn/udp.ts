/** UDP in IPVS (ip_vs_proto_udp.c): one state, NORMAL, printed as "UDP"; connections never become active. */

export const UDP_S_NORMAL = 0;
export const UDP_STATE_NAME = 'UDP';
/** udp_timeouts[IP_VS_UDP_S_NORMAL]: 5 minutes */
export const UDP_DEFAULT_TIMEOUT_MS = 300_000;
