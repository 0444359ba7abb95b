"""Which packages the distribution holds; everything else is in pyproject.toml.

`dmsec` and its subpackages, and the folder `pipelines/` installed as `dmsec_pipelines` (a name
that cannot collide with another distribution's top-level package). pyproject.toml's
`packages.find` cannot add a renamed folder to what it finds, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["dmsec", "dmsec.*"]), "dmsec_pipelines"],
    package_dir={"dmsec_pipelines": "pipelines"},
)
