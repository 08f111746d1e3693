#!/usr/bin/env python3
"""Checks what a RabbitMQ user may do, with nothing but the standard library (AMQP 0-9-1 by hand),
so that it runs in any image with python3: scripts/cluster-smoke.sh pipes it into a throwaway
container on the cluster's broker network.

Usage: amqp-probe.py HOST USER PASSWORD EXPECTATION...
Each EXPECTATION is + (allowed) or - (refused) followed by one of:
  login                      connect and open vhost /
  declare:QUEUE              queue.declare (durable, as the api and workers declare job queues
                             with their arguments; a refused declare is refused before that)
  consume:QUEUE              basic.consume
  publish:EXCHANGE:KEY       basic.publish with publisher confirms (EXCHANGE empty: default)
Every operation runs on a channel of its own. Prints one line per expectation and exits 1 when
any does not hold.
"""
import socket
import struct
import sys


class Refused(Exception):
    pass


def shortstr(text):
    data = text.encode()
    return struct.pack("B", len(data)) + data


def longstr(data):
    return struct.pack(">I", len(data)) + data


EMPTY_TABLE = struct.pack(">I", 0)


class Connection:
    def __init__(self, host, user, password):
        self.sock = socket.create_connection((host, 5672), timeout=10)
        self.buffer = b""
        self.channels = 0
        self.sock.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(0, 10, 10)  # connection.start
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        self.send(0, 10, 11, EMPTY_TABLE + shortstr("PLAIN") + longstr(response) + shortstr("en_US"))
        # A refused login: RabbitMQ closes the socket (or sends connection.close).
        args = self.expect(0, 10, 30)  # connection.tune
        channel_max, frame_max, _heartbeat = struct.unpack(">HIH", args[:8])
        self.send(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
        self.send(0, 10, 40, shortstr("/") + shortstr("") + b"\x00")
        self.expect(0, 10, 41)  # connection.open-ok

    def read(self, count):
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Refused("connection closed by the broker")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def method(self):
        while True:
            kind, channel, size = struct.unpack(">BHI", self.read(7))
            payload = self.read(size)
            self.read(1)  # frame end
            if kind == 1:
                class_id, method_id = struct.unpack(">HH", payload[:4])
                return channel, class_id, method_id, payload[4:]

    def expect(self, channel, class_id, method_id):
        got_channel, got_class, got_method, args = self.method()
        if (got_class, got_method) in ((10, 50), (20, 40)):  # connection.close, channel.close
            code = struct.unpack(">H", args[:2])[0]
            text = args[3 : 3 + args[2]].decode(errors="replace")
            raise Refused(f"{code} {text}")
        if (got_channel, got_class, got_method) != (channel, class_id, method_id):
            raise RuntimeError(f"unexpected method {got_class}.{got_method} on channel {got_channel}")
        return args

    def send(self, channel, class_id, method_id, args):
        payload = struct.pack(">HH", class_id, method_id) + args
        self.sock.sendall(struct.pack(">BHI", 1, channel, len(payload)) + payload + b"\xce")

    def open_channel(self):
        self.channels += 1
        self.send(self.channels, 20, 10, shortstr(""))
        self.expect(self.channels, 20, 11)
        return self.channels

    def declare(self, queue):
        channel = self.open_channel()
        # passive=0 durable=1 exclusive=0 auto_delete=0 nowait=0
        self.send(channel, 50, 10, struct.pack(">H", 0) + shortstr(queue) + b"\x02" + EMPTY_TABLE)
        self.expect(channel, 50, 11)

    def consume(self, queue):
        channel = self.open_channel()
        self.send(channel, 60, 20, struct.pack(">H", 0) + shortstr(queue) + shortstr("") + b"\x00" + EMPTY_TABLE)
        self.expect(channel, 60, 21)

    def publish(self, exchange, routing_key):
        channel = self.open_channel()
        self.send(channel, 85, 10, b"\x00")  # confirm.select
        self.expect(channel, 85, 11)
        self.send(channel, 60, 40, struct.pack(">H", 0) + shortstr(exchange) + shortstr(routing_key) + b"\x00")
        body = b"{}"
        header = struct.pack(">HHQH", 60, 0, len(body), 0)
        self.sock.sendall(struct.pack(">BHI", 2, channel, len(header)) + header + b"\xce")
        self.sock.sendall(struct.pack(">BHI", 3, channel, len(body)) + body + b"\xce")
        self.expect(channel, 60, 80)  # basic.ack (or channel.close when refused)


def main():
    host, user, password, *expectations = sys.argv[1:]
    failures = 0
    connection = None
    for expectation in expectations:
        allowed, what = expectation[0] == "+", expectation[1:]
        action, _, target = what.partition(":")
        try:
            if action == "login":
                connection = Connection(host, user, password)
            elif action == "declare":
                connection.declare(target)
            elif action == "consume":
                connection.consume(target)
            elif action == "publish":
                exchange, _, key = target.partition(":")
                connection.publish(exchange, key)
            else:
                raise SystemExit(f"unknown action {action!r}")
            outcome, why = True, "allowed"
        except (Refused, OSError) as error:
            outcome, why = False, f"refused ({error})"
        # Refused must mean refused for want of permission (403 ACCESS_REFUSED), not any error; a
        # refused login is a closed connection.
        ok = outcome if allowed else (not outcome and (action == "login" or "403" in why))
        failures += not ok
        print(f"[amqp-probe] {user}: {what}: {why}{'' if ok else ' -- UNEXPECTED'}")
        if action == "login" and not outcome:
            break
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
