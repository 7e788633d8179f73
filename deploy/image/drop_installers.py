"""Remove pip, setuptools and wheel from the image's base Python (run once, while building).

The runtime image installs nothing after it is built, and each of these is code an attacker
could use and a scanner would flag. A base may have them from pip (python:3.11-slim, with
RECORD files) or from Debian packages (no RECORD): so this removes the import packages, the
dist-info/egg-info directories and the console scripts by name, wherever the base put them.
"""

import glob
import os
import shutil
import site
import sys
import sysconfig

DISTRIBUTIONS = ("pip", "setuptools", "wheel")
MODULES = ("pip", "setuptools", "wheel", "pkg_resources", "_distutils_hack")
SCRIPTS = ("pip", "pip3", "pip3.*", "wheel", "easy_install*")


def site_dirs() -> list[str]:
    found = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib"), *site.getsitepackages()}
    found |= {path for path in sys.path if path.endswith(("site-packages", "dist-packages"))}
    return sorted(path for path in found if os.path.isdir(path))


def targets() -> list[str]:
    paths = []
    for directory in site_dirs():
        for module in MODULES:
            paths += glob.glob(os.path.join(directory, module))
        for name in DISTRIBUTIONS:
            paths += glob.glob(os.path.join(directory, f"{name}-*.dist-info"))
            paths += glob.glob(os.path.join(directory, f"{name}-*.egg-info"))
        paths += glob.glob(os.path.join(directory, "distutils-precedence.pth"))
    for directory in {sysconfig.get_path("scripts"), "/usr/bin", "/usr/local/bin"}:
        for script in SCRIPTS:
            paths += glob.glob(os.path.join(directory, script))
    return sorted(set(paths))


def main() -> int:
    for path in targets():
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        print(f"removed {path}")
    left = [m for m in DISTRIBUTIONS if any(os.path.isdir(os.path.join(d, m)) for d in site_dirs())]
    if left:
        print(f"still present: {left}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
