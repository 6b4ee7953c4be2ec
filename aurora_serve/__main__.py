import sys

from aurora_serve.cli import main

sys.exit(main())
