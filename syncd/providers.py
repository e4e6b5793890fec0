"""Provider names in the config, mapped to the Source class that implements them.

Imported lazily so that a deployment without, say, the Google client libraries can still
run its IMAP accounts.
"""

from __future__ import annotations

import importlib
from typing import Any

# provider name -> (module, class)
PROVIDERS: dict[str, tuple[str, str]] = {
    "maildir": ("connectors.maildir", "MaildirSource"),
    "mbox": ("connectors.mbox", "MboxSource"),
    "eml": ("connectors.eml", "EmlFolderSource"),
    "ics": ("connectors.ics_folder", "IcsFolderSource"),
    "imap": ("connectors.imap", "ImapSource"),
}


def source_class(provider: str) -> type[Any]:
    module, name = PROVIDERS[provider]
    return getattr(importlib.import_module(module), name)
