"""``python -m ddpm_teach ...``: see :mod:`ddpm_teach.cli`."""
import sys

from .allocator import restart_with_fast_allocator

restart_with_fast_allocator(sys.argv[1:])   # once, before torch is loaded (see ddpm_teach.allocator)

from .cli import main  # noqa: E402

sys.exit(main())
