"""The upstream files are present and byte-identical to the pinned commits (else nothing above ran them)."""

from __future__ import annotations

import pytest

from .conftest import torch_etcd_server, upstream_file_status


@pytest.mark.parametrize(
    ("entry", "problem"),
    upstream_file_status(),
    ids=[f"{entry['set']}/{entry['path'].rsplit('/', 1)[-1]}" for entry, _ in upstream_file_status()],
)
def test_upstream_file_is_present_and_unchanged(entry, problem):
    if problem.endswith("is not fetched"):
        pytest.skip(f"{problem}: run `python tests/rendezvous/upstream/fetch.py` (GitHub) or with --from DIR")
    assert problem == "", f"{problem}: the files run verbatim; fetch them again"


def test_torch_is_there_to_run_them():
    if torch_etcd_server() is None:
        pytest.skip("torch is not installed, so PyTorch's own etcd tests cannot run: `nox -s rendezvous_tests`")
