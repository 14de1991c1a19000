/**
 * Per-service and per-real-server counters (struct ip_vs_kstats) and the kernel's rate estimator (ip_vs_est.c):
 * every 2 seconds the deltas are folded into an exponentially weighted average with weight 1/4, in fixed point
 * (<<9 for conns and packets, <<4 for bytes per 2 s, i.e. scaled by 2^10 and 2^5 per second).
 */
export interface StatsSnapshot {
  conns: number;
  inpkts: number;
  outpkts: number;
  inbytes: number;
  outbytes: number;
  cps: number;
  inpps: number;
  outpps: number;
  inbps: number;
  outbps: number;
}

export class Stats {
  conns = 0;
  inpkts = 0;
  outpkts = 0;
  inbytes = 0;
  outbytes = 0;
  // estimator state (fixed point, as the kernel keeps it)
  private lastConns = 0;
  private lastInpkts = 0;
  private lastOutpkts = 0;
  private lastInbytes = 0;
  private lastOutbytes = 0;
  private ecps = 0;
  private einpps = 0;
  private eoutpps = 0;
  private einbps = 0;
  private eoutbps = 0;

  /** One estimator step; the caller runs it every 2 seconds (ESTIMATOR_INTERVAL_MS). */
  estimate(): void {
    let rate = (this.conns - this.lastConns) * 512;
    this.lastConns = this.conns;
    this.ecps += Math.trunc((rate - this.ecps) / 4);
    rate = (this.inpkts - this.lastInpkts) * 512;
    this.lastInpkts = this.inpkts;
    this.einpps += Math.trunc((rate - this.einpps) / 4);
    rate = (this.outpkts - this.lastOutpkts) * 512;
    this.lastOutpkts = this.outpkts;
    this.eoutpps += Math.trunc((rate - this.eoutpps) / 4);
    rate = (this.inbytes - this.lastInbytes) * 16;
    this.lastInbytes = this.inbytes;
    this.einbps += Math.trunc((rate - this.einbps) / 4);
    rate = (this.outbytes - this.lastOutbytes) * 16;
    this.lastOutbytes = this.outbytes;
    this.eoutbps += Math.trunc((rate - this.eoutbps) / 4);
  }

  snapshot(): StatsSnapshot {
    return {
      conns: this.conns,
      inpkts: this.inpkts,
      outpkts: this.outpkts,
      inbytes: this.inbytes,
      outbytes: this.outbytes,
      cps: Math.floor((this.ecps + 0x1ff) / 1024),
      inpps: Math.floor((this.einpps + 0x1ff) / 1024),
      outpps: Math.floor((this.eoutpps + 0x1ff) / 1024),
      inbps: Math.floor((this.einbps + 0xf) / 32),
      outbps: Math.floor((this.eoutbps + 0xf) / 32),
    };
  }

  /** ipvsadm -Z: counters to zero; the estimator restarts from the current values (ip_vs_zero_estimator). */
  zero(): void {
    this.conns = this.inpkts = this.outpkts = this.inbytes = this.outbytes = 0;
    this.lastConns = this.lastInpkts = this.lastOutpkts = this.lastInbytes = this.lastOutbytes = 0;
    this.ecps = this.einpps = this.eoutpps = this.einbps = this.eoutbps = 0;
  }
}

export const ESTIMATOR_INTERVAL_MS = 2000;
