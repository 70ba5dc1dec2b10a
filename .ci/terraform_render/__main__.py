"""`python .ci/terraform_render ...`, or `python -m terraform_render ...` with .ci on the path."""

import os
import sys

# A tool run from the repository: no __pycache__ left in it.
sys.dont_write_bytecode = True

if not __package__:
    # Run as a directory: import the package by its name, and its modules only through it.
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    from terraform_render.cli import main
else:
    from .cli import main

sys.exit(main())
