from __future__ import annotations

import sys

from keelhaul.cli.main import main

sys.exit(main())
