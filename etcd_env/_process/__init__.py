"""One etcd process, kept safe: its command line, spawning, ports, private TLS material, readiness
and status, the on-disk registry of running servers, and the watchdog that cleans up after a
dead owner.

Imports only ``etcd_env._common``: it runs an etcd already chosen (``command.Executable``) and
never decides which one, and it knows nothing of the faces above it.
"""
