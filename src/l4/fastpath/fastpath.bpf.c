// SPDX-License-Identifier: MIT
/*
 * tierlb L4 fast path: a tc ingress program on the director's interfaces that forwards, in the kernel, the packets of
 * known flows that cannot change IPVS state. Everything that may change state, or that the program is not sure about,
 * returns TC_ACT_OK untouched and takes the NFQUEUE path to the userspace engine (a miss is always safe).
 *
 * Forwarded here: TCP without SYN/FIN/RST and UDP, of a flow the engine put in the flow map and armed.
 *   DR:  bpf_redirect_neigh to the real server (addresses untouched, only the MACs change).
 *   NAT: request VIP:vport -> RIP:rport and reply RIP:rport -> VIP:vport rewritten with the checksum helpers,
 *        then bpf_redirect_neigh.
 *   TUN: IPv4 in IPv4 (IPIP) and IPv6 in IPv6 (next header 41, traffic class copied), the outer header built here
 *        (source: the real's `src`, else the FIB's; TTL / hop limit 64), then bpf_redirect_neigh; only when the
 *        outer packet fits the egress MTU (else userspace answers: ICMPv6 Packet Too Big for IPv6).
 * Every forwarded packet's TTL / hop limit is decremented (IPv4 header checksum fixed), as a router does; a packet with
 * TTL <= 1 falls through, so the stack answers it (ICMP time exceeded).
 * Falls through: map miss, an entry not armed yet (see ordering below), SYN/FIN/RST, ICMP and other protocols,
 * fragments, IPv4 options, IPv6 extension headers, TTL/hop limit <= 1, a disabled real server, a TUN real server
 * of the other family, an MTU problem, a header that cannot be pulled into the linear area.
 *
 * Ordering, per direction (request, NAT reply): the engine writes an entry unarmed. Its packets keep falling through
 * to the NFQUEUE, counted (`passed`, in segments: the queue splits a GSO skb) and tagged with the entry's token, the
 * direction and that count in skb->tstamp, which the queue hands to the engine (NFQA_TIMESTAMP). Once the engine has
 * read and sent the verdict of n tagged packets, n being the highest tag read, it writes n into arm4/arm6; the
 * program arms the direction at the first packet that finds passed == n, i.e. when no packet of that direction is
 * left in the queue (the untagged ones written before came before the first tagged one in it). So a packet forwarded here never overtakes one of its flow still waiting in the queue
 * (arming.ts).
 *
 * The maps are written by the engine (src/l4/fastpath/maps.ts) through the bpf() syscall; their layouts are mirrored
 * there byte for byte. Nothing is pinned: the maps and the program live as long as the director's file descriptors.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

#define METHOD_DR 1
#define METHOD_NAT 2
#define METHOD_TUN 3

#define IP_DF 0x4000
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* per-CPU counters, indexes mirrored in maps.ts (COUNTER_NAMES) */
enum {
  C_HIT_DR,
  C_HIT_NAT,
  C_HIT_NAT_REPLY,
  C_MISS_NO_FLOW,
  C_MISS_TCP_FLAGS,
  C_MISS_PROTO,
  C_MISS_FRAGMENT,
  C_MISS_IP_OPTIONS,
  C_MISS_V6_EXT,
  C_MISS_PULL,
  C_MISS_RS_DISABLED,
  C_MISS_METHOD,
  C_MISS_TTL,
  C_MISS_FIB,
  C_MISS_MTU,
  C_MISS_REWRITE,
  C_NOT_IP,
  C_MISS_UNARMED,
  C_HIT_TUN,
  C_MISS_ENCAP,
  C_MAX,
};

struct flow4_key {
  __u32 saddr;
  __u32 daddr;
  __u16 sport;
  __u16 dport;
  __u8 proto;
  __u8 pad[3];
};

struct flow6_key {
  __u32 saddr[4];
  __u32 daddr[4];
  __u16 sport;
  __u16 dport;
  __u8 proto;
  __u8 pad[3];
};

