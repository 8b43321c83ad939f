#!/usr/bin/env python3
"""The kernel's floor under the idle figure (docs/benchmarks.md, "Idle CPU: the kernel's floor").

An idle server with N connections sends each a server_stats frame every 10 s and a ping every
30 s, and reads the pongs. This script makes exactly those socket writes and reads over N
loopback TCP connections, with no WebSocket, TLS or JSON work at all, and reports the system CPU
of the sending process: what the kernel alone charges for the idle load on this machine. A
receiver process (not measured) reads everything and answers each ping with a pong.

  python3 bench/idle_floor.py                    # pings on the stats beat, as the server sends
  python3 bench/idle_floor.py --pings grain      # pings spread on a 250 ms grid instead
  python3 bench/idle_floor.py --pings same-write # a ping in the same write as the stats frame
"""
import argparse
import os
import resource
import selectors
import socket
import time

PING = b"\x89\x04ping"
PONG = b"\x8a\x04pong"


def receiver(listener, quit_fd):
    """Reads every connection; answers pings. Runs in the forked child until quit_fd is readable."""
    sel = selectors.DefaultSelector()
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(quit_fd, selectors.EVENT_READ, "quit")
    while True:
        for key, _ in sel.select():
            if key.data == "quit":
                os._exit(0)
            if key.data == "accept":
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, "conn")
                continue
            try:
                data = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                key.fileobj.close()
            elif PING in data:
                key.fileobj.send(PONG)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--stats-interval", type=float, default=10)
    p.add_argument("--ping-interval", type=float, default=30)
    p.add_argument("--stats-bytes", type=int, default=330, help="a server_stats frame's payload")
    p.add_argument("--pings", choices=["beat", "grain", "same-write"], default="beat")
    a = p.parse_args()

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    quit_r, quit_w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(quit_w)
        receiver(listener, quit_r)
    os.close(quit_r)

    socks = [socket.create_connection(listener.getsockname()) for _ in range(a.connections)]
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    time.sleep(2)  # the receiver has accepted them all

    stats = b"\x81\x7e" + a.stats_bytes.to_bytes(2, "big") + b"x" * a.stats_bytes
    ticks_per_ping = max(1, round(a.ping_interval / a.stats_interval))
    grain = 0.25
    sent = 0
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_SELF)
    next_tick, tick = start, 0
    next_ping, ping_index = start, 0
    while True:
        now = time.monotonic()
        if now - start >= a.seconds:
            break
        if next_tick <= now:  # the stats tick: every connection at once
            for k, s in enumerate(socks):
                ping_due = a.pings != "grain" and (tick + k) % ticks_per_ping == 0
                if ping_due and a.pings == "same-write":
                    s.send(stats + PING)
                else:
                    s.send(stats)
                    if ping_due:
                        s.send(PING)
                sent += 1 + ping_due
            tick += 1
            next_tick += a.stats_interval
        if a.pings == "grain":  # the pings due within the next grain step, together
            while next_ping <= now + grain:
                socks[ping_index % a.connections].send(PING)
                ping_index += 1
                sent += 1
                next_ping += a.ping_interval / a.connections
        wake = next_tick if a.pings != "grain" else min(next_tick, next_ping)
        for key, _ in sel.select(timeout=max(0.0, wake - time.monotonic())):
            try:
                key.fileobj.recv(4096)  # the pongs
            except BlockingIOError:
                pass
    after = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.monotonic() - start
    print(f"{a.connections} connections, {elapsed:.0f} s, pings {a.pings}: {sent / elapsed:.0f} frames/s; "
          f"sender's system CPU {100 * (after.ru_stime - before.ru_stime) / elapsed:.2f} % of a core "
          f"(its user CPU, the Python loop, {100 * (after.ru_utime - before.ru_utime) / elapsed:.2f} %)")
    os.close(quit_w)
    os.waitpid(child, 0)


if __name__ == "__main__":
    main()
