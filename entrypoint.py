#!/usr/bin/env python3
"""Entry point of the container action; also runs from a clone: python entrypoint.py --help."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "src"))

from ecr_bootstrap.cli import main

if __name__ == "__main__":
    sys.exit(main())
