// SPDX-License-Identifier: MIT
/*
 * tierlb TCP-mode splice: an sk_skb verdict program that moves the bytes of an established client/server socket pair
 * in the kernel. Each byte a spliced socket receives is redirected to the egress of its peer socket
 * (bpf_sk_redirect_hash), and counted in the socket's `pairs` entry, which the proxy reads for its timeouts and stats.
 *
 * Two socket hashes, both keyed by socket cookie (SO_COOKIE):
 *   targets  every spliced socket, as a redirect target; no program is attached to it, so a socket in it receives as
 *            before (its bytes go to recv()).
 *   sources  the sockets whose received bytes the program redirects; the program is attached to this map.
 * The proxy inserts a pair in this order: both sockets into targets, both `pairs` entries, then each socket into
 * sources. So when the program first runs for a socket its peer is already a target and its entry is there: no byte
 * is ever passed up to recv() while its successors are redirected (which would reorder them). See
 * src/listeners/splice/splice.ts and DEVELOPERS.md for what the kernel does with bytes queued before the insertion.
 *
 * Nothing is pinned: the maps and the program live as long as the worker's file descriptors, and the kernel removes a
 * closed socket from both hashes by itself.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define MAX_SOCKS 65536

/* per-CPU counters, indexes mirrored in splice.ts (COUNTER_NAMES) */
enum {
  C_REDIRECTED,
  C_NO_PAIR,
  C_NO_PEER,
  C_FIN,
  C_MAX,
};

struct pair {
  __u64 peer;  /* the peer socket's cookie */
  __u64 bytes; /* bytes this socket received and the program redirected to the peer */
  __u64 skbs;  /* how many skbs that was */
};

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, MAX_SOCKS);
  __type(key, __u64);
  __type(value, __u64);
} targets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_SOCKHASH);
  __uint(max_entries, MAX_SOCKS);
  __type(key, __u64);
  __type(value, __u64);
} sources SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, MAX_SOCKS);
  __type(key, __u64);
  __type(value, struct pair);
} pairs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, C_MAX);
  __type(key, __u32);
  __type(value, __u64);
} counters SEC(".maps");

static __always_inline void count(__u32 i) {
  __u64 *c = bpf_map_lookup_elem(&counters, &i);
  if (c)
    *c += 1;
}

SEC("sk_skb")
int tierlb_splice(struct __sk_buff *skb) {
  if (skb->len == 0) {
    /* the empty skb that carries a FIN: the proxy sees the FIN (recv() returns 0) and forwards it with shutdown()
     * once the bytes before it are sent. Redirected, the kernel would send it as 0 bytes, take that for a broken
     * pipe and set EPIPE on the peer socket (sk_psock_backlog). */
    count(C_FIN);
    return SK_DROP;
  }
  __u64 cookie = bpf_get_socket_cookie(skb);
  struct pair *p = bpf_map_lookup_elem(&pairs, &cookie);
  if (!p) {
    /* not inserted by the proxy's order (cannot happen): up to recv(), counted */
    count(C_NO_PAIR);
    return SK_PASS;
  }
  __u64 peer = p->peer;
  long verdict = bpf_sk_redirect_hash(skb, &targets, &peer, 0);
  if (verdict != SK_PASS) {
    /* the peer is gone (closed: the kernel removed it); its bytes have nowhere to go */
    count(C_NO_PEER);
    return SK_DROP;
  }
  __sync_fetch_and_add(&p->bytes, skb->len);
  __sync_fetch_and_add(&p->skbs, 1);
  count(C_REDIRECTED);
  return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
