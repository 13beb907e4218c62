"""A ZeroMQ PAIR peer that switchboard did not write, for tests/zmq_interop.rs (pyzmq).

Usage: zmq_peer.py bind|connect ENDPOINT SIZES

Binds (printing "ENDPOINT <resolved endpoint>") or connects a PAIR socket, then:
1. echoes every message back unchanged until it receives b"switch";
2. sends one message of each size in SIZES (comma-separated bytes), byte i being
   (i * 31 + size) % 251, then b"sent";
3. waits for b"bye", closes with linger and exits 0.
Anything unexpected exits non-zero with a message on stderr.
"""

import sys

import zmq


def pattern(size: int) -> bytes:
    # (i * 31 + size) % 251 repeats every 251 bytes: build one period, not 3 million bytes
    # one by one in Python (seconds of CPU that would starve the peers' I/O threads).
    period = bytes((i * 31 + size) % 251 for i in range(251))
    return (period * (size // 251 + 1))[:size]


def main() -> int:
    mode, endpoint, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
    context = zmq.Context()
    socket = context.socket(zmq.PAIR)
    socket.setsockopt(zmq.LINGER, 5000)
    if mode == "bind":
        socket.bind(endpoint)
        print("ENDPOINT", socket.getsockopt_string(zmq.LAST_ENDPOINT).rstrip("\0"), flush=True)
    else:
        socket.connect(endpoint)

    echoed = 0
    while True:
        msg = socket.recv()
        if msg == b"switch":
            break
        socket.send(msg)
        echoed += 1

    for size in sizes:
        socket.send(pattern(size))
    socket.send(b"sent")

    msg = socket.recv()
    if msg != b"bye":
        print(f"zmq_peer.py: expected b'bye', got {len(msg)} bytes", file=sys.stderr)
        return 1
    socket.close()
    context.term()
    print(f"ECHOED {echoed}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