/* one flow as the client sees it (request tuple); for NAT the rewrite target is the real server's address and port */
struct flow_val {
  __u32 rs;           /* index in the reals map */
  __u8 method;        /* METHOD_* */
  __u8 armed[2];      /* per direction (0 request, 1 NAT reply); 0: packets may still wait in the NFQUEUE */
  __u8 pad;
  __u32 nat_addr[4];  /* NAT: RIP (v4 in [0]), network order */
  __u16 nat_port;     /* NAT: rport, network order */
  __u16 pad2;
  __u32 reply_ifindex; /* NAT: where replies go (the interface the client's packets arrive on); 0: FIB lookup */
  __u32 token;        /* the engine's name for this entry in the tags of unarmed packets */
  __u32 passed[2];    /* per direction: packets that fell through while unarmed (the last tag given) */
  __u32 pad3;
  __u64 last_seen;    /* bpf_ktime_get_ns() of the last packet forwarded here, either direction */
  __u64 packets;      /* request packets forwarded here */
  __u64 bytes;        /* their bytes (IP total length, as the engine counts) */
  __u64 reply_packets;
  __u64 reply_bytes;
};

/* a real server (NAT reply tuples, RIP:rport -> CIP:cport, map to the request tuple in nat_reply4/6) */
struct real {
  __u32 ifindex; /* 0: FIB lookup of the next hop */
  __u32 family;  /* AF_INET / AF_INET6 */
  __u32 nh[4];   /* next hop (the real server's address for DR), network order */
  __u32 enabled;
  __u32 pad;
  __u32 src[4];  /* TUN: the outer header's source, network order; 0: the FIB's (BPF_FIB_LOOKUP_SRC, linux 6.8+) */
};

#ifndef MAX_FLOWS
#define MAX_FLOWS 65536
#endif
#define MAX_REALS 4096

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MAX_FLOWS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flow4_key);
  __type(value, struct flow_val);
} flows4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MAX_FLOWS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flow6_key);
  __type(value, struct flow_val);
} flows6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MAX_FLOWS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flow4_key);
  __type(value, struct flow4_key);
} nat_reply4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MAX_FLOWS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flow6_key);
  __type(value, struct flow6_key);
} nat_reply6 SEC(".maps");

/* request tuple -> per direction, the last tag the engine has read and sent a verdict for (entries being armed) */
struct arm {
  __u32 at[2];
};

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MAX_FLOWS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flow4_key);
  __type(value, struct arm);
} arm4 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MAX_FLOWS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct flow6_key);
  __type(value, struct arm);
} arm6 SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, MAX_REALS);
  __type(key, __u32);
  __type(value, struct real);
} reals SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, C_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

static __always_inline int count(__u32 idx) {
  __u64 *c = bpf_map_lookup_elem(&counters, &idx);
  if (c) *c += 1;
  return TC_ACT_OK;
}

/*
 * The egress interface and next hop of `dst` from the FIB. No BPF_FIB_LOOKUP_SKIP_NEIGH (linux 6.4+): without a
 * neighbour entry the lookup says NO_NEIGH, but it has filled in the interface and the gateway by then (every kernel
 * with bpf_fib_lookup does so), and bpf_redirect_neigh resolves the neighbour itself.
 */
static __always_inline int fib_nexthop(struct __sk_buff *skb, struct bpf_fib_lookup *fib) {
  long r = bpf_fib_lookup(skb, fib, sizeof(*fib), 0);
  return r == BPF_FIB_LKUP_RET_SUCCESS || r == BPF_FIB_LKUP_RET_NO_NEIGH ? 0 : -1;
}

/* headers must be in the linear area; a non-linear skb (AF_PACKET, some veth paths) is pulled first */
static __always_inline int ensure(struct __sk_buff *skb, __u32 len) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  if (data + len <= end) return 0;
  if (skb->len < len) return -1;
  if (bpf_skb_pull_data(skb, len)) return -1;
  data = (void *)(long)skb->data;
  end = (void *)(long)skb->data_end;
  return data + len <= end ? 0 : -1;
}

/*
 * Segments this skb stands for (GRO/GSO) and their bytes as the engine counts them (each segment's IP total length);
 * `outer`: bytes of an encapsulation header already pushed in front (not counted).
 */
static __always_inline void account(struct __sk_buff *skb, __u32 hdrs, __u64 *pkts, __u64 *bytes, __u32 outer) {
  __u32 segs = skb->gso_segs;
  if (segs < 1) segs = 1;
  __u64 b = skb->len - sizeof(struct ethhdr) - outer;
  b += (__u64)(segs - 1) * hdrs;
  __sync_fetch_and_add(pkts, segs);
  __sync_fetch_and_add(bytes, b);
}

#define TAG_MAX 499999

