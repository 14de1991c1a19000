/** NFQUEUE messages as the kernel sends them, for the data-path tests and bench:l4:hotpath. */

/** A NFQNL_MSG_PACKET as the kernel sends it (packet header, mark, indev, hwaddr, payload). */
export function packetMsg(id: number, mark: number, payload: Uint8Array): Uint8Array {
  const len = 20 + 12 + 8 + 8 + 16 + ((4 + payload.length + 3) & ~3);
  const m = new Uint8Array(len);
  const v = new DataView(m.buffer);
  v.setUint32(0, len, true);
  v.setUint16(4, 3 << 8, true);
  let o = 20;
  v.setUint16(o, 11, true);
  v.setUint16(o + 2, 1, true);
  v.setUint32(o + 4, id, false);
  v.setUint16(o + 8, payload[0] >> 4 === 6 ? 0x86dd : 0x0800, false);
  m[o + 10] = 1;
  o += 12;
  v.setUint16(o, 8, true);
  v.setUint16(o + 2, 3, true);
  v.setUint32(o + 4, mark, false);
  o += 8;
  v.setUint16(o, 8, true);
  v.setUint16(o + 2, 5, true);
  v.setUint32(o + 4, 7, false);
  o += 8;
  v.setUint16(o, 16, true);
  v.setUint16(o + 2, 9, true);
  v.setUint16(o + 4, 6, false);
  m.set([2, 0, 0, 0, 0, 1], o + 8);
  o += 16;
  v.setUint16(o, 4 + payload.length, true);
  v.setUint16(o + 2, 10, true);
  m.set(payload, o + 4);
  return m;
}
