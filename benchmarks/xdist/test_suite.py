import pytest


@pytest.mark.parametrize("i", range(200))
def test_keys(i, etcd_namespace, etcd_client):
    for k in range(10):
        etcd_client.write(etcd_namespace.key(f"k{k}"), str(i))
    assert etcd_client.read(etcd_namespace.key("k0")).value == str(i)
