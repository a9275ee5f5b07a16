"""What every floor of etcd_env stands on: its errors, its settings' names, private directories, locks.

Imports nothing else of etcd_env (the top's ``_version`` is the one constant any floor may read).
"""
