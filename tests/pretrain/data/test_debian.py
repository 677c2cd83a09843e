"""Fetching Debian data packages without root."""

import shutil

import pytest

from pretrain.data.debian import download_package, fetch_package


@pytest.mark.skipif(shutil.which("apt-get") is None, reason="needs apt-get (Debian)")
def test_an_unknown_package_is_an_error_naming_the_command_and_the_hint(tmp_path):
    with pytest.raises(RuntimeError, match=r"(?s)`apt-get download no-such-package-attmask` failed.*get it by hand"):
        download_package("no-such-package-attmask", tmp_path / "cache", hint="get it by hand")
    assert not list((tmp_path / "cache").rglob("*.deb"))


def test_a_folder_already_extracted_is_used_without_downloading(tmp_path):
    inner = "usr/share/doc/some-package/examples"
    (tmp_path / inner).mkdir(parents=True)
    assert fetch_package("some-package-that-does-not-exist", inner, tmp_path) == (tmp_path / inner).resolve()
