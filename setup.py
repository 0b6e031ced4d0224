"""Packaging for the credit-risk MLOps reference: the `training` and `app` packages."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The version is written once, in training/__init__.py.
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "training" / "__init__.py").read_text(),
                    re.M).group(1)


def requirements(name: str) -> list[str]:
    """Pinned requirement lines of a requirements file, without comments or includes."""
    lines = (HERE / name).read_text().splitlines()
    return [line.strip() for line in lines
            if line.strip() and not line.startswith(("#", "-r"))]


setup(
    name="credit-risk-mlops",
    version=VERSION,
    description="Jenkins-driven CI/CD/CT reference pipeline for a credit-risk web service",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["training", "training.*", "app", "app.*",
                                    "pipeline", "pipeline.*"]),
    include_package_data=True,
    package_data={"app": ["templates/*.html", "static/*"], "pipeline": ["templates/*.html"]},
    install_requires=requirements("requirements.txt"),
    extras_require={"dev": requirements("requirements-dev.txt"),
                    "training": requirements("requirements-training.txt")},
    entry_points={"console_scripts": [
        "credit-training=training.cli:main",
        "credit-pipeline=pipeline.cli:main",
    ]},
)