/*
 * A direction of an unarmed entry: arm it when the engine has had every packet of it that fell through
 * (at[dir] == passed[dir]); else this packet falls through too, numbered and tagged (skb->tstamp =
 * (2^32 + token) s + (dir * 500000 + n) us: far beyond any real time, so the engine tells it from a receive
 * timestamp). Returns 1 when armed (forward), else 0 (fall through).
 */
static __always_inline int unarmed(struct __sk_buff *skb, struct flow_val *f, struct arm *a, int dir) {
  __u32 *passed = dir ? &f->passed[1] : &f->passed[0];
  if (a && (dir ? a->at[1] : a->at[0]) == *passed) {
    if (dir)
      f->armed[1] = 1;
    else
      f->armed[0] = 1;
    return 1;
  }
  /* a GSO skb is queued as its segments, each with this tag: the number counts segments, so the engine knows a tag
   * is complete when it has read as many tagged packets as the tag says */
  __u32 segs = skb->gso_segs;
  if (segs < 1) segs = 1;
  __u32 n = __sync_fetch_and_add(passed, segs) + segs;
  if (n <= TAG_MAX)
    skb->tstamp = ((1ULL << 32) + f->token) * 1000000000ULL + ((__u64)n + (dir ? TAG_MAX + 1 : 0)) * 1000ULL;
  count(C_MISS_UNARMED);
  return 0;
}

/* TTL - 1, the header checksum fixed incrementally (the 16-bit word at offset 8 holds TTL and protocol) */
static __always_inline int dec_ttl4(struct __sk_buff *skb, __u32 l3, __u8 ttl, __u8 proto) {
  __u8 t = ttl - 1;
  __u16 from = bpf_htons(((__u16)ttl << 8) | proto);
  __u16 to = bpf_htons(((__u16)t << 8) | proto);
  if (bpf_l3_csum_replace(skb, l3 + offsetof(struct iphdr, check), from, to, 2)) return -1;
  return bpf_skb_store_bytes(skb, l3 + offsetof(struct iphdr, ttl), &t, 1, 0) ? -1 : 0;
}

/* hop limit - 1 of the IPv6 header at l3 (no header checksum in IPv6) */
static __always_inline int dec_hops6_at(struct __sk_buff *skb, __u32 l3, __u8 hops) {
  __u8 h = hops - 1;
  return bpf_skb_store_bytes(skb, l3 + offsetof(struct ipv6hdr, hop_limit), &h, 1, 0) ? -1 : 0;
}

static __always_inline int dec_hops6(struct __sk_buff *skb, __u8 hops) {
  return dec_hops6_at(skb, sizeof(struct ethhdr), hops);
}

static __always_inline __u16 csum_fold(__s64 sum) {
  __u32 c = (__u32)sum;
  c = (c & 0xffff) + (c >> 16);
  c = (c & 0xffff) + (c >> 16);
  return (__u16)~c;
}

/*
 * TUN, IPv4 in IPv4: make room for an outer header behind the MAC header (bpf_skb_adjust_room with the ENCAP flags,
 * so GSO segments the result as IPIP), write it, decrement the inner TTL and redirect towards the real server. The
 * outer source is the real's `src`, else the FIB's preferred source for the real (BPF_FIB_LOOKUP_SRC); egress and
 * next hop the real's ifindex and address, else the FIB's. Everything that can fail without touching the packet
 * comes first; a failure falls through with the packet as it was.
 */
