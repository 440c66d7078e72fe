"""The base tree's cache key and the mirror it is built from."""

from __future__ import annotations

from pathlib import Path

from lab.basetree import BASE_PACKAGES, DEFAULT_MIRROR, BaseTreeRecipe, debian_mirror


def test_key_is_stable_and_ignores_package_order() -> None:
    """The same packages in another order give the same key."""
    recipe = BaseTreeRecipe()
    shuffled = BaseTreeRecipe(packages=tuple(reversed(BASE_PACKAGES)))
    assert recipe.key == BaseTreeRecipe().key == shuffled.key


def test_key_changes_with_packages_suite_and_recipe_version() -> None:
    """A changed package list, suite or recipe version gives a new key."""
    keys = {
        BaseTreeRecipe().key,
        BaseTreeRecipe(packages=(*BASE_PACKAGES, "rsync")).key,
        BaseTreeRecipe(suite="trixie").key,
        BaseTreeRecipe(version=BaseTreeRecipe().version + 1).key,
    }
    assert len(keys) == 4


def test_cache_paths_carry_suite_and_key(tmp_path: Path) -> None:
    """The tarball and tree are named by suite and key under basetree/."""
    recipe = BaseTreeRecipe()
    assert recipe.tarball(tmp_path) == tmp_path / "basetree" / f"bookworm-{recipe.key}.tar"
    assert recipe.tree_dir(tmp_path) == tmp_path / "basetree" / f"bookworm-{recipe.key}"


def test_packages_include_what_ansible_and_llama_need() -> None:
    """python3, python3-apt, sshd, systemd and libgomp1 are in the tree."""
    needed = {"python3", "python3-apt", "openssh-server", "systemd-sysv", "libgomp1"}
    assert needed <= set(BASE_PACKAGES)


def test_mirror_is_read_from_deb822_sources(tmp_path: Path) -> None:
    """The mirror is the URI of the stanza that lists the suite."""
    sources = tmp_path / "debian.sources"
    sources.write_text(
        "Types: deb\n# a comment: with a colon\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n",
        encoding="utf-8",
    )
    assert debian_mirror("bookworm", sources) == "http://mirror.example/debian"
    assert debian_mirror("trixie", sources) == DEFAULT_MIRROR
    assert debian_mirror("bookworm", tmp_path / "missing") == DEFAULT_MIRROR
