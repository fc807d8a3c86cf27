"""``python -m ddpm_teach ...``: see :mod:`ddpm_teach.cli`."""
import sys

from .cli import main

sys.exit(main())
