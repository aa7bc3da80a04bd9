#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_net_frame (tests/fuzz/corpus/fuzz_net_frame/):
frames as a guest sends them (ARP, ICMP echo, TCP SYN, UDP DNS query), hostile ones
(bad header lengths, fragments, DNS compression loops) and a TLS ClientHello.
Each input is a sequence of [2-byte big-endian length][Ethernet frame]. DNS over TCP
sessions complete their handshake: the stack's initial sequence number is fixed per
input (FUZZ_ISS_SEED in fuzz_net_frame.c), computed here as the stack does.
Run: /usr/bin/python3 tests/fuzz/make_net_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "fuzz_net_frame")
GW_MAC = bytes([0x52, 0x54, 0, 0xC0, 0xC0, 0x02])
GUEST_MAC = bytes([0x52, 0x54, 0, 0xC0, 0xC0, 0x0F])
GUEST, GW, DNS = bytes([10, 0, 2, 15]), bytes([10, 0, 2, 2]), bytes([10, 0, 2, 3])


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ip(proto, src, dst, payload, frag=0x4000, ihl=5):
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(payload), 1, frag, 64, proto, 0, src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def eth(payload, etype=0x0800, dst=GW_MAC):
    return dst + GUEST_MAC + struct.pack("!H", etype) + payload


def l4sum(proto, src, dst, seg):
    return csum(src + dst + struct.pack("!BBH", 0, proto, len(seg)) + seg)


def tcp(src, dst, sport, dport, seq, ack, flags, data=b"", opts=b""):
    off = (20 + len(opts)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, 65535, 0, 0) + opts + data
    c = l4sum(6, src, dst, seg)
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp(src, dst, sport, dport, data):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    c = l4sum(17, src, dst, seg) or 0xFFFF
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def qname(name):
    return b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"


def dns_query(name, qid=0x1234):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + qname(name) + struct.pack("!HH", 1, 1)


def dns_query_edns(name, size, qid=0x1235):
    """A query with an EDNS0 OPT record advertising a UDP payload size."""
    opt = b"\0" + struct.pack("!HHIH", 41, size, 0, 0)
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1) + qname(name) + struct.pack("!HH", 1, 1) + opt


def dns_big_answer(name, n, qid=0x1234):
    """An answer with n A records: over 512 bytes for n >= 31 (the TC path)."""
    rr = b"".join(b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([93, 184, 217, i & 255]) for i in range(n))
    return struct.pack("!HHHHHH", qid, 0x8180, 1, n, 0, 0) + qname(name) + struct.pack("!HH", 1, 1) + rr


def rr(owner, rtype, rdata, ttl=300):
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


def answer(name, an=(), ns=(), ar=(), qid=0x1234, flags=0x81A0):
    """A response to "name" A IN with the given records (bytes each) per section."""
    hdr = struct.pack("!HHHHHH", qid, flags, 1, len(an), len(ns), len(ar))
    return hdr + qname(name) + struct.pack("!HH", 1, 1) + b"".join(an) + b"".join(ns) + b"".join(ar)


QP = b"\xc0\x0c"  # a pointer to the question's name


def a_rr(ip, owner=QP):
    return rr(owner, 1, bytes(ip))


def https_rr(params, target=b"\0"):
    return rr(QP, 65, struct.pack("!H", 1) + target + params)


def svc_param(key, value):
    return struct.pack("!HH", key, len(value)) + value


def icmp_echo(data=b"ping"):
    h = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + data
    return h[:2] + struct.pack("!H", csum(h)) + h[4:]


def client_hello(sni):
    name = sni.encode()
    ext_sni = struct.pack("!HHHBH", 0, len(name) + 5, len(name) + 3, 0, len(name)) + name
    body = b"\x03\x03" + b"\x11" * 32 + b"\x00" + struct.pack("!H", 2) + b"\x13\x01" + b"\x01\x00"
    body += struct.pack("!H", len(ext_sni)) + ext_sni
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def stream(*frames):
    return b"".join(struct.pack("!H", len(f)) + f for f in frames)


def arp_request(target):
    a = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + GUEST_MAC + GUEST + b"\0" * 6 + target
    return eth(a, 0x0806, b"\xff" * 6)


MSS = b"\x02\x04\x05\xb4\x01\x03\x03\x07"
FUZZ_ISS_SEED = 0x9E3779B97F4A7C15
M64 = (1 << 64) - 1


