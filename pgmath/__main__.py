import sys

from pgmath.cli import main

sys.exit(main())
