"""Shim so Beam's --setup_file can build an sdist of the project for Dataflow workers."""

import atexit
import shutil
import tempfile

import setuptools

# Beam builds the sdist in the checkout (`setup.py sdist`, or `python -m build`
# when installed); setuptools' egg-info goes to a temporary directory so that
# a Dataflow launch leaves no build folders behind.
egg_base = tempfile.mkdtemp(prefix="sigmoid-pretraining-egg-info-")
atexit.register(shutil.rmtree, egg_base, ignore_errors=True)
setuptools.setup(options={"egg_info": {"egg_base": egg_base}})
