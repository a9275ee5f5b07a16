"""Which etcd runs: the pin and its checksum table, resolution and the version probe, the cache,
download and install, and the known defects of each release.

Imports only ``etcd_env._common`` (and the top's ``_version``), never the process floor or a face.
"""
