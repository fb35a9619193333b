"""Test support: the network-fault rig (server hosts in network namespaces)
and the servers that run inside them."""
