"""Where the course is published, and the setup cell every notebook starts with (generated from here).

One place says where Colab installs the course from: :data:`REPO_URL` and :data:`REF`. The first code
cell of every notebook, the Colab badges in README.md, colab/README.md and the notebooks' headers are
all written from these constants by ``python tools/setup_cell.py --write``; ``--check`` (and
tests/test_colab_setup.py) fail when any of them disagrees.

:data:`REF` must exist in this repository (a clean clone of ``main`` has it): ``main`` until a
maintainer publishes a tag (colab/README.md, "Publishing"), then the tag.

The setup cell itself cannot import this module (it runs before ``helpers`` is installed), so
:func:`setup_cell_source` writes out plain Python: mount Drive (on by default, one-line opt-out), install
from a wheel the learner uploaded to /content, or from a wheel in Drive only when its sha256 is the one
the learner typed into the cell (a Drive folder may be shared: others can put a wheel there), else from
``git+REPO_URL@REF``; on failure print both ways to get the course, never a pip traceback. After pip it
calls ``importlib.invalidate_caches()``, so the fresh install is importable in the running kernel.
"""

from __future__ import annotations

import re

REPO_URL = "https://github.com/pixels-to-motion/pixels-to-motion"
REF = "main"
PACKAGE = "pixels-to-motion"
WHEEL_GLOB = "pixels_to_motion-*.whl"          # what `make wheel` writes into dist/
DRIVE_FOLDER = "pixels-to-motion"              # MyDrive/<this>: the work folder on Colab
EXTRAS_CPU = "app"                             # the studio app (notebook 10) everywhere
EXTRAS_GPU = "app,colab"                       # + bitsandbytes (NF4) on a GPU runtime
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
# Any Colab badge link to a notebook of a GitHub repository, whatever its owner, name or ref.
BADGE_LINK = re.compile(r"https://colab\.research\.google\.com/github/[^/\s)]+/[^/\s)]+/blob/[^\s)]+?/"
                        r"(notebooks/[^/\s)]+\.ipynb)")


def github_path(repo_url: str | None = None) -> str:
    """``owner/name`` of a GitHub URL (default :data:`REPO_URL`)."""
    repo_url = repo_url or REPO_URL
    match = re.fullmatch(r"https://github\.com/([^/]+/[^/]+?)(?:\.git)?/?", repo_url)
    if not match:
        raise ValueError(f"not a GitHub repository URL: {repo_url!r}")
    return match.group(1)


def badge_url(notebook: str, repo_url: str | None = None, ref: str | None = None) -> str:
    """The Colab link that opens ``notebooks/<notebook>`` of the published course at ``ref``."""
    return f"https://colab.research.google.com/github/{github_path(repo_url)}/blob/{ref or REF}/notebooks/{notebook}"


def install_spec(extras: str = EXTRAS_CPU, repo_url: str | None = None, ref: str | None = None) -> str:
    """The pip requirement that installs the published course with ``extras``."""
    return f"{PACKAGE}[{extras}] @ git+{repo_url or REPO_URL}@{ref or REF}"


def setup_cell_source(repo_url: str | None = None, ref: str | None = None, content: str = "/content") -> str:
    """The first code cell of every notebook. ``content`` is Colab's /content (a test points it elsewhere)."""
    repo_url, ref = repo_url or REPO_URL, ref or REF
    return f'''# Setup - written by tools/setup_cell.py from helpers/core/colab.py (change it there, not here).
# On Colab: keeps your outputs in Google Drive, so the next notebook finds what this one made (each
# notebook runs in a runtime of its own), and installs this course's `helpers` (GPU: with bitsandbytes).
# Elsewhere (your machine, CI) it does nothing: `make setup` installed everything.
USE_DRIVE = True  # False: no Drive; outputs vanish with this runtime and later notebooks use stand-ins
WHEEL_SHA256 = ""  # install a wheel from Drive only if its sha256 is this (`sha256sum` where you built it)
import sys
IN_COLAB = "google.colab" in sys.modules
if IN_COLAB:
    import glob, hashlib, importlib, os, shutil, subprocess
    REPO, REF, CONTENT = "{repo_url}", "{ref}", "{content}"
    DRIVE = CONTENT + "/drive/MyDrive/{DRIVE_FOLDER}"
    if USE_DRIVE:
        from google.colab import drive
        drive.mount(CONTENT + "/drive")
    wheels = glob.glob(CONTENT + "/{WHEEL_GLOB}")  # /content: only you can put files there
    for wheel in sorted(glob.glob(DRIVE + "/{WHEEL_GLOB}")):  # Drive may be shared: only the wheel you confirmed
        digest = hashlib.sha256(open(wheel, "rb").read()).hexdigest()
        if WHEEL_SHA256 and digest == WHEEL_SHA256.strip().lower():
            wheels.append(wheel)
        else:
            print(f"Not installing {{wheel}}: a Drive folder can be written by others. To install it, set "
                  f"WHEEL_SHA256 above to the sha256 of the wheel you built (sha256sum dist/*.whl), or upload it to /content.")
    extras = "{EXTRAS_GPU}" if shutil.which("nvidia-smi") else "{EXTRAS_CPU}"  # colab extra: 4-bit NF4 on the GPU
    source = max(wheels, key=os.path.getmtime) + f"[{{extras}}]" if wheels else f"{PACKAGE}[{{extras}}] @ git+{{REPO}}@{{REF}}"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", source], capture_output=True, text=True)
    if pip.returncode != 0:
        why = (pip.stderr.strip().splitlines() or ["pip failed"])[-1]
        print(f"Could not install the course from {{source}}\\n  ({{why}})\\nTwo ways to get it:\\n"
              f"  1. from the web: the course must be published at {{REPO}} (ref {{REF}}) and this runtime online;\\n"
              "  2. from a wheel: on a machine with the course run `make wheel`, upload dist/{WHEEL_GLOB}\\n"
              "     to /content (Files, left bar) or to MyDrive/{DRIVE_FOLDER}/, then run this cell again.")
        raise SystemExit("setup stopped: the course's helpers are not installed (see above)")
    print(f"installed the course's helpers from {{source}}")
    importlib.invalidate_caches()  # the running kernel sees what pip just installed
    if USE_DRIVE:
        from helpers.core.outputs import use_google_drive
        use_google_drive(mount_point=CONTENT + "/drive")'''
