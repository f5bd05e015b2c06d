"""Shim so Beam's --setup_file can build an sdist of the project for Dataflow workers."""

import setuptools

setuptools.setup()
