import sys

from aurora_serve.cli import main

if __name__ == "__main__":  # not when a spawned process (a media worker) imports the parent's main module
    sys.exit(main())
