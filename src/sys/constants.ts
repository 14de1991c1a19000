/**
 * The Linux kernel's numbers (x86-64 / aarch64 ABI), defined once: address families, socket types and levels,
 * protocol numbers, socket options, ethertypes, flags and the errno values the code tests for. Plain numbers, no
 * binding: the pure modules (the connection table, ipvsadm's parser, packet codecs) import them too.
 */

// address families (linux/socket.h)
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const AF_PACKET = 17;

// socket types and socket() flags
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;

// IP protocol numbers (netinet/in.h)
export const IPPROTO_IP = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_RAW = 255;

// socket option levels
export const SOL_SOCKET = 1;
export const SOL_NETLINK = 270;

// SOL_SOCKET options (asm-generic/socket.h)
export const SO_RCVBUF = 8;
export const SO_RCVTIMEO = 20;
export const SO_BINDTODEVICE = 25;
export const SO_SNDBUFFORCE = 32;
export const SO_RCVBUFFORCE = 33;
export const SO_MARK = 36;
export const SO_RCVLOWAT = 18;
export const SO_COOKIE = 57;

// socket ioctls (linux/sockios.h): bytes in a TCP socket's receive queue (unread) and send queue (unacked + unsent)
export const SIOCINQ = 0x541b;
export const SIOCOUTQ = 0x5411;

// IPPROTO_IP options (linux/in.h)
export const IP_HDRINCL = 3;
export const IP_MULTICAST_IF = 32;
export const IP_MULTICAST_TTL = 33;
export const IP_MULTICAST_LOOP = 34;
export const IP_ADD_MEMBERSHIP = 35;
export const IP_DROP_MEMBERSHIP = 36;

// IPPROTO_IPV6 options (linux/in6.h)
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MULTICAST_IF = 17;
export const IPV6_MULTICAST_HOPS = 18;
export const IPV6_MULTICAST_LOOP = 19;
export const IPV6_ADD_MEMBERSHIP = 20;
export const IPV6_DROP_MEMBERSHIP = 21;
export const IPV6_RECVPKTINFO = 49;
export const IPV6_PKTINFO = 50;
export const IPV6_RECVHOPLIMIT = 51;
export const IPV6_HOPLIMIT = 52;
export const IPV6_TCLASS = 67;

// SOL_NETLINK options
export const NETLINK_NO_ENOBUFS = 5;

// send/recv flags
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const MSG_WAITFORONE = 0x10000;

// ethertypes (linux/if_ether.h)
export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;

// mmap (asm-generic/mman-common.h)
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;

// the errno values callers test for (asm-generic/errno-base.h, errno.h)
export const EINTR = 4;
export const EAGAIN = 11;
export const ENOBUFS = 105;
/** fcntl(2): duplicate a descriptor, close-on-exec */
export const F_DUPFD_CLOEXEC = 1030;