def first_iss():
    """The stack's first initial sequence number of an input (net_random)."""
    x = FUZZ_ISS_SEED
    x ^= (x << 13) & M64
    x ^= x >> 7
    x ^= (x << 17) & M64
    return (x >> 16) & 0xFFFFFFFF


ISS = first_iss()


def framed(msg, length=None):
    """A DNS message with its DNS-over-TCP length prefix (a lying one when given)."""
    return struct.pack("!H", len(msg) if length is None else length) + msg


def dns_tcp(sport, *segments, fin=False):
    """A DNS-over-TCP session to the resolver address: the handshake, then each
    segment's bytes in order (ACKing the stack's SYN), then a FIN when asked."""
    frames = [eth(ip(6, GUEST, DNS, tcp(GUEST, DNS, sport, 53, 1000, 0, 2, opts=MSS)))]
    seq = 1001
    frames.append(eth(ip(6, GUEST, DNS, tcp(GUEST, DNS, sport, 53, seq, ISS + 1, 0x10))))
    for data in segments:
        frames.append(eth(ip(6, GUEST, DNS, tcp(GUEST, DNS, sport, 53, seq, ISS + 1, 0x18, data))))
        seq += len(data)
    if fin:
        frames.append(eth(ip(6, GUEST, DNS, tcp(GUEST, DNS, sport, 53, seq, ISS + 1, 0x11))))
    return stream(*frames)
