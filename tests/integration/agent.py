"""What the integration tests run inside a namespace: servers, clients, captures.

Invoked as ``ip netns exec NS python agent.py COMMAND ...``; clients print one
JSON object on stdout, servers print ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.parse
from typing import Any


def _ready() -> None:
    print("ready", flush=True)


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _note_peer(path: str, peer: Any) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{peer[0]}\n")


def _echo_forever(server: socket.socket, greeting: bytes = b"", peers: str = "") -> None:
    """Accept for ever; each connection gets ``greeting``, then its own bytes back and
    the client's EOF passed back; ``peers`` (a file) records who connected."""
    server.listen(128)
    _ready()

    def echo(conn: socket.socket) -> None:
        with conn:
            try:
                if greeting:
                    conn.sendall(greeting)
                while data := conn.recv(65536):
                    conn.sendall(data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    while True:
        conn, peer = server.accept()
        if peers:
            _note_peer(peers, peer)
        threading.Thread(target=echo, args=(conn,), daemon=True).start()


def tcp_echo(args: argparse.Namespace) -> None:
    server = socket.socket(socket.AF_INET6)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", args.port))
    _echo_forever(server, peers=args.peers)


def tcp_hello(args: argparse.Namespace) -> None:
    """Says its own address on a line, then echoes: a client sees which backend it reached."""
    server = socket.socket(_family(args.host))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.host, args.port))
    _echo_forever(server, greeting=f"{args.host}\n".encode())


def _hello_line(sock: socket.socket) -> str:
    line = b""
    while not line.endswith(b"\n") and (byte := sock.recv(1)):
        line += byte
    return line.decode().strip()


def hello(args: argparse.Namespace) -> dict[str, Any]:
    """Which backend a connection reaches (its hello line); with ``--hold`` the connection
    then waits for that file to appear and checks that it still echoes."""
    try:
        with socket.create_connection((args.host, args.port), timeout=10) as sock:
            first = _hello_line(sock)
            if not args.hold:
                return {"error": None, "backend": first}
            print(json.dumps({"backend": first}), flush=True)
            while not os.path.exists(args.hold):
                time.sleep(0.05)
            sock.sendall(b"still here")
            got = b""
            while len(got) < 10 and (data := sock.recv(64)):
                got += data
            return {"error": None, "backend": first, "intact": got == b"still here"}
    except OSError as error:
        return {"error": type(error).__name__}


def hellos(args: argparse.Namespace) -> dict[str, Any]:
    """``--count`` connections one after another (each ended both ways before the next),
    from each ``--sources`` address in turn (bound before connecting): which backend each
    source reached last, and how many connections each backend took."""
    sources = args.sources.split(",") if args.sources else [""]
    counts: dict[str, int] = {}
    last: dict[str, str] = {}
    errors = 0
    for number in range(args.count):
        source = sources[number % len(sources)]
        try:
            with socket.socket(_family(args.host)) as sock:
                sock.settimeout(10)
                if source:
                    sock.bind((source, 0))
                sock.connect((args.host, args.port))
                backend = _hello_line(sock)
                # Ended both ways before the next: the forwarder has let this one go
                # (its member's count of open connections) when the end reaches us.
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):
                    pass
        except OSError:
            errors += 1
            continue
        counts[backend] = counts.get(backend, 0) + 1
        last[source] = backend
    return {"counts": counts, "last": last, "errors": errors}


def udp_echo(args: argparse.Namespace) -> None:
    server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    server.bind(("::", args.port))
    _ready()
    while True:
        data, peer = server.recvfrom(1 << 17)
        _note_peer(args.peers, peer)
        server.sendto(data, peer)


def tcp_client(args: argparse.Namespace) -> dict[str, Any]:
    payload = os.urandom(args.size)
    received = bytearray()
    try:
        with socket.create_connection((args.host, args.port), timeout=args.timeout) as sock:
            sender = threading.Thread(
                target=lambda: (sock.sendall(payload), sock.shutdown(socket.SHUT_WR)),
                daemon=True,
            )
            sender.start()
            while data := sock.recv(1 << 20):
                received += data
            sender.join()
    except OSError as error:
        return {"error": type(error).__name__, "bytes": len(received)}
    return {
        "error": None,
        "bytes": len(received),
        "intact": hashlib.sha256(received).digest() == hashlib.sha256(payload).digest(),
    }


