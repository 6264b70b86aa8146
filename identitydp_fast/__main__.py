"""``python -m identitydp_fast`` = the ``identitydp`` command."""
import sys

from .cli import main

sys.exit(main())
