"""Test support, imported as ``support.<module>`` (pytest puts ``tests/`` on
``sys.path``: ``pythonpath`` in pyproject.toml).

- ``servers``: the HTTP(S) test server (``HTTPSServers``: one per kind of
  certificate) and raw TCP servers on 127.0.0.1
- ``clients``: the types of the client fixtures (``Fetch``, ``MakeClient``)
- ``certs``: the throw-away PKI (test CA, server, client, wrong-host,
  self-signed, expired and any-SAN certificates)
- ``nginx``: a private nginx (h2c, TLS + ALPN h2, HTTP/1.1) and the runner
  the benchmarks' nginx uses too
- ``ports``: free loopback ports, waiting for a listener
- ``fds``: this process's open file descriptors, baselines
- ``refusals``: checking that refused input sent nothing (tests/input)
- ``rawhttp``: hand-written HTTP/1.1 and HTTP/2 servers that record every
  request and reset connections on purpose
- ``netns``, ``nsservers``, ``h1server``: the network-fault rig (a server
  host in its own network namespace) and the servers run inside it
- ``leak_scenario``: the script run under valgrind by the leak test
- ``proxies``: an HTTP forward proxy (relay + CONNECT, Basic auth) and a
  SOCKS5 server, both reaching loopback targets only
- ``transport_servers``: HTTP on a Unix socket, slow/stalled bodies, a port
  whose connect() hangs, and the HTTP server with per-connection accounting
- ``bodyservers``: bodies larger than memory: pattern responses generated
  block by block (reset or paused on demand) and a sink hashing uploads
- ``sockserve``, ``conncount``: their accept loop, HTTP/1.1 reader, tunnel
  pump and connection accounting
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