def echo_client(args: argparse.Namespace) -> dict[str, Any]:
    """Send, read the same number of bytes back, then close (no half-close: 0.73 has none)."""
    payload = os.urandom(args.size)
    received = bytearray()
    try:
        with socket.create_connection((args.host, args.port), timeout=10) as sock:
            sock.sendall(payload)
            while len(received) < len(payload) and (data := sock.recv(1 << 20)):
                received += data
    except OSError as error:
        return {"error": type(error).__name__, "bytes": len(received)}
    return {"error": None, "bytes": len(received), "intact": bytes(received) == payload}


def stream(args: argparse.Namespace) -> dict[str, Any]:
    """One connection kept busy for ``seconds``: every chunk must come back intact."""
    chunks, deadline = 0, time.monotonic() + args.seconds
    try:
        with socket.create_connection((args.host, args.port), timeout=10) as sock:
            while time.monotonic() < deadline and chunks < 100_000:
                chunk = os.urandom(4096)
                sock.sendall(chunk)
                got = bytearray()
                while len(got) < len(chunk) and (data := sock.recv(8192)):
                    got += data
                if bytes(got) != chunk:
                    return {"error": "corrupt", "chunks": chunks}
                chunks += 1
    except OSError as error:
        return {"error": type(error).__name__, "chunks": chunks}
    return {"error": None, "chunks": chunks}


def probe(args: argparse.Namespace) -> dict[str, Any]:
    """New connections, one after another, for ``seconds``: how many were refused."""
    tries = refused = 0
    deadline = time.monotonic() + args.seconds
    while time.monotonic() < deadline and tries < 10_000:
        tries += 1
        try:
            with socket.create_connection((args.host, args.port), timeout=5) as sock:
                sock.sendall(b"p")
                sock.recv(1)
        except ConnectionRefusedError:
            refused += 1
        except OSError:
            pass
        time.sleep(0.01)
    return {"tries": tries, "refused": refused}


def udp_client(args: argparse.Namespace) -> dict[str, Any]:
    payload = os.urandom(args.size)
    with socket.socket(_family(args.host), socket.SOCK_DGRAM) as sock:
        sock.settimeout(3)
        sock.sendto(payload, (args.host, args.port))
        try:
            data, _peer = sock.recvfrom(1 << 17)
        except OSError as error:
            return {"error": type(error).__name__, "bytes": 0}
    return {"error": None, "bytes": len(data), "intact": data == payload}


def http_get(args: argparse.Namespace) -> dict[str, Any]:
    """An HTTP/1.0 GET that reads on to the server's EOF before it closes.

    So the server always closes first, and a forwarder always logs the same
    word; a client that closes once it has Content-Length bytes races the
    server's close (and Debian's 0.73 sometimes never logs such a connection).
    """
    url = urllib.parse.urlsplit(args.url)
    request = f"GET {url.path or '/'} HTTP/1.0\r\nHost: {url.netloc}\r\n\r\n".encode()
    answer = b""
    try:
        with socket.create_connection((url.hostname, url.port or 80), timeout=10) as sock:
            sock.sendall(request)
            while chunk := sock.recv(1 << 16):
                answer += chunk
    except OSError as error:
        return {"error": type(error).__name__, "bytes": 0}
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head:
        return {"error": "RemoteDisconnected", "bytes": 0}
    return {"error": None, "status": int(head.split()[1]), "bytes": len(body)}


def http_body(args: argparse.Namespace) -> dict[str, Any]:
    """An HTTP/1.0 GET to ``host:port``; the status, the body, and the client's own port."""
    family = _family(args.host)
    answer, port = b"", 0
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect((args.host, args.port))
            port = sock.getsockname()[1]
            sock.sendall(b"GET / HTTP/1.0\r\nHost: backend\r\n\r\n")
            while chunk := sock.recv(1 << 16):
                answer += chunk
    except OSError as error:
        return {"error": type(error).__name__, "port": port}
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head:
        return {"error": "RemoteDisconnected", "port": port}
    status = int(head.split()[1])
    return {"error": None, "status": status, "body": body.decode(errors="replace"), "port": port}


