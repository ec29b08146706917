"""Print a free TCP port on 127.0.0.1 (bench/run binds each server to one)."""
import socket

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
