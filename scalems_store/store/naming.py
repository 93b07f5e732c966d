"""What a name typed by a person stands for: a fingerprint, a label, or a prefix.

Objects are named as git names commits: a full fingerprint or ``blake3:`` URI;
else a label of that name; else a unique prefix of at least 4 hex digits. A
label wins over a prefix it also spells (``cafe``).
"""

from __future__ import annotations

from collections.abc import Callable

from scalems_store.core import layout
from scalems_store.core.errors import ObjectNotFound
from scalems_store.objects.files import ObjectDir
from scalems_store.store.refs import valid_label


def resolve(objects: ObjectDir, label: Callable[[str], str], text: str) -> str:
    """Return the full fingerprint *text* names; *label* reads a label's target.

    Raises:
        InvalidFingerprint: *text* is none of these.
        ObjectNotFound: no object (or the object a label names) is there.
        AmbiguousPrefix: several objects match; the error lists them.
    """
    exact = text.startswith(layout.URI_SCHEME) or len(text) == layout.FINGERPRINT_LENGTH
    if not exact and valid_label(text):
        try:
            target = label(text)
        except ObjectNotFound:
            pass
        else:
            if not (layout.is_fingerprint(target) and objects.present(target)):
                raise ObjectNotFound(f"label {text!r} names {target}, which is not in the store")
            return target
        if not layout.HEX_DIGITS.issuperset(text.lower()):
            raise ObjectNotFound(
                f"no label {text!r} in store {objects.root!r}, and it is not a fingerprint"
            )
    return objects.resolve(text)