static __always_inline int tun4(struct __sk_buff *skb, struct real *rs, struct flow_val *f, __u8 proto, __u8 ttl,
                                __u8 tos, __u16 frag_off, __u32 tot, __u32 hdrs) {
  const __u32 l3 = sizeof(struct ethhdr);
  if (rs->family != AF_INET) return count(C_MISS_METHOD);
  __u32 dst = rs->nh[0];
  __u32 src = rs->src[0];
  __u32 ifindex = rs->ifindex;
  struct bpf_redir_neigh nh = {.nh_family = AF_INET};
  nh.ipv4_nh = dst;
  if (ifindex == 0 || src == 0) {
    struct bpf_fib_lookup fib = {};
    fib.family = AF_INET;
    fib.ifindex = skb->ingress_ifindex;
    fib.ipv4_dst = dst;
    long r = bpf_fib_lookup(skb, &fib, sizeof(fib), src ? 0 : BPF_FIB_LOOKUP_SRC);
    if (r != BPF_FIB_LKUP_RET_SUCCESS && r != BPF_FIB_LKUP_RET_NO_NEIGH) return count(C_MISS_FIB);
    if (src == 0) src = fib.ipv4_src;
    if (ifindex == 0) {
      ifindex = fib.ifindex;
      nh.ipv4_nh = fib.ipv4_dst;
    }
  }
  if (src == 0) return count(C_MISS_FIB);
  if (tot < sizeof(struct iphdr) || tot > 0xffff - sizeof(struct iphdr)) return count(C_MISS_MTU);
  __u32 mtu = 0;
  if (bpf_check_mtu(skb, ifindex, &mtu, sizeof(struct iphdr), 0)) return count(C_MISS_MTU);

  struct iphdr o = {};
  o.version = 4;
  o.ihl = 5;
  o.tos = tos;
  o.tot_len = bpf_htons(tot + sizeof(struct iphdr));
  o.frag_off = frag_off & bpf_htons(IP_DF);
  o.id = o.frag_off ? 0 : (__u16)bpf_get_prandom_u32();
  o.ttl = 64;
  o.protocol = IPPROTO_IPIP;
  o.saddr = src;
  o.daddr = dst;
  o.check = csum_fold(bpf_csum_diff(0, 0, (__be32 *)&o, sizeof(o), 0));

  if (bpf_skb_adjust_room(skb, sizeof(struct iphdr), BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV4))
    return count(C_MISS_ENCAP);
  /* not reached in practice (the room was just made, linear): the packet is no longer the one received */
  if (bpf_skb_store_bytes(skb, l3, &o, sizeof(o), 0) || dec_ttl4(skb, l3 + sizeof(struct iphdr), ttl, proto)) {
    count(C_MISS_REWRITE);
    return TC_ACT_SHOT;
  }
  account(skb, hdrs, &f->packets, &f->bytes, sizeof(struct iphdr));
  f->last_seen = bpf_ktime_get_ns();
  count(C_HIT_TUN);
  return bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
}

/*
 * TUN, IPv6 in IPv6 (ip_vs_tunnel_xmit_v6): as tun4, with an IPv6 outer header: next header 41, the inner traffic
 * class copied, flow label 0, hop limit 64, payload length the inner packet's length. An inner packet that would not
 * fit the egress MTU once encapsulated falls through untouched: userspace answers it with ICMPv6 Packet Too Big.
 */
static __always_inline int tun6(struct __sk_buff *skb, struct real *rs, struct flow_val *f, __u8 hops, __u8 tclass,
                                __u32 tot, __u32 hdrs) {
  const __u32 l3 = sizeof(struct ethhdr);
  if (rs->family != AF_INET6) return count(C_MISS_METHOD);
  struct ipv6hdr o = {};
  __builtin_memcpy(&o.daddr, rs->nh, 16);
  __builtin_memcpy(&o.saddr, rs->src, 16);
  __u32 ifindex = rs->ifindex;
  struct bpf_redir_neigh nh = {.nh_family = AF_INET6};
  __builtin_memcpy(nh.ipv6_nh, rs->nh, 16);
  int nosrc = !(rs->src[0] | rs->src[1] | rs->src[2] | rs->src[3]);
  if (ifindex == 0 || nosrc) {
    struct bpf_fib_lookup fib = {};
    fib.family = AF_INET6;
    fib.ifindex = skb->ingress_ifindex;
    __builtin_memcpy(fib.ipv6_dst, rs->nh, 16);
    long r = bpf_fib_lookup(skb, &fib, sizeof(fib), nosrc ? BPF_FIB_LOOKUP_SRC : 0);
    if (r != BPF_FIB_LKUP_RET_SUCCESS && r != BPF_FIB_LKUP_RET_NO_NEIGH) return count(C_MISS_FIB);
    if (nosrc) {
      if (!(fib.ipv6_src[0] | fib.ipv6_src[1] | fib.ipv6_src[2] | fib.ipv6_src[3])) return count(C_MISS_FIB);
      __builtin_memcpy(&o.saddr, fib.ipv6_src, 16);
    }
    if (ifindex == 0) {
      ifindex = fib.ifindex;
      __builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
    }
  }
  /* the outer payload length is the whole inner packet */
  if (tot < sizeof(struct ipv6hdr) || tot > 0xffff) return count(C_MISS_MTU);
  __u32 mtu = 0;
  if (bpf_check_mtu(skb, ifindex, &mtu, sizeof(struct ipv6hdr), 0)) return count(C_MISS_MTU);

  o.version = 6;
  o.priority = tclass >> 4;
  o.flow_lbl[0] = (tclass & 0x0f) << 4;
  o.payload_len = bpf_htons(tot);
  o.nexthdr = IPPROTO_IPV6;
  o.hop_limit = 64;

  if (bpf_skb_adjust_room(skb, sizeof(struct ipv6hdr), BPF_ADJ_ROOM_MAC, BPF_F_ADJ_ROOM_ENCAP_L3_IPV6))
    return count(C_MISS_ENCAP);
  /* not reached in practice (the room was just made, linear): the packet is no longer the one received */
  if (bpf_skb_store_bytes(skb, l3, &o, sizeof(o), 0) || dec_hops6_at(skb, l3 + sizeof(struct ipv6hdr), hops)) {
    count(C_MISS_REWRITE);
    return TC_ACT_SHOT;
  }
  account(skb, hdrs, &f->packets, &f->bytes, sizeof(struct ipv6hdr));
  f->last_seen = bpf_ktime_get_ns();
  count(C_HIT_TUN);
  return bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
}