def capture(args: argparse.Namespace) -> None:
    """Record every TCP/UDP packet to or from ``port`` on ``iface`` until stopped."""
    from scapy.all import IP, TCP, UDP, AsyncSniffer, IPv6

    def relevant(packet: Any) -> bool:
        layer = packet.getlayer(TCP) or packet.getlayer(UDP)
        return layer is not None and args.port in (layer.sport, layer.dport)

    sniffer = AsyncSniffer(iface=args.iface, lfilter=relevant, store=True)
    sniffer.start()
    time.sleep(0.5)
    _ready()
    sys.stdin.read()  # until the test closes our stdin
    packets = sniffer.stop() or []
    found = []
    for packet in packets:
        ip = packet.getlayer(IP) or packet.getlayer(IPv6)
        tcp = packet.getlayer(TCP)
        found.append(
            {
                "src": ip.src,
                "dst": ip.dst,
                "flags": str(tcp.flags) if tcp is not None else "udp",
            }
        )
    print(json.dumps(found), flush=True)


def handshake(args: argparse.Namespace) -> dict[str, Any]:
    """A crafted SYN, our own ACK, then what the server sends until it goes quiet."""
    from scapy.all import IP, TCP, AsyncSniffer, conf, send, sr1

    conf.verb = 0
    sport = args.sport
    syn = IP(dst=args.host) / TCP(sport=sport, dport=args.port, flags="S", seq=1000)
    synack = sr1(syn, timeout=3)
    if synack is None or not synack.haslayer(TCP):
        return {"flags": []}
    seen = [str(synack[TCP].flags)]
    ack = IP(dst=args.host) / TCP(
        sport=sport, dport=args.port, flags="A", seq=1001, ack=synack[TCP].seq + 1
    )
    sniffer = AsyncSniffer(
        lfilter=lambda p: p.haslayer(TCP) and p[TCP].sport == args.port, store=True
    )
    sniffer.start()
    time.sleep(0.3)
    started = time.monotonic()
    send(ack)
    time.sleep(args.wait)
    packets = sniffer.stop() or []
    seen += [str(p[TCP].flags) for p in packets]
    return {"flags": seen, "seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("tcp-echo", "udp-echo"):
        command = sub.add_parser(name)
        command.add_argument("--port", type=int, required=True)
        command.add_argument("--peers", required=True)
    for name in ("tcp-client", "udp-client", "echo-client", "stream", "probe"):
        command = sub.add_parser(name)
        command.add_argument("--host", required=True)
        command.add_argument("--port", type=int, required=True)
        command.add_argument("--size", type=int, default=1000)
        command.add_argument("--seconds", type=float, default=3.0)
        command.add_argument("--timeout", type=float, default=10.0)
    command = sub.add_parser("http-get")
    command.add_argument("--url", required=True)
    addressed = {name: sub.add_parser(name) for name in ("tcp-hello", "hello", "http-body")}
    for command in addressed.values():
        command.add_argument("--host", required=True)
        command.add_argument("--port", type=int, required=True)
    addressed["hello"].add_argument("--hold", default="")
    command = sub.add_parser("hellos")
    command.add_argument("--host", required=True)
    command.add_argument("--port", type=int, required=True)
    command.add_argument("--count", type=int, required=True)
    command.add_argument("--sources", default="")
    command = sub.add_parser("capture")
    command.add_argument("--iface", required=True)
    command.add_argument("--port", type=int, required=True)
    command = sub.add_parser("handshake")
    command.add_argument("--host", required=True)
    command.add_argument("--port", type=int, required=True)
    command.add_argument("--sport", type=int, default=40404)
    command.add_argument("--wait", type=float, default=1.5)
    args = parser.parse_args()
    servers = {
        "tcp-echo": tcp_echo,
        "udp-echo": udp_echo,
        "capture": capture,
        "tcp-hello": tcp_hello,
    }
    clients = {
        "tcp-client": tcp_client,
        "udp-client": udp_client,
        "echo-client": echo_client,
        "stream": stream,
        "probe": probe,
        "http-get": http_get,
        "http-body": http_body,
        "hello": hello,
        "hellos": hellos,
        "handshake": handshake,
    }
    if args.command in servers:
        servers[args.command](args)
    else:
        print(json.dumps(clients[args.command](args)), flush=True)


if __name__ == "__main__":
    main()
