"""What pyproject.toml cannot say: the source folder cli/ installs as the package
``offload_migrate_cli``, so an install adds no top-level ``cli`` to site-packages
(docs/architecture.md, "Installed layout"). Metadata and package data: pyproject.toml."""

from setuptools import find_namespace_packages, setup

# data folders (offload/caps/profiles, cli/demo_objects) are packages too, so their files ship
LAYERS = ["offload", "offload.*", "migrate", "migrate.*", "service", "service.*"]
CACHES = ["*__pycache__*"]

setup(
    packages=[*find_namespace_packages(include=LAYERS, exclude=CACHES),
              "offload_migrate_cli", "offload_migrate_cli.demo_objects"],
    package_dir={"offload_migrate_cli": "cli"},
)