/* egress of a forwarded packet: the real's ifindex and next hop, or a FIB lookup of the next hop */
static __always_inline int redirect_to(struct __sk_buff *skb, __u32 ifindex, __u32 family, const __u32 *dst) {
  struct bpf_redir_neigh nh = {};
  nh.nh_family = family;
  if (ifindex == 0) {
    struct bpf_fib_lookup fib = {};
    fib.family = family;
    fib.ifindex = skb->ingress_ifindex;
    fib.tot_len = 0; /* no MTU check here (a GRO/GSO skb is larger than the MTU): bpf_check_mtu below */
    if (family == AF_INET) {
      fib.ipv4_dst = dst[0];
    } else {
      __builtin_memcpy(fib.ipv6_dst, dst, 16);
    }
    if (fib_nexthop(skb, &fib)) return -C_MISS_FIB;
    ifindex = fib.ifindex;
    if (family == AF_INET)
      nh.ipv4_nh = fib.ipv4_dst;
    else
      __builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
  } else if (family == AF_INET) {
    nh.ipv4_nh = dst[0];
  } else {
    __builtin_memcpy(nh.ipv6_nh, dst, 16);
  }
  __u32 mtu = 0;
  if (bpf_check_mtu(skb, ifindex, &mtu, 0, 0)) return -C_MISS_MTU;
  return bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* IPv4 */

static __always_inline int ipv4(struct __sk_buff *skb) {
  const __u32 l3 = sizeof(struct ethhdr);
  if (ensure(skb, l3 + sizeof(struct iphdr))) return count(C_MISS_PULL);
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct iphdr *ip = data + l3;
  if ((void *)(ip + 1) > end) return count(C_MISS_PULL);
  if (ip->ihl != 5) return count(C_MISS_IP_OPTIONS);
  if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) return count(C_MISS_FRAGMENT);
  __u8 proto = ip->protocol;
  __u32 l4 = l3 + sizeof(struct iphdr);
  __u32 l4hdr;
  if (proto == IPPROTO_TCP)
    l4hdr = sizeof(struct tcphdr);
  else if (proto == IPPROTO_UDP)
    l4hdr = sizeof(struct udphdr);
  else
    return count(C_MISS_PROTO);
  if (ensure(skb, l4 + l4hdr)) return count(C_MISS_PULL);
  data = (void *)(long)skb->data;
  end = (void *)(long)skb->data_end;
  ip = data + l3;
  if ((void *)(ip + 1) > end) return count(C_MISS_PULL);
  __u32 hdrs = sizeof(struct iphdr) + sizeof(struct udphdr);
  struct flow4_key k = {};
  k.saddr = ip->saddr;
  k.daddr = ip->daddr;
  k.proto = proto;
  if (proto == IPPROTO_TCP) {
    struct tcphdr *th = data + l4;
    if ((void *)(th + 1) > end) return count(C_MISS_PULL);
    if (th->syn || th->fin || th->rst) return count(C_MISS_TCP_FLAGS);
    k.sport = th->source;
    k.dport = th->dest;
    hdrs = sizeof(struct iphdr) + th->doff * 4;
  } else {
    struct udphdr *uh = data + l4;
    if ((void *)(uh + 1) > end) return count(C_MISS_PULL);
    k.sport = uh->source;
    k.dport = uh->dest;
  }
  __u8 ttl = ip->ttl;
  __u8 tos = ip->tos;
  __u16 frag_off = ip->frag_off;
  __u32 tot = bpf_ntohs(ip->tot_len);

  int reply = 0;
  struct flow4_key *rk = 0;
  struct flow_val *f = bpf_map_lookup_elem(&flows4, &k);
  if (!f) {
    rk = bpf_map_lookup_elem(&nat_reply4, &k);
    if (!rk) return count(C_MISS_NO_FLOW);
    f = bpf_map_lookup_elem(&flows4, rk);
    if (!f || f->method != METHOD_NAT) return count(C_MISS_NO_FLOW);
    reply = 1;
  }
  if (!f->armed[reply] && !unarmed(skb, f, bpf_map_lookup_elem(&arm4, reply ? rk : &k), reply)) return TC_ACT_OK;
  if (ttl <= 1) return count(C_MISS_TTL);
  if (!reply && f->method != METHOD_DR && f->method != METHOD_NAT && f->method != METHOD_TUN)
    return count(C_MISS_METHOD);
  __u32 rsi = f->rs;
  struct real *rs = bpf_map_lookup_elem(&reals, &rsi);
  if (!rs || !rs->enabled) return count(C_MISS_RS_DISABLED);
  if (f->method == METHOD_TUN) return tun4(skb, rs, f, proto, ttl, tos, frag_off, tot, hdrs);

  const __u32 csum_off = l3 + offsetof(struct iphdr, check);
  const __u32 l4csum_off = l4 + (proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
  const __u64 l4flags = BPF_F_PSEUDO_HDR | (proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0);
  int r;

  if (f->method == METHOD_DR) {
    r = redirect_to(skb, rs->ifindex, AF_INET, rs->nh);
    if (r < 0) return count(-r);
    if (dec_ttl4(skb, l3, ttl, proto)) return count(C_MISS_REWRITE); /* not reached: the header is linear */
    account(skb, hdrs, &f->packets, &f->bytes, 0);
    f->last_seen = bpf_ktime_get_ns();
    count(C_HIT_DR);
    return r;
  }

  /* NAT: choose the egress first, so a failure leaves the packet untouched */
  __u32 new_addr, new_port, old_addr, old_port, addr_off, port_off;
  __u32 dst[4] = {};
  if (!reply) {
    old_addr = k.daddr;
    old_port = k.dport;
    new_addr = f->nat_addr[0];
    new_port = f->nat_port;
    addr_off = l3 + offsetof(struct iphdr, daddr);
    port_off = l4 + 2;
    dst[0] = new_addr;
  } else {
    old_addr = k.saddr;
    old_port = k.sport;
    new_addr = rk->daddr;
    new_port = rk->dport;
    addr_off = l3 + offsetof(struct iphdr, saddr);
    port_off = l4;
    dst[0] = k.daddr;
  }
  __u32 ifindex = reply ? f->reply_ifindex : rs->ifindex;
  struct bpf_fib_lookup fib = {};
  struct bpf_redir_neigh nh = {.nh_family = AF_INET};
  if (ifindex == 0 || reply) {
    fib.family = AF_INET;
    fib.ifindex = skb->ingress_ifindex;
    fib.tot_len = 0; /* no MTU check here (a GRO/GSO skb is larger than the MTU): bpf_check_mtu below */
    fib.ipv4_dst = dst[0];
    if (fib_nexthop(skb, &fib)) {
      if (ifindex == 0) return count(C_MISS_FIB);
      nh.ipv4_nh = dst[0]; /* on-link guess: the reply's own destination */
    } else {
      if (ifindex == 0) ifindex = fib.ifindex;
      nh.ipv4_nh = fib.ipv4_dst;
    }
  } else {
    nh.ipv4_nh = rs->nh[0] ? rs->nh[0] : dst[0];
  }
  __u32 mtu = 0;
  if (bpf_check_mtu(skb, ifindex, &mtu, 0, 0)) return count(C_MISS_MTU);

  __u16 np = (__u16)new_port;
  __u16 op = (__u16)old_port;
  if (bpf_l4_csum_replace(skb, l4csum_off, old_addr, new_addr, l4flags | 4) ||
      bpf_l4_csum_replace(skb, l4csum_off, op, np, (l4flags & ~BPF_F_PSEUDO_HDR) | 2) ||
      bpf_l3_csum_replace(skb, csum_off, old_addr, new_addr, 4) ||
      bpf_skb_store_bytes(skb, addr_off, &new_addr, 4, 0) || bpf_skb_store_bytes(skb, port_off, &np, 2, 0) ||
      dec_ttl4(skb, l3, ttl, proto))
    return count(C_MISS_REWRITE); /* not reached in practice: offsets were checked above */

  if (reply)
    account(skb, hdrs, &f->reply_packets, &f->reply_bytes, 0);
  else
    account(skb, hdrs, &f->packets, &f->bytes, 0);
  f->last_seen = bpf_ktime_get_ns();
  count(reply ? C_HIT_NAT_REPLY : C_HIT_NAT);
  return bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
}

/* ------------------------------------------------------------------------------------------------------------ */
/* IPv6 */

static __always_inline int ipv6(struct __sk_buff *skb) {
  const __u32 l3 = sizeof(struct ethhdr);
  const __u32 l4 = l3 + sizeof(struct ipv6hdr);
  if (ensure(skb, l4)) return count(C_MISS_PULL);
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct ipv6hdr *ip6 = data + l3;
  if ((void *)(ip6 + 1) > end) return count(C_MISS_PULL);
  __u8 proto = ip6->nexthdr;
  __u32 l4hdr;
  if (proto == IPPROTO_TCP)
    l4hdr = sizeof(struct tcphdr);
  else if (proto == IPPROTO_UDP)
    l4hdr = sizeof(struct udphdr);
  else if (proto == IPPROTO_ICMPV6)
    return count(C_MISS_PROTO);
  else if (proto == 0 || proto == 43 || proto == 44 || proto == 50 || proto == 51 || proto == 60 || proto == 135 ||
           proto == 139 || proto == 140)
    return count(proto == 44 ? C_MISS_FRAGMENT : C_MISS_V6_EXT);
  else
    return count(C_MISS_PROTO);
  if (ensure(skb, l4 + l4hdr)) return count(C_MISS_PULL);
  data = (void *)(long)skb->data;
  end = (void *)(long)skb->data_end;
  ip6 = data + l3;
  if ((void *)(ip6 + 1) > end) return count(C_MISS_PULL);
  __u32 hdrs = sizeof(struct ipv6hdr) + sizeof(struct udphdr);
  struct flow6_key k = {};
  __builtin_memcpy(k.saddr, &ip6->saddr, 16);
  __builtin_memcpy(k.daddr, &ip6->daddr, 16);
  k.proto = proto;
  if (proto == IPPROTO_TCP) {
    struct tcphdr *th = data + l4;
    if ((void *)(th + 1) > end) return count(C_MISS_PULL);
    if (th->syn || th->fin || th->rst) return count(C_MISS_TCP_FLAGS);
    k.sport = th->source;
    k.dport = th->dest;
    hdrs = sizeof(struct ipv6hdr) + th->doff * 4;
  } else {
    struct udphdr *uh = data + l4;
    if ((void *)(uh + 1) > end) return count(C_MISS_PULL);
    k.sport = uh->source;
    k.dport = uh->dest;
  }
  __u8 hops = ip6->hop_limit;
  __u8 tclass = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
  __u32 tot = sizeof(struct ipv6hdr) + bpf_ntohs(ip6->payload_len);

  int reply = 0;
  struct flow6_key *rk = 0;
  struct flow_val *f = bpf_map_lookup_elem(&flows6, &k);
  if (!f) {
    rk = bpf_map_lookup_elem(&nat_reply6, &k);
    if (!rk) return count(C_MISS_NO_FLOW);
    f = bpf_map_lookup_elem(&flows6, rk);
    if (!f || f->method != METHOD_NAT) return count(C_MISS_NO_FLOW);
    reply = 1;
  }
  if (!f->armed[reply] && !unarmed(skb, f, bpf_map_lookup_elem(&arm6, reply ? rk : &k), reply)) return TC_ACT_OK;
  if (hops <= 1) return count(C_MISS_TTL);
  if (!reply && f->method != METHOD_DR && f->method != METHOD_NAT && f->method != METHOD_TUN)
    return count(C_MISS_METHOD);
  __u32 rsi = f->rs;
  struct real *rs = bpf_map_lookup_elem(&reals, &rsi);
  if (!rs || !rs->enabled) return count(C_MISS_RS_DISABLED);
  if (f->method == METHOD_TUN) return tun6(skb, rs, f, hops, tclass, tot, hdrs);

  int r;
  if (f->method == METHOD_DR) {
    r = redirect_to(skb, rs->ifindex, AF_INET6, rs->nh);
    if (r < 0) return count(-r);
    if (dec_hops6(skb, hops)) return count(C_MISS_REWRITE); /* not reached: the header is linear */
    account(skb, hdrs, &f->packets, &f->bytes, 0);
    f->last_seen = bpf_ktime_get_ns();
    count(C_HIT_DR);
    return r;
  }

  const __u32 l4csum_off = l4 + (proto == IPPROTO_TCP ? offsetof(struct tcphdr, check) : offsetof(struct udphdr, check));
  const __u64 l4flags = proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0;
  __u32 old_addr[4], new_addr[4], dst[4];
  __u16 op, np;
  __u32 addr_off, port_off;
  if (!reply) {
    __builtin_memcpy(old_addr, k.daddr, 16);
    __builtin_memcpy(new_addr, f->nat_addr, 16);
    __builtin_memcpy(dst, f->nat_addr, 16);
    op = k.dport;
    np = f->nat_port;
    addr_off = l3 + offsetof(struct ipv6hdr, daddr);
    port_off = l4 + 2;
  } else {
    __builtin_memcpy(old_addr, k.saddr, 16);
    __builtin_memcpy(new_addr, rk->daddr, 16);
    __builtin_memcpy(dst, k.daddr, 16);
    op = k.sport;
    np = rk->dport;
    addr_off = l3 + offsetof(struct ipv6hdr, saddr);
    port_off = l4;
  }
  __u32 ifindex = reply ? f->reply_ifindex : rs->ifindex;
  struct bpf_fib_lookup fib = {};
  struct bpf_redir_neigh nh = {.nh_family = AF_INET6};
  if (ifindex == 0 || reply) {
    fib.family = AF_INET6;
    fib.ifindex = skb->ingress_ifindex;
    fib.tot_len = 0; /* no MTU check here (a GRO/GSO skb is larger than the MTU): bpf_check_mtu below */
    __builtin_memcpy(fib.ipv6_dst, dst, 16);
    if (fib_nexthop(skb, &fib)) {
      if (ifindex == 0) return count(C_MISS_FIB);
      __builtin_memcpy(nh.ipv6_nh, dst, 16);
    } else {
      if (ifindex == 0) ifindex = fib.ifindex;
      __builtin_memcpy(nh.ipv6_nh, fib.ipv6_dst, 16);
    }
  } else if (rs->nh[0] | rs->nh[1] | rs->nh[2] | rs->nh[3]) {
    __builtin_memcpy(nh.ipv6_nh, rs->nh, 16);
  } else {
    __builtin_memcpy(nh.ipv6_nh, dst, 16);
  }
  __u32 mtu = 0;
  if (bpf_check_mtu(skb, ifindex, &mtu, 0, 0)) return count(C_MISS_MTU);

  /* the pseudo-header's address changes by (new - old): one folded difference for the 16 bytes */
  __s64 diff = bpf_csum_diff(old_addr, 16, new_addr, 16, 0);
  if (diff < 0) return count(C_MISS_REWRITE);
  if (bpf_l4_csum_replace(skb, l4csum_off, 0, (__u32)diff, l4flags | BPF_F_PSEUDO_HDR) ||
      bpf_l4_csum_replace(skb, l4csum_off, op, np, l4flags | 2) ||
      bpf_skb_store_bytes(skb, addr_off, new_addr, 16, 0) || bpf_skb_store_bytes(skb, port_off, &np, 2, 0) ||
      dec_hops6(skb, hops))
    return count(C_MISS_REWRITE);

  if (reply)
    account(skb, hdrs, &f->reply_packets, &f->reply_bytes, 0);
  else
    account(skb, hdrs, &f->packets, &f->bytes, 0);
  f->last_seen = bpf_ktime_get_ns();
  count(reply ? C_HIT_NAT_REPLY : C_HIT_NAT);
  return bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
}

SEC("tc")
int tierlb_fastpath(struct __sk_buff *skb) {
  if (skb->protocol == bpf_htons(ETH_P_IP)) return ipv4(skb);
  if (skb->protocol == bpf_htons(ETH_P_IPV6)) return ipv6(skb);
  return count(C_NOT_IP);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
