"""Which source photo an image comes from, so augmented copies of one photo stay on one side of the split.

Roboflow exports name every image `<original stem>_<ext>.rf.<hash>.<ext>`: `000123_jpg.rf.44380ef0....jpg`
and its augmented twin `000123_jpg.rf.9a1b....jpg` both come from `000123.jpg`. Other names are their own
source photo (their stem).
"""

from __future__ import annotations

import re
from pathlib import PurePath

_ROBOFLOW = re.compile(r"^(?P<stem>.+)_(?:jpe?g|png|bmp|webp|tiff?)\.rf\.[0-9a-f]{8,}$", re.IGNORECASE)


def source_photo(file_name: str) -> str:
    """`000123_jpg.rf.<hash>.jpg` -> `000123`; `street/img_7.png` -> `img_7`."""
    stem = PurePath(file_name).stem
    m = _ROBOFLOW.match(stem)
    return m.group("stem") if m else stem
