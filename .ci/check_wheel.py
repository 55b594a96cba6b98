"""Build-output check: the wheel in the given folder ships the type marker and the digits data."""

import sys
import zipfile
from pathlib import Path

REQUIRED = ("chainrule/py.typed", "chainrule/datasets/digits.npz", "chainrule/_version.py")

wheels = sorted(Path(sys.argv[1]).glob("chainrule-*.whl"))
if not wheels:
    sys.exit(f"no chainrule wheel in {sys.argv[1]}")
names = set(zipfile.ZipFile(wheels[-1]).namelist())
missing = [name for name in REQUIRED if name not in names]
if missing:
    sys.exit(f"{wheels[-1].name} lacks {', '.join(missing)}")
print(f"{wheels[-1].name}: {len(names)} files, with {', '.join(REQUIRED)}")
