/**
 * The director's memory defense (update_defense_level in ip_vs_ctl.c), run once a second. "Memory" here is the
 * connection table's free entries: it is short when fewer than `amemthresh` entries are free. Modes 0..3 of
 * drop_entry, drop_packet and secure_tcp behave as the kernel's: 0 off, 1 automatic (switches itself to 2 while
 * memory is short and back to 1 after), 3 always on.
 */

export interface DefenseSysctl {
  /** 0..3: randomly drop connection entries (ip_vs_random_dropentry) */
  drop_entry: number;
  /** 0..3: drop 1/rate of the packets that would create a connection */
  drop_packet: number;
  /** 0..3: use the secure (dos) TCP state table */
  secure_tcp: number;
  /** free-entry threshold below which memory counts as short */
  amemthresh: number;
  /** drop rate for drop_packet=3 */
  am_droprate: number;
}

export class Defense {
  /** ipvs->dropentry: ip_vs_random_dropentry runs on this defense tick */
  dropEntry = false;
  /** ipvs->drop_rate / drop_counter for ip_vs_todrop */
  dropRate = 0;
  private dropCounter = 0;
  private oldSecureTcp = 0;
  /** the TCP state machine uses tcp_states_dos */
  secureTable = false;

  constructor(private readonly sysctl: DefenseSysctl) {}

  /** update_defense_level with `avail` free entries. */
  update(avail: number): void {
    const s = this.sysctl;
    const thresh = Math.max(0, s.amemthresh);
    const nomem = avail < thresh;

    switch (s.drop_entry) {
      case 1:
        this.dropEntry = nomem;
        if (nomem) s.drop_entry = 2;
        break;
      case 2:
        this.dropEntry = nomem;
        if (!nomem) s.drop_entry = 1;
        break;
      case 3:
        this.dropEntry = true;
        break;
      default:
        this.dropEntry = false;
    }

    switch (s.drop_packet) {
      case 1:
      case 2:
        if (nomem) {
          this.dropRate = this.dropCounter = Math.trunc(thresh / (thresh - avail));
          s.drop_packet = 2;
        } else {
          this.dropRate = 0;
          s.drop_packet = 1;
        }
        break;
      case 3:
        this.dropRate = s.am_droprate;
        break;
      default:
        this.dropRate = 0;
    }

    let toChange = -1;
    switch (s.secure_tcp) {
      case 1:
      case 2:
        if (nomem) {
          if (this.oldSecureTcp < 2) toChange = 1;
          s.secure_tcp = 2;
        } else {
          if (this.oldSecureTcp >= 2) toChange = 0;
          s.secure_tcp = 1;
        }
        break;
      case 3:
        if (this.oldSecureTcp < 2) toChange = 1;
        break;
      default:
        if (this.oldSecureTcp >= 2) toChange = 0;
    }
    this.oldSecureTcp = s.secure_tcp;
    if (toChange >= 0) this.secureTable = s.secure_tcp > 1;
  }

  /** ip_vs_todrop: whether this connection-creating packet is dropped. */
  todrop(): boolean {
    if (!this.dropRate) return false;
    if (--this.dropCounter > 0) return false;
    this.dropCounter = this.dropRate;
    return true;
  }
}
