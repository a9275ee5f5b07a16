import etcd


def test_etcd_answers(etcd_client: etcd.Client) -> None:
    etcd_client.write("/greeting", "hello")
    assert etcd_client.read("/greeting").value == "hello"