loop = struct.pack("!HHHHHH", 1, 0x8180, 1, 1, 0, 0) + b"\xc0\x0c" + struct.pack("!HH", 1, 1)
FRAG_SEG = udp(GUEST, DNS, 7, 53, dns_query("frag.example"))
seeds = {
    "arp": stream(arp_request(GW), arp_request(DNS)),
    "icmp_gateway": stream(eth(ip(1, GUEST, GW, icmp_echo()))),
    "icmp_denied": stream(eth(ip(1, GUEST, bytes([8, 8, 8, 8]), icmp_echo()))),
    "tcp_syn_denied": stream(eth(ip(6, GUEST, bytes([1, 2, 3, 4]), tcp(GUEST, bytes([1, 2, 3, 4]), 40000, 80, 1, 0, 2, opts=MSS)))),
    "tcp_syn_host": stream(eth(ip(6, GUEST, GW, tcp(GUEST, GW, 40001, 9, 1, 0, 2, opts=MSS)))),
    "tcp_stray_ack": stream(eth(ip(6, GUEST, GW, tcp(GUEST, GW, 40002, 9, 5, 9, 0x10, b"data")))),
    "udp_dns": stream(eth(ip(17, GUEST, DNS, udp(GUEST, DNS, 5353, 53, dns_query("example.com"))))),
    "udp_dns_denied": stream(eth(ip(17, GUEST, DNS, udp(GUEST, DNS, 5354, 53, dns_query("bad.example"))))),
    "udp_dns_host_alias": stream(eth(ip(17, GUEST, DNS, udp(GUEST, DNS, 5355, 53, dns_query("host.cocoon.internal"))))),
    "udp_denied": stream(eth(ip(17, GUEST, bytes([9, 9, 9, 9]), udp(GUEST, bytes([9, 9, 9, 9]), 1, 123, b"ntp")))),
    "ip_fragment": stream(eth(ip(17, GUEST, DNS, udp(GUEST, DNS, 1, 53, b"x"), frag=0x2000))),
    "ip_bad_ihl": stream(eth(ip(17, GUEST, DNS, udp(GUEST, DNS, 1, 53, b"x"), ihl=15))),
    "ipv6": stream(eth(b"\x60" + b"\0" * 39, 0x86DD)),
    "udp_dns_edns": stream(eth(ip(17, GUEST, DNS, udp(GUEST, DNS, 5356, 53, dns_query_edns("big.example", 1232))))),
    "udp_dns_edns_tiny": stream(eth(ip(17, GUEST, DNS, udp(GUEST, DNS, 5357, 53, dns_query_edns("big.example", 100))))),
    "dns_query_edns": dns_query_edns("big.example", 4096),
    "dns_big_answer": dns_big_answer("big.example", 40),
    "icmp_open_dst": stream(eth(ip(1, GUEST, bytes([198, 51, 100, 1]), icmp_echo(b"x" * 64)))),
    "ip_frag_dns": stream(eth(ip(17, GUEST, DNS, FRAG_SEG[:16], frag=0x2000)), eth(ip(17, GUEST, DNS, FRAG_SEG[16:], frag=2))),
    "ip_frag_reversed": stream(eth(ip(17, GUEST, DNS, FRAG_SEG[16:], frag=2)), eth(ip(17, GUEST, DNS, FRAG_SEG[:16], frag=0x2000))),
    "ip_frag_overlap": stream(eth(ip(17, GUEST, DNS, FRAG_SEG[:16], frag=0x2000)), eth(ip(17, GUEST, DNS, FRAG_SEG[8:], frag=1))),
    "ip_frag_past_64k": stream(eth(ip(17, GUEST, DNS, b"y" * 24, frag=0x2000 | 8189))),
    "dns_loop": loop,
    # answers the resolver filters: private addresses deep in a long answer, in the
    # authority section and as glue, as SVCB/HTTPS hints; names to rewrite; junk after
    "dns_private_at_900": answer("deep.example", an=[a_rr([10, 0, 0, 1] if i == 900 else [93, 184, i >> 8, i & 255])
                                                    for i in range(1000)]),
    "dns_private_at_150": answer("deep.example", an=[a_rr([127, 0, 0, 1] if i == 150 else [93, 184, 0, i])
                                                    for i in range(200)]),
    "dns_private_glue": answer("ref.example", an=[a_rr([93, 184, 216, 34])],
                               ns=[rr(QP, 2, b"\3ns1" + QP), a_rr([192, 168, 1, 1]),
                                   rr(QP, 6, b"\3ns1" + QP + b"\4host" + QP + bytes(20))],
                               ar=[a_rr([169, 254, 169, 254], b"\3ns1" + QP), a_rr([93, 184, 216, 35], b"\3ns1" + QP),
                                   rr(b"\3ns1" + QP, 28, b"\xfd" + bytes(15)), rr(b"\0", 41, b"")]),
    "dns_https_hints": answer("svc.example", an=[
        https_rr(svc_param(1, b"\2h2") + svc_param(4, bytes([93, 184, 216, 34]))),
        https_rr(svc_param(4, bytes([93, 184, 216, 34, 10, 1, 2, 3]))),
        https_rr(svc_param(6, bytes(15) + b"\1")),
        https_rr(svc_param(4, bytes([93, 184, 216, 34]))[:-2]),
        https_rr(svc_param(4, bytes([93, 184, 216, 36])), target=b"\3www" + QP)]),
    "dns_names_rewritten": answer("mx.example", an=[a_rr([172, 16, 0, 1]), rr(QP, 15, b"\0\x0a\4mail" + QP),
                                                   rr(QP, 33, bytes(6) + b"\3srv" + QP), rr(QP, 5, b"\5alias" + QP),
                                                   rr(QP, 35, bytes(4) + b"\0\0\0" + QP), rr(QP, 16, b"\5hello")]),
    "dns_trailing_bytes": answer("tail.example", an=[a_rr([93, 184, 216, 34])]) + b"\xc0\x0c\0\1\0\1" + bytes([10, 0, 0, 1]),
    "dns_bad_rdata_names": answer("bad.example", an=[a_rr([10, 9, 9, 9]), rr(QP, 2, b"\xc0\xff"),
                                                    rr(QP, 15, b"\0"), rr(QP, 6, b"\0\0" + bytes(3))]),
    "tls_hello": client_hello("api.example.com"),
    # DNS over TCP into the proxy's framing: pipelined queries (answered here, denied,
    # forwarded), a query cut across segments, lengths that are no DNS, more queries
    # than one stream may have in flight
    "tcp_dns_pipelined": dns_tcp(41000, framed(dns_query("host.cocoon.internal", 1)) + framed(dns_query("bad.example", 2))
                                 + framed(dns_query("example.com", 3)), fin=True),
    "tcp_dns_split": dns_tcp(41001, framed(dns_query("host.cocoon.internal"))[:9],
                             framed(dns_query("host.cocoon.internal"))[9:] + b"\0"),
    "tcp_dns_short_length": dns_tcp(41002, framed(b"\0" * 5)),
    "tcp_dns_long_length": dns_tcp(41003, framed(dns_query("example.com"), 4097)),
    "tcp_dns_not_a_query": dns_tcp(41004, framed(dns_big_answer("big.example", 3))),
    "tcp_dns_over_pending_cap": dns_tcp(41005, b"".join(framed(dns_query("q%d.example" % i, i)) for i in range(20))),
}

if os.path.isdir(OUT):
    shutil.rmtree(OUT)
os.makedirs(OUT)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
print("wrote %d seeds to %s" % (len(seeds), OUT))
